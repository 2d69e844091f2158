// The HTTP side's endpoints (the contract is in the README, "Operating Brook"). Runs on the
// HTTP server's thread and the sampler's; reads shard counters and levels directly (relaxed
// atomics) and asks the shards for per-session and per-topic detail.
#include "broker_http.hpp"

#include <algorithm>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "brook/runtime/credentials.hpp"
#include "metrics_text.hpp"
#include "shard.hpp"
#include "static_files.hpp"

namespace brook::runtime {

namespace {

using Json = nlohmann::ordered_json;
using std::chrono::steady_clock;

constexpr std::size_t history_samples = 600;  // ten minutes, one a second
constexpr auto report_timeout = std::chrono::milliseconds(1000);

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

HttpResponse json_response(const Json& body, int status = 200) {
  return {.status = status, .content_type = "application/json", .body = body.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n"};
}

HttpResponse json_error(int status, std::string message) {
  return json_response(Json{{"error", std::move(message)}}, status);
}

// A query's unsigned number, `fallback` when absent; false when present and not a number.
bool read_count(const HttpRequest& request, std::string_view name, std::size_t fallback, std::size_t& value) {
  const std::string_view text = request.param(name);
  if (text.empty()) {
    value = fallback;
    return true;
  }
  std::size_t n = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9' || n > 100'000'000'000'000ull) return false;
    n = n * 10 + static_cast<std::size_t>(ch - '0');
  }
  value = n;
  return true;
}

struct Page {
  std::size_t offset = 0;
  std::size_t limit = 0;
};

// ?offset=&limit= (whole numbers), or nothing when either is not one.
std::optional<Page> read_page(const HttpRequest& request, std::size_t default_limit) {
  Page page;
  if (!read_count(request, "limit", default_limit, page.limit) || !read_count(request, "offset", 0, page.offset))
    return std::nullopt;
  return page;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

template <class T>
Json page_of(std::vector<T>& items, std::size_t offset, std::size_t limit, auto&& to_json) {
  Json page = Json::array();
  for (std::size_t i = offset; i < items.size() && i - offset < limit; ++i) page.push_back(to_json(items[i]));
  return page;
}

std::string iso_time(std::int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(ms % 1000));
  return text;
}

}  // namespace

BrokerHttp::BrokerHttp(const BrokerOptions& options, Mesh& mesh, BrokerFacts facts)
    : options_(options), mesh_(mesh), facts_(std::move(facts)), started_unix_ms_(unix_ms()) {}

BrokerHttp::~BrokerHttp() { stop(); }

std::string BrokerHttp::start() {
  HttpServerOptions server;
  server.address = options_.http_listen;
  if (options_.http_tls) {
    server.tls_cert_pem = read_file(options_.tls_cert_file);
    server.tls_key_pem = read_file(options_.tls_key_file);
    if (server.tls_cert_pem.empty() || server.tls_key_pem.empty())
      return "http.tls: cannot read tls.cert_file or tls.key_file";
  }
  if (!options_.http_credentials_file.empty()) {
    std::string error;
    auto store = CredentialStore::load(options_.http_credentials_file, error);
    if (!store) return "http.credentials_file " + error;
    // argon2id takes tens of milliseconds on purpose: a scraper's credentials, once right,
    // are remembered (as a keyed hash, for a minute) rather than hashed again every scrape.
    struct Remembered {
      std::mutex mutex;
      std::string key;
      steady_clock::time_point until;
    };
    auto shared_store = std::make_shared<CredentialStore>(std::move(*store));
    auto remembered = std::make_shared<Remembered>();
    server.check_password = [shared_store, remembered](std::string_view user, std::string_view password) {
      const std::string key = std::string(user) + '\0' + std::string(password);
      {
        std::lock_guard lock(remembered->mutex);
        if (!remembered->key.empty() && remembered->key == key && steady_clock::now() < remembered->until) return true;
      }
      if (!shared_store->verify(user, std::as_bytes(std::span(password.data(), password.size())))) return false;
      std::lock_guard lock(remembered->mutex);
      remembered->key = key;
      remembered->until = steady_clock::now() + std::chrono::minutes(1);
      return true;
    };
  }
  if (!options_.http_console_dir.empty()) {
    std::string error;
    if (!load_static_files(options_.http_console_dir, console_, error)) return "http.console_dir: " + error;
  }
  samples_.resize(mesh_.shard_count);
  server_ = std::make_unique<HttpServer>(std::move(server), [this](const HttpRequest& r) { return handle(r); });
  if (auto error = server_->start(); !error.empty()) {
    server_.reset();
    return error;
  }
  sampler_ = std::jthread([this](std::stop_token stop) { sample_every_second(stop); });
  return {};
}

void BrokerHttp::stop() {
  if (server_) server_->stop();
  if (sampler_.joinable()) {
    sampler_.request_stop();
    sampler_.join();
  }
}

HttpResponse BrokerHttp::handle(const HttpRequest& request) {
  const std::string_view path = request.path;
  if (path == "/metrics") return metrics();
  if (path == "/healthz") return healthz();
  if (path == "/readyz") return readyz();
  if (path == "/api/broker") return api_broker();
  if (path == "/api/sessions") return api_sessions(request);
  if (path == "/api/topics") return api_topics(request);
  if (path == "/api/subscriptions") return api_subscriptions(request);
  if (path == "/api/history") return api_history(request);
  if (path.starts_with("/api/")) return json_error(404, "no such endpoint: " + std::string(path));
  return console_file(request);
}

HttpResponse BrokerHttp::healthz() const {
  // A shard's loop turns at least once per liveness period even when idle; one that has not
  // turned for seconds is stuck.
  const std::uint64_t now = now_ns();
  for (unsigned i = 0; i < mesh_.shard_count; ++i) {
    const std::uint64_t last = mesh_.shards[i]->gauges().last_turn_ns;
    if (last != 0 && now > last && now - last > 10'000'000'000ull)
      return {.status = 503, .body = "unhealthy: shard " + std::to_string(i) + " has not turned for " +
                                     std::to_string((now - last) / 1'000'000'000ull) + " s\n"};
  }
  return {.body = "ok\n"};
}

HttpResponse BrokerHttp::readyz() const {
  if (facts_.stopping && facts_.stopping->load(std::memory_order_relaxed))
    return {.status = 503, .body = "not ready: stopping\n"};
  return {.body = "ready\n"};
}

HttpResponse BrokerHttp::metrics() const {
  std::vector<const Shard*> shards(mesh_.shards.begin(), mesh_.shards.end());
  return {.content_type = "text/plain; version=0.0.4; charset=utf-8",
          .body = prometheus_text({.shards = shards,
                                   .shard_memory = mesh_.memory_used.get(),
                                   .memory_budget = mesh_.memory_budget,
                                   .resident_bytes = mesh_.process_rss.bytes.load(std::memory_order_relaxed),
                                   .version = options_.version,
                                   .start_time_s = static_cast<double>(started_unix_ms_) / 1000.0})};
}

HttpResponse BrokerHttp::api_broker() const {
  Json totals = Json::object();
  std::uint64_t connections = 0, sessions = 0, topics = 0, subscriptions = 0;
  for (const Shard* shard : mesh_.shards) {
    connections += shard->gauges().connections;
    sessions += shard->gauges().sessions;
    topics += shard->gauges().topics;
    subscriptions += shard->gauges().subscriptions;
  }
  totals["connections"] = connections;
  totals["sessions"] = sessions;
  totals["topics"] = topics;
  totals["subscriptions"] = subscriptions;
  for (const auto& counter : counter_table()) {
    std::uint64_t sum = 0;
    for (const Shard* shard : mesh_.shards) sum += (shard->counters().*counter.member).get();
    totals[std::string(counter.json_name)] = sum;
  }
  Json shards = Json::array();
  Json rates = {{"publishes_per_s", 0.0}, {"deliveries_per_s", 0.0}, {"bytes_in_per_s", 0.0}, {"bytes_out_per_s", 0.0}};
  {
    std::lock_guard lock(samples_mutex_);
    for (unsigned i = 0; i < mesh_.shard_count; ++i) {
      const Shard& shard = *mesh_.shards[i];
      const ShardSample last = samples_[i].empty() ? ShardSample{} : samples_[i].back();
      rates["publishes_per_s"] = rates["publishes_per_s"].get<double>() + last.publishes_per_s;
      rates["deliveries_per_s"] = rates["deliveries_per_s"].get<double>() + last.deliveries_per_s;
      rates["bytes_in_per_s"] = rates["bytes_in_per_s"].get<double>() + last.bytes_in_per_s;
      rates["bytes_out_per_s"] = rates["bytes_out_per_s"].get<double>() + last.bytes_out_per_s;
      shards.push_back({{"shard", i},
                        {"busy_ratio", last.busy_ratio},
                        {"turns", shard.counters().loop_turns.get()},
                        {"connections", shard.gauges().connections.get()},
                        {"sessions", shard.gauges().sessions.get()},
                        {"topics", shard.gauges().topics.get()},
                        {"mailbox_depth", shard.mailbox_depth()},
                        {"mailbox_overflows", shard.counters().mailbox_overflows.get()},
                        {"pool_in_use_bytes", shard.gauges().pool_in_use_bytes.get()},
                        {"memory_bytes", mesh_.memory_used[i].bytes.load(std::memory_order_relaxed)},
                        {"publishes", shard.counters().publishes.get()},
                        {"deliveries", shard.counters().deliveries.get()}});
    }
  }
  const bool stopping = facts_.stopping && facts_.stopping->load(std::memory_order_relaxed);
  return json_response({{"version", options_.version},
                        {"uptime_s", std::chrono::duration<double>(steady_clock::now() - started_).count()},
                        {"shard_count", mesh_.shard_count},
                        {"ready", !stopping},
                        {"listeners",
                         {{"tcp", facts_.tcp}, {"tls", facts_.tls}, {"ws", facts_.ws}, {"wss", facts_.wss},
                          {"shm", facts_.shm}, {"http", address()}}},
                        {"totals", totals},
                        {"rates", rates},
                        {"shards", shards}});
}

std::vector<ShardReport> BrokerHttp::collect(const ReportRequest& request, std::vector<unsigned>& silent) {
  std::vector<ShardReport> reports;
  for (unsigned i = 0; i < mesh_.shard_count; ++i) {
    if (auto report = mesh_.shards[i]->report(request, report_timeout)) reports.push_back(std::move(*report));
    else silent.push_back(i);
  }
  return reports;
}

HttpResponse BrokerHttp::api_sessions(const HttpRequest& request) {
  const auto paging = read_page(request, 50);
  if (!paging) return json_error(400, "limit and offset must be whole numbers");
  const auto [offset, limit] = *paging;
  std::string sort(request.param("sort"));
  if (sort.empty()) sort = "queue";
  if (sort != "queue" && sort != "recovery" && sort != "age" && sort != "activity")
    return json_error(400, "sort must be queue, recovery, age or activity");
  std::vector<SessionReport> sessions;
  std::vector<ClosedSessionReport> closed;
  std::vector<unsigned> silent;
  {
    std::lock_guard lock(report_mutex_);
    for (auto& report : collect({.sessions = true}, silent)) {
      std::move(report.sessions.begin(), report.sessions.end(), std::back_inserter(sessions));
      std::move(report.closed.begin(), report.closed.end(), std::back_inserter(closed));
    }
  }
  auto by = [&](auto key) {
    std::stable_sort(sessions.begin(), sessions.end(), [&](const SessionReport& a, const SessionReport& b) {
      return key(a) > key(b);
    });
  };
  if (sort == "queue") by([](const SessionReport& s) { return std::pair(s.pending_bytes, s.pending_frames); });
  else if (sort == "recovery") by([](const SessionReport& s) { return s.recovery_bytes; });
  else if (sort == "age") by([](const SessionReport& s) { return s.age_s; });
  else by([](const SessionReport& s) { return s.idle_s; });
  std::sort(closed.begin(), closed.end(),
            [](const ClosedSessionReport& a, const ClosedSessionReport& b) { return a.closed_at_ms > b.closed_at_ms; });
  Json body = {{"total", sessions.size()}, {"offset", offset}, {"limit", limit}, {"sort", sort}};
  body["sessions"] = page_of(sessions, offset, limit, [](const SessionReport& s) {
    return Json{{"id", s.id},
                {"principal", s.principal},
                {"shard", s.shard},
                {"address", s.address},
                {"transport", s.transport},
                {"state", s.state},
                {"subscriptions", s.subscriptions},
                {"pending_frames", s.pending_frames},
                {"pending_bytes", s.pending_bytes},
                {"recovery_frames", s.recovery_frames},
                {"recovery_bytes", s.recovery_bytes},
                {"age_s", s.age_s},
                {"idle_s", s.idle_s},
                {"holding_publishers", s.holding_publishers},
                {"held_back", s.held_back}};
  });
  // The most recent first, as many as a page of sessions (each shard keeps its last 64).
  body["closed_total"] = closed.size();
  body["closed"] = page_of(closed, 0, limit, [](const ClosedSessionReport& s) {
    return Json{{"id", s.id},           {"principal", s.principal},          {"shard", s.shard},
                {"address", s.address}, {"transport", s.transport},          {"closed_at", iso_time(s.closed_at_ms)},
                {"age_s", s.age_s},     {"reason", s.reason}};
  });
  if (!silent.empty()) body["silent_shards"] = silent;
  return json_response(body);
}

HttpResponse BrokerHttp::api_topics(const HttpRequest& request) {
  const auto paging = read_page(request, 100);
  if (!paging) return json_error(400, "limit and offset must be whole numbers");
  const auto [offset, limit] = *paging;
  std::string sort(request.param("sort"));
  if (sort.empty()) sort = "rate";
  if (sort != "rate" && sort != "path" && sort != "subscribers")
    return json_error(400, "sort must be rate, path or subscribers");
  const bool values = request.param("values") == "1" || request.param("values") == "true";
  std::vector<TopicReport> topics;
  std::vector<double> rates;
  std::vector<unsigned> silent;
  {
    std::lock_guard lock(report_mutex_);
    for (auto& report : collect({.topics = true, .values = values, .topic_prefix = std::string(request.param("prefix"))},
                                silent))
      std::move(report.topics.begin(), report.topics.end(), std::back_inserter(topics));
    // A topic's rate: its sequence's progress since it was last looked at, once that is a
    // second old; until then the rate worked out then.
    const auto now = steady_clock::now();
    rates.reserve(topics.size());
    for (const auto& topic : topics) {
      auto [mark, fresh] = topic_rates_.try_emplace(topic.path, RateMark{topic.sequence, now, 0.0});
      if (!fresh && now - mark->second.at >= std::chrono::seconds(1)) {
        const double seconds = std::chrono::duration<double>(now - mark->second.at).count();
        mark->second.rate = static_cast<double>(topic.sequence - std::min(topic.sequence, mark->second.sequence)) / seconds;
        mark->second.sequence = topic.sequence;
        mark->second.at = now;
      }
      rates.push_back(mark->second.rate);
    }
    // Forget topics gone (a full listing shows which remain).
    if (request.param("prefix").empty() && topic_rates_.size() > topics.size()) {
      std::unordered_map<std::string, RateMark> kept;
      for (const auto& topic : topics) kept.emplace(topic.path, topic_rates_[topic.path]);
      topic_rates_.swap(kept);
    }
  }
  std::vector<std::size_t> order(topics.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (sort == "rate")
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return rates[a] != rates[b] ? rates[a] > rates[b] : topics[a].path < topics[b].path;
    });
  else if (sort == "subscribers")
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return topics[a].subscribers != topics[b].subscribers ? topics[a].subscribers > topics[b].subscribers
                                                            : topics[a].path < topics[b].path;
    });
  else
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return topics[a].path < topics[b].path; });
  Json body = {{"total", topics.size()}, {"offset", offset}, {"limit", limit}, {"sort", sort}};
  Json page = Json::array();
  for (std::size_t i = offset; i < order.size() && i - offset < limit; ++i) {
    const TopicReport& t = topics[order[i]];
    Json topic = {{"path", t.path},
                  {"shard", t.shard},
                  {"type", t.type},
                  {"sequence", t.sequence},
                  {"rate_per_s", rates[order[i]]},
                  {"subscribers", t.subscribers},
                  {"retained", t.retained},
                  {"conflate", t.conflate},
                  {"history", t.history},
                  {"value_bytes", t.value_bytes}};
    if (t.value) {
      topic["value"] = *t.value;
      if (t.value_truncated) topic["value_truncated"] = true;
    }
    page.push_back(std::move(topic));
  }
  body["topics"] = std::move(page);
  if (!silent.empty()) body["silent_shards"] = silent;
  return json_response(body);
}

HttpResponse BrokerHttp::api_subscriptions(const HttpRequest& request) {
  const auto paging = read_page(request, 1000);
  if (!paging) return json_error(400, "limit and offset must be whole numbers");
  const auto [offset, limit] = *paging;
  std::vector<SubscriptionReport> subscriptions;
  std::vector<unsigned> silent;
  {
    std::lock_guard lock(report_mutex_);
    for (auto& report : collect({.subscriptions = true}, silent))
      std::move(report.subscriptions.begin(), report.subscriptions.end(), std::back_inserter(subscriptions));
  }
  std::stable_sort(subscriptions.begin(), subscriptions.end(),
                   [](const SubscriptionReport& a, const SubscriptionReport& b) { return a.session < b.session; });
  Json body = {{"total", subscriptions.size()}, {"offset", offset}, {"limit", limit}};
  body["subscriptions"] = page_of(subscriptions, offset, limit, [](const SubscriptionReport& s) {
    return Json{{"session", s.session}, {"shard", s.shard}, {"selector", s.selector}, {"resync", s.resync},
                {"history", s.history}};
  });
  if (!silent.empty()) body["silent_shards"] = silent;
  return json_response(body);
}

HttpResponse BrokerHttp::api_history(const HttpRequest& request) const {
  // since=T (Unix ms): only the samples after it, for a page that has the rest already.
  std::size_t since = 0;
  if (!read_count(request, "since", 0, since)) return json_error(400, "since must be a time in Unix milliseconds");
  Json shards = Json::array();
  std::lock_guard lock(samples_mutex_);
  for (unsigned i = 0; i < samples_.size(); ++i) {
    Json samples = Json::array();
    for (const ShardSample& s : samples_[i]) {
      if (s.t_ms <= static_cast<std::int64_t>(since)) continue;
      samples.push_back({{"t", s.t_ms},
                         {"busy_ratio", s.busy_ratio},
                         {"publishes_per_s", s.publishes_per_s},
                         {"deliveries_per_s", s.deliveries_per_s},
                         {"bytes_in_per_s", s.bytes_in_per_s},
                         {"bytes_out_per_s", s.bytes_out_per_s},
                         {"connections", s.connections},
                         {"mailbox_depth", s.mailbox_depth},
                         {"memory_bytes", s.memory_bytes}});
    }
    shards.push_back({{"shard", i}, {"samples", std::move(samples)}});
  }
  return json_response({{"interval_s", 1}, {"shards", std::move(shards)}});
}

HttpResponse BrokerHttp::console_file(const HttpRequest& request) const {
  std::string_view path = request.path;
  if (path == "/") path = "/index.html";
  if (auto it = console_.find(path); it != console_.end())
    return {.content_type = it->second.content_type, .body = it->second.body, .cache_control = "no-cache"};
  if (request.path == "/")
    return {.content_type = "text/html; charset=utf-8",
            .body = "<!doctype html><title>brookd</title><h1>brookd</h1><p>No console here (http.console_dir is not "
                    "set). Endpoints: <a href=\"metrics\">/metrics</a>, <a href=\"healthz\">/healthz</a>, "
                    "<a href=\"readyz\">/readyz</a>, <a href=\"api/broker\">/api/broker</a>, "
                    "<a href=\"api/sessions\">/api/sessions</a>, <a href=\"api/topics\">/api/topics</a>, "
                    "<a href=\"api/subscriptions\">/api/subscriptions</a>, <a href=\"api/history\">/api/history</a>.\n"};
  return {.status = 404, .body = "not found\n"};
}

void BrokerHttp::sample_every_second(std::stop_token stop) {
  struct Previous {
    std::uint64_t busy_ns = 0, publishes = 0, deliveries = 0, bytes_in = 0, bytes_out = 0;
  };
  std::vector<Previous> previous(mesh_.shard_count);
  for (unsigned i = 0; i < mesh_.shard_count; ++i) {
    const ShardCounters& c = mesh_.shards[i]->counters();
    previous[i] = {c.busy_ns, c.publishes, c.deliveries, c.bytes_in, c.bytes_out};
  }
  auto taken = steady_clock::now();
  std::mutex wait_mutex;
  std::condition_variable_any wait;
  for (;;) {
    {
      std::unique_lock lock(wait_mutex);
      if (wait.wait_for(lock, stop, std::chrono::seconds(1), [] { return false; })) return;
      if (stop.stop_requested()) return;
    }
    const auto now = steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - taken).count();
    taken = now;
    const std::int64_t t_ms = unix_ms();
    std::lock_guard lock(samples_mutex_);
    for (unsigned i = 0; i < mesh_.shard_count; ++i) {
      const Shard& shard = *mesh_.shards[i];
      const ShardCounters& c = shard.counters();
      const Previous now_counts{c.busy_ns, c.publishes, c.deliveries, c.bytes_in, c.bytes_out};
      Previous& before = previous[i];
      auto per_second = [&](std::uint64_t current, std::uint64_t earlier) {
        return static_cast<double>(current - std::min(current, earlier)) / seconds;
      };
      ShardSample sample;
      sample.t_ms = t_ms;
      sample.busy_ratio = std::min(1.0, per_second(now_counts.busy_ns, before.busy_ns) / 1e9);
      sample.publishes_per_s = per_second(now_counts.publishes, before.publishes);
      sample.deliveries_per_s = per_second(now_counts.deliveries, before.deliveries);
      sample.bytes_in_per_s = per_second(now_counts.bytes_in, before.bytes_in);
      sample.bytes_out_per_s = per_second(now_counts.bytes_out, before.bytes_out);
      sample.connections = shard.gauges().connections;
      sample.mailbox_depth = shard.mailbox_depth();
      sample.memory_bytes = mesh_.memory_used[i].bytes.load(std::memory_order_relaxed);
      before = now_counts;
      auto& series = samples_[i];
      if (series.size() == history_samples) series.pop_front();
      series.push_back(sample);
    }
  }
}

}  // namespace brook::runtime
