#include "odds_feed.hpp"

#include <cstdio>

namespace brook::cli {

namespace {

std::string signed_text(double v) {
  char b[16];
  std::snprintf(b, sizeof b, "%+.1f", v);
  return b;
}

std::string odds_text(int v) { return v > 0 ? "+" + std::to_string(v) : std::to_string(v); }

}  // namespace

OddsFeed::OddsFeed(std::string root, unsigned matches, unsigned seed) : rng_(seed) {
  static const char* teams[] = {"Bills",   "Dolphins", "Patriots", "Jets",    "Ravens",  "Bengals",
                                "Browns",  "Steelers", "Texans",   "Colts",   "Jaguars", "Titans",
                                "Broncos", "Chiefs",   "Raiders",  "Chargers", "Cowboys", "Giants",
                                "Eagles",  "Commanders", "Bears",  "Lions",   "Packers", "Vikings",
                                "Falcons", "Panthers", "Saints",   "Buccaneers", "Cardinals", "Rams",
                                "49ers",   "Seahawks"};
  for (unsigned i = 0; i < matches; ++i) {
    std::string home = teams[(2 * i) % 32], away = teams[(2 * i + 1) % 32];
    if (i >= 16) home += " " + std::to_string(i / 16 + 1);
    double spread = std::uniform_int_distribution<int>(-28, 28)(rng_) * 0.5;
    matches_.push_back({root + "/" + home + " vs " + away + "/Odds", spread,
                        spread > 0 ? 120 : -140, spread > 0 ? -140 : 120,
                        std::uniform_int_distribution<int>(76, 110)(rng_) * 0.5, -110, -110});
  }
}

std::string OddsFeed::value(std::size_t match) const {
  const Match& m = matches_[match];
  return "{\"Home_Spread\":\"" + signed_text(m.spread) + "\",\"Home_Odds\":\"" +
         odds_text(m.home_odds) + "\",\"Away_Spread\":\"" + signed_text(-m.spread) +
         "\",\"Away_Odds\":\"" + odds_text(m.away_odds) + "\",\"Total\":\"" +
         signed_text(m.total).substr(1) + "\",\"Over_Odds\":\"" + odds_text(m.over_odds) +
         "\",\"Under_Odds\":\"" + odds_text(m.under_odds) + "\"}";
}

int OddsFeed::nudge_odds(int odds) {
  // American odds skip the band (-100, +100).
  int step = std::uniform_int_distribution<int>(-3, 3)(rng_) * 5;
  int next = odds + step;
  if (next > -100 && next < 100) next = odds > 0 ? -100 - (100 - next) : 100 + (next + 100);
  return next;
}

std::size_t OddsFeed::step() {
  std::size_t index = std::uniform_int_distribution<std::size_t>(0, matches_.size() - 1)(rng_);
  Match& m = matches_[index];
  switch (std::uniform_int_distribution<int>(0, 5)(rng_)) {
    case 0: m.spread += std::uniform_int_distribution<int>(-1, 1)(rng_) * 0.5; break;
    case 1: m.total += std::uniform_int_distribution<int>(-1, 1)(rng_) * 0.5; break;
    case 2:
      m.over_odds = nudge_odds(m.over_odds);
      m.under_odds = nudge_odds(m.under_odds);
      break;
    default:
      m.home_odds = nudge_odds(m.home_odds);
      m.away_odds = nudge_odds(m.away_odds);
  }
  return index;
}

}  // namespace brook::cli
