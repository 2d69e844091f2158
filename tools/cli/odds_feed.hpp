#pragma once
// The sports-odds feed of `brook demo` and `brook bench deltas`: NFL matches whose odds JSON
// changes a few fields at a time, as a bookmaker's feed does.
#include <cstddef>
#include <random>
#include <string>
#include <vector>

namespace brook::cli {

class OddsFeed {
 public:
  // `matches` topics under `root` (root/<Home> vs <Away>/Odds); the same seed, the same feed.
  OddsFeed(std::string root, unsigned matches, unsigned seed);

  std::size_t size() const noexcept { return matches_.size(); }
  const std::string& path(std::size_t match) const { return matches_[match].path; }
  std::string value(std::size_t match) const;  // the match's odds as JSON
  // Changes a few fields of a random match (odds most often, the line now and then) and
  // returns its index.
  std::size_t step();

 private:
  struct Match {
    std::string path;
    double spread;  // home spread, in half points
    int home_odds;  // American odds
    int away_odds;
    double total;
    int over_odds;
    int under_odds;
  };
  int nudge_odds(int odds);

  std::vector<Match> matches_;
  std::mt19937 rng_;
};

}  // namespace brook::cli
