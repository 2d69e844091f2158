// Integration: request/response end to end (issue 5), with a real brookd child process and real
// brook::Client sessions over loopback TCP. Handlers answer with their own name, so the
// requester sees where each request went. Every wait is bounded; the only timing assertions
// are "promptly": an answer well under the request's own timeout.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "brook/codec/messages.hpp"
#include "fault_proxy.hpp"
#include "raw_connection.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

// Large enough for a sanitizer build on a busy two-core machine; only reached on failure.
constexpr auto long_wait = std::chrono::seconds(90);
constexpr auto short_wait = std::chrono::seconds(10);
// A request timeout that a correct broker never reaches in these tests.
constexpr auto request_timeout = std::chrono::seconds(30);
// "Promptly": an answer that must come well before request_timeout.
constexpr auto prompt = std::chrono::seconds(5);

std::string describe(const Response& r) {
  std::string s = std::string(codec::to_string(r.status.code));
  if (!r.status.message.empty()) s += " '" + r.status.message + "'";
  if (r.status) s += " payload '" + std::string(r.text().substr(0, 64)) + "'";
  return s;
}

Response internal_error(std::string message) {
  Response r;
  r.status = Status{ErrorCode::internal, std::move(message)};
  return r;
}

// The response, or an `internal` status if none came within the wait (or the promise broke).
Response get(std::future<Response>& answer, std::chrono::milliseconds wait = short_wait) {
  if (answer.wait_for(wait) != std::future_status::ready)
    return internal_error("no response within the test's wait");
  try {
    return answer.get();
  } catch (const std::exception& e) {
    return internal_error(std::string("future broke: ") + e.what());
  }
}
Response get(std::future<Response>&& answer, std::chrono::milliseconds wait = short_wait) {
  return get(answer, wait);
}

// A handler session's behaviour and what it saw. By default it answers each request with its
// name; while holding, it keeps the Responders unanswered for the test to answer (or drop)
// later. fn() runs on the client thread; the rest on the test thread. Declare it before the
// Client it is registered with, so that the client thread stops first.
class Handler {
 public:
  explicit Handler(std::string name) : name_(std::move(name)) {}

  RequestHandler fn() {
    return [this](const Request& request, Responder responder) {
      std::lock_guard lock(mutex_);
      requesters_.emplace_back(request.requester);
      if (hold_)
        held_.push_back(std::move(responder));
      else
        responder.respond(name_);
      changed_.notify_all();
    };
  }

  void hold(bool on) {
    std::lock_guard lock(mutex_);
    hold_ = on;
  }
  // True once at least `count` requests are held unanswered.
  bool wait_held(std::size_t count, std::chrono::milliseconds timeout = short_wait) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return held_.size() >= count; });
  }
  std::vector<Responder> take_held() {
    std::lock_guard lock(mutex_);
    return std::exchange(held_, {});
  }
  std::size_t handled() const {
    std::lock_guard lock(mutex_);
    return requesters_.size();
  }
  std::vector<std::string> requesters() const {
    std::lock_guard lock(mutex_);
    return requesters_;
  }
  const std::string& name() const noexcept { return name_; }

 private:
  std::string name_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool hold_ = false;
  std::vector<Responder> held_;
  std::vector<std::string> requesters_;
};

Status add_handler(Client& client, std::string_view path, Handler& handler,
                   HandlerOptions options = {}) {
  return await(client.add_request_handler(path, handler.fn(), options));
}

// Sends `count` requests from `client`, at most `window` in flight, and counts the answers by
// text (the answering handler's name); failures are counted under "<code>".
std::map<std::string, std::size_t> send_and_count(Client& client, std::string_view path,
                                                  std::size_t count, std::size_t window = 100) {
  std::map<std::string, std::size_t> counts;
  for (std::size_t sent = 0; sent < count;) {
    std::vector<std::future<Response>> answers;
    for (; sent < count && answers.size() < window; ++sent)
      answers.push_back(client.send_request(path, "r" + std::to_string(sent), request_timeout));
    for (auto& a : answers) {
      auto r = get(a, long_wait);
      if (r.status)
        ++counts[std::string(r.text())];
      else
        ++counts["<" + describe(r) + ">"];
    }
  }
  return counts;
}

std::string to_string(const std::map<std::string, std::size_t>& counts) {
  std::string s;
  for (auto& [name, n] : counts) s += name + "=" + std::to_string(n) + " ";
  return s;
}

// Each of `names` got count / names.size() answers, within 10%, and nothing else answered.
void expect_even_spread(const std::map<std::string, std::size_t>& counts,
                        const std::vector<std::string>& names, std::size_t count) {
  double share = static_cast<double>(count) / static_cast<double>(names.size());
  std::size_t total = 0;
  for (auto& name : names) {
    auto it = counts.find(name);
    std::size_t got = it == counts.end() ? 0 : it->second;
    total += got;
    EXPECT_GE(static_cast<double>(got), share * 0.9) << name << ": " << to_string(counts);
    EXPECT_LE(static_cast<double>(got), share * 1.1) << name << ": " << to_string(counts);
  }
  EXPECT_EQ(total, count) << "answers from elsewhere, or failures: " << to_string(counts);
}

// ---- the basics ----------------------------------------------------------------------------

TEST(RequestBasics, ping_is_answered_pong_and_the_handler_sees_the_requesters_session_id) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  std::mutex mutex;
  std::vector<std::string> seen;  // requester, path, type, text of each request
  Client handler, requester;
  ASSERT_TRUE(connect_client(handler, broker.url(), "handler"));
  ASSERT_TRUE(connect_client(requester, broker.url(), "requester"));
  ASSERT_TRUE(await(
      handler.add_request_handler("Svc/ping", [&](const Request& request, Responder responder) {
        {
          std::lock_guard lock(mutex);
          seen.push_back(std::string(request.requester) + " " + std::string(request.path) + " " +
                         std::string(codec::to_string(request.type)) + " " +
                         std::string(request.text()));
        }
        responder.respond(request.text() == "ping" ? "pong" : "what?");
      })));

  auto r = get(requester.send_request("Svc/ping", "ping", request_timeout));
  ASSERT_TRUE(r.status) << describe(r);
  EXPECT_EQ(r.text(), "pong");
  EXPECT_EQ(r.type, TopicType::string);
  ASSERT_FALSE(requester.session_id().empty());
  std::lock_guard lock(mutex);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], requester.session_id() + " Svc/ping string ping");
  EXPECT_NE(requester.session_id(), handler.session_id());
}

TEST(RequestBasics, payload_types_travel_both_ways_json_and_binary) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  Client handler, requester;
  ASSERT_TRUE(connect_client(handler, broker.url(), "handler"));
  ASSERT_TRUE(connect_client(requester, broker.url(), "requester"));
  ASSERT_TRUE(await(
      handler.add_request_handler("Svc/typed", [](const Request& request, Responder responder) {
        if (request.type == TopicType::json) {
          responder.respond(R"({"answer":)" + std::string(request.text()) + "}", TopicType::json);
        } else if (request.type == TopicType::binary) {
          std::vector<std::byte> reversed(request.payload.rbegin(), request.payload.rend());
          responder.respond(reversed, TopicType::binary);
        } else {
          responder.fail("unexpected type " + std::string(codec::to_string(request.type)));
        }
      })));

  auto j = get(
      requester.send_request("Svc/typed", R"({"q":[1,2,3]})", request_timeout, TopicType::json));
  ASSERT_TRUE(j.status) << describe(j);
  EXPECT_EQ(j.type, TopicType::json);
  EXPECT_EQ(j.text(), R"({"answer":{"q":[1,2,3]}})");

  // Every byte value, zeros included.
  std::vector<std::byte> all(256);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::byte>(i);
  auto b = get(requester.send_request("Svc/typed", std::span<const std::byte>(all), request_timeout,
                                      TopicType::binary));
  ASSERT_TRUE(b.status) << describe(b);
  EXPECT_EQ(b.type, TopicType::binary);
  ASSERT_EQ(b.payload.size(), all.size());
  EXPECT_TRUE(std::equal(b.payload.begin(), b.payload.end(), all.rbegin()));

  // The callback overload: the answer arrives on the client thread.
  auto promise = std::make_shared<std::promise<Response>>();
  auto future = promise->get_future();
  requester.send_request(
      "Svc/typed", bytes_of("7"), request_timeout,
      [promise](Response r) { promise->set_value(std::move(r)); }, TopicType::json);
  auto c = get(future);
  ASSERT_TRUE(c.status) << describe(c);
  EXPECT_EQ(c.text(), R"({"answer":7})");
  EXPECT_EQ(c.type, TopicType::json);
}

TEST(RequestBasics, a_session_can_answer_its_own_requests) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  Handler self("self");
  Client client;
  ASSERT_TRUE(connect_client(client, broker.url(), "self"));
  ASSERT_TRUE(add_handler(client, "Svc/self", self));
  auto r = get(client.send_request("Svc/self", "hello", request_timeout));
  ASSERT_TRUE(r.status) << describe(r);
  EXPECT_EQ(r.text(), "self");
  EXPECT_EQ(self.requesters(), std::vector<std::string>{client.session_id()});
}

// ---- routing -------------------------------------------------------------------------------

TEST(RequestSticky, each_requester_keeps_reaching_the_handler_it_reached_first) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  Handler h1("h1"), h2("h2");
  Client c1, c2;
  ASSERT_TRUE(connect_client(c1, broker.url(), "h1"));
  ASSERT_TRUE(connect_client(c2, broker.url(), "h2"));
  ASSERT_TRUE(add_handler(c1, "Svc/sticky", h1));
  ASSERT_TRUE(add_handler(c2, "Svc/sticky", h2));

  constexpr std::size_t requester_count = 3, rounds = 30;
  std::vector<std::unique_ptr<Client>> requesters;
  for (std::size_t i = 0; i < requester_count; ++i) {
    requesters.push_back(std::make_unique<Client>());
    ASSERT_TRUE(connect_client(*requesters.back(), broker.url(), "requester-" + std::to_string(i)));
  }
  // Interleaved, so that the round-robin moves on between one requester's requests.
  std::vector<std::vector<std::string>> answers(requester_count);
  for (std::size_t round = 0; round < rounds; ++round)
    for (std::size_t i = 0; i < requester_count; ++i) {
      auto r = get(requesters[i]->send_request("Svc/sticky", "q", request_timeout));
      ASSERT_TRUE(r.status) << "requester " << i << " round " << round << ": " << describe(r);
      answers[i].emplace_back(r.text());
    }
  std::set<std::string> reached;
  for (std::size_t i = 0; i < requester_count; ++i) {
    std::set<std::string> names(answers[i].begin(), answers[i].end());
    EXPECT_EQ(names.size(), 1u) << "requester " << i << " reached " << names.size()
                                << " handlers: " << ::testing::PrintToString(answers[i]);
    reached.insert(names.begin(), names.end());
  }
  // First requests are spread round-robin: three requesters cannot all land on one handler.
  EXPECT_EQ(reached, (std::set<std::string>{"h1", "h2"}));
  EXPECT_EQ(h1.handled() + h2.handled(), requester_count * rounds);
}

// 1,000 requests from one client over two handlers, then a third handler joins and the next
// 1,000 are spread over three. Run with non-sticky routing chosen either way.
void expect_round_robin_with_a_late_joiner(const std::string& url, HandlerOptions options) {
  Handler h1("h1"), h2("h2"), h3("h3");
  Client c1, c2, c3, requester;
  ASSERT_TRUE(connect_client(c1, url, "h1"));
  ASSERT_TRUE(connect_client(c2, url, "h2"));
  ASSERT_TRUE(connect_client(requester, url, "requester"));
  ASSERT_TRUE(connect_client(c3, url, "h3"));
  ASSERT_TRUE(add_handler(c1, "Svc/rr", h1, options));
  ASSERT_TRUE(add_handler(c2, "Svc/rr", h2, options));

  constexpr std::size_t n = 1000;
  auto first = send_and_count(requester, "Svc/rr", n);
  expect_even_spread(first, {"h1", "h2"}, n);

  ASSERT_TRUE(add_handler(c3, "Svc/rr", h3, options));
  auto second = send_and_count(requester, "Svc/rr", n);
  expect_even_spread(second, {"h1", "h2", "h3"}, n);
}

TEST(RequestRoundRobin, non_sticky_handlers_share_requests_evenly_and_a_new_one_takes_its_share) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  expect_round_robin_with_a_late_joiner(broker.url(), HandlerOptions{.sticky = false});
}

TEST(RequestRoundRobin, broker_config_sticky_false_spreads_requests_of_default_handlers) {
  BrokerConfig config = with_shards(2);
  config.config_toml = "[requests]\nsticky = false\n";
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  expect_round_robin_with_a_late_joiner(broker.url(), HandlerOptions{});
}

// ---- handlers that go away -----------------------------------------------------------------

// Handler a is the only one when the requester first asks, so the requester sticks to it;
// then b joins and a holds the next request. `end_a` takes a away; the held request must fail
// with handler_gone well before its timeout, and later requests reach b.
template <class EndA>
void expect_handler_gone_then_survivor(const std::string& url, Client& ca, Handler& a, EndA end_a) {
  Handler b("b");
  Client cb, requester;
  ASSERT_TRUE(add_handler(ca, "Svc/gone", a));
  ASSERT_TRUE(connect_client(requester, url, "requester"));
  auto warm = get(requester.send_request("Svc/gone", "warm", request_timeout));
  ASSERT_TRUE(warm.status) << describe(warm);
  ASSERT_EQ(warm.text(), "a");
  ASSERT_TRUE(connect_client(cb, url, "b"));
  ASSERT_TRUE(add_handler(cb, "Svc/gone", b));

  a.hold(true);
  auto pending = requester.send_request("Svc/gone", "held", request_timeout);
  ASSERT_TRUE(a.wait_held(1)) << "the sticky requester's request did not reach a";
  end_a();
  auto r = get(pending, prompt);
  EXPECT_EQ(r.status.code, ErrorCode::handler_gone)
      << describe(r) << " (expected handler_gone within " << prompt.count()
      << " s; the request's timeout is " << request_timeout.count() << " s)";

  for (int i = 0; i < 10; ++i) {
    auto next = get(requester.send_request("Svc/gone", "next", request_timeout));
    ASSERT_TRUE(next.status) << "request " << i << " after a left: " << describe(next);
    EXPECT_EQ(next.text(), "b") << "request " << i;
  }
  // A late answer from a's kept Responder changes nothing.
  for (auto& responder : a.take_held()) responder.respond("too late");
  auto after = get(requester.send_request("Svc/gone", "after", request_timeout));
  EXPECT_EQ(after.text(), "b") << describe(after);
}

TEST(RequestHandlerGone,
     closing_the_handlers_session_fails_its_requests_fast_and_moves_requesters) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  Handler a("a");
  Client ca;
  ASSERT_TRUE(connect_client(ca, broker.url(), "a"));
  expect_handler_gone_then_survivor(broker.url(), ca, a, [&] { ca.close(); });
}

// A hard kill: the handler's connection is reset without a Close, and (reconnection off) its
// session ends with the connection.
TEST(RequestHandlerGone, a_handler_whose_connection_is_cut_fails_its_requests_fast) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());
  Handler a("a");
  Client ca;
  ASSERT_TRUE(connect_client_once(ca, proxy.url(), "a"));
  expect_handler_gone_then_survivor(broker.url(), ca, a, [&] { ASSERT_TRUE(proxy.reset(0)); });
}

// `brook reply ARGS` as a child process (the built CLI), its stderr in `err_path`. Dies with
// the test process; kill() sends SIGKILL and reaps it, bounded. Main test thread only.
class ReplyChild {
 public:
  ReplyChild(const std::vector<std::string>& args, const std::string& err_path) {
    std::vector<std::string> argv{BROOK_CLI_PATH, "reply"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> c_args;
    for (auto& a : argv) c_args.push_back(a.data());
    c_args.push_back(nullptr);
    int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {  // only async-signal-safe calls until exec: the parent has threads
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      if (err_fd < 0 || null_fd < 0 || ::dup2(null_fd, 0) < 0 || ::dup2(null_fd, 1) < 0 ||
          ::dup2(err_fd, 2) < 0)
        ::_exit(126);
      ::execv(c_args[0], c_args.data());
      ::_exit(127);
    }
    if (err_fd >= 0) ::close(err_fd);
    if (null_fd >= 0) ::close(null_fd);
  }
  ~ReplyChild() { kill(); }
  ReplyChild(const ReplyChild&) = delete;
  ReplyChild& operator=(const ReplyChild&) = delete;

  bool started() const noexcept { return pid_ > 0; }
  // SIGKILL and reap; true once reaped (within 10 s).
  bool kill() {
    if (pid_ <= 0) return true;
    ::kill(pid_, SIGKILL);
    bool reaped = eventually(
        [&] {
          int status = 0;
          return ::waitpid(pid_, &status, WNOHANG) == pid_;
        },
        short_wait);
    pid_ = -1;
    return reaped;
  }

 private:
  pid_t pid_ = -1;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The hardest kill: a `brook reply` process (reconnection off, so its session ends with its
// connection) gets SIGKILL while its --exec command holds a request.
TEST(RequestHandlerGone, a_brook_reply_process_killed_mid_request_fails_its_requests_fast) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  const std::string dir = make_temp_dir("brook-request-kill");
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      // The held command (our grandchild) outlives brook reply: end it by its pid.
      if (auto text = read_file(dir + "/command.pid"); !text.empty())
        if (pid_t pid = static_cast<pid_t>(std::atol(text.c_str())); pid > 1) ::kill(pid, SIGKILL);
      remove_temp_dir(dir);
    }
  } cleanup{dir};
  const std::string command = "if [ \"$(cat)\" = warm ]; then echo a; else echo $$ > " + dir +
                              "/command.pid.tmp && mv " + dir + "/command.pid.tmp " + dir +
                              "/command.pid; exec sleep 30; fi";
  ReplyChild a({"--url", broker.url(), "--reconnect-timeout", "0", "--exec", command, "Svc/kill"},
               dir + "/reply.err");
  ASSERT_TRUE(a.started());
  ASSERT_TRUE(eventually(
      [&] { return read_file(dir + "/reply.err").find("handling Svc/kill") != std::string::npos; },
      short_wait))
      << "brook reply did not start handling: " << read_file(dir + "/reply.err");

  Handler b("b");
  Client cb, requester;
  ASSERT_TRUE(connect_client(requester, broker.url(), "requester"));
  auto warm = get(requester.send_request("Svc/kill", "warm", request_timeout));
  ASSERT_TRUE(warm.status) << describe(warm);
  ASSERT_EQ(warm.text(), "a");
  ASSERT_TRUE(connect_client(cb, broker.url(), "b"));
  ASSERT_TRUE(add_handler(cb, "Svc/kill", b));

  auto pending = requester.send_request("Svc/kill", "held", request_timeout);
  ASSERT_TRUE(eventually([&] { return !read_file(dir + "/command.pid").empty(); }, short_wait))
      << "the held request's command did not start";
  ASSERT_TRUE(a.kill()) << "brook reply was not reaped after SIGKILL";
  auto r = get(pending, prompt);
  EXPECT_EQ(r.status.code, ErrorCode::handler_gone)
      << describe(r) << " (expected handler_gone within " << prompt.count()
      << " s of the SIGKILL; the request's timeout is " << request_timeout.count() << " s)";
  for (int i = 0; i < 10; ++i) {
    auto next = get(requester.send_request("Svc/kill", "next", request_timeout));
    ASSERT_TRUE(next.status) << "request " << i << " after the kill: " << describe(next);
    EXPECT_EQ(next.text(), "b") << "request " << i;
  }
}

TEST(RequestHandlerGone, unregistering_fails_the_handlers_requests_in_flight_and_moves_requesters) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  Handler a("a");
  Client ca;
  ASSERT_TRUE(connect_client(ca, broker.url(), "a"));
  expect_handler_gone_then_survivor(
      broker.url(), ca, a, [&] { EXPECT_TRUE(await(ca.remove_request_handler("Svc/gone"))); });
  // a's session lives on but gets no requests any more.
  EXPECT_TRUE(round_trip(ca));
}

// ---- timeouts, missing and failing handlers ------------------------------------------------

TEST(RequestTimeout, a_handler_that_never_answers_gives_request_timeout) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  Handler silent("silent");
  Client handler, requester;
  ASSERT_TRUE(connect_client(handler, broker.url(), "silent"));
  ASSERT_TRUE(connect_client(requester, broker.url(), "requester"));
  ASSERT_TRUE(add_handler(handler, "Svc/silent", silent));
  silent.hold(true);

  auto r =
      get(requester.send_request("Svc/silent", "anyone?", std::chrono::milliseconds(300)), prompt);
  EXPECT_EQ(r.status.code, ErrorCode::request_timeout) << describe(r);
  ASSERT_TRUE(silent.wait_held(1));

  // The answer after the timeout goes nowhere; the next request is answered.
  silent.hold(false);
  for (auto& responder : silent.take_held()) responder.respond("late");
  auto next = get(requester.send_request("Svc/silent", "again", request_timeout));
  ASSERT_TRUE(next.status) << describe(next);
  EXPECT_EQ(next.text(), "silent");
}

TEST(RequestTimeout, broker_caps_a_requested_timeout_at_timeout_max_ms) {
  BrokerConfig config = with_shards(2);
  config.config_toml = "[requests]\ntimeout_max_ms = 500\n";
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  Handler silent("silent");
  Client handler, requester;
  ASSERT_TRUE(connect_client(handler, broker.url(), "silent"));
  ASSERT_TRUE(connect_client(requester, broker.url(), "requester"));
  ASSERT_TRUE(add_handler(handler, "Svc/silent", silent));
  silent.hold(true);
  auto r = get(requester.send_request("Svc/silent", "anyone?", std::chrono::seconds(60)), prompt);
  EXPECT_EQ(r.status.code, ErrorCode::request_timeout)
      << describe(r) << " (timeout 60 s asked, broker maximum 500 ms)";
}

TEST(RequestNoHandler, a_path_without_handlers_gives_no_handler_also_after_removal) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  Handler h("h");
  Client handler, requester;
  ASSERT_TRUE(connect_client(handler, broker.url(), "h"));
  ASSERT_TRUE(connect_client(requester, broker.url(), "requester"));

  auto none = get(requester.send_request("Svc/nobody", "hello", request_timeout), prompt);
  EXPECT_EQ(none.status.code, ErrorCode::no_handler) << describe(none);

  ASSERT_TRUE(add_handler(handler, "Svc/nobody", h));
  auto some = get(requester.send_request("Svc/nobody", "hello", request_timeout));
  ASSERT_TRUE(some.status) << describe(some);
  EXPECT_EQ(some.text(), "h");

  ASSERT_TRUE(await(handler.remove_request_handler("Svc/nobody")));
  auto removed = get(requester.send_request("Svc/nobody", "hello", request_timeout), prompt);
  EXPECT_EQ(removed.status.code, ErrorCode::no_handler) << describe(removed);
  EXPECT_EQ(h.handled(), 1u);

  // Registered again, then its session closes: nobody is left.
  ASSERT_TRUE(add_handler(handler, "Svc/nobody", h));
  auto again = get(requester.send_request("Svc/nobody", "hello", request_timeout));
  ASSERT_TRUE(again.status) << describe(again);
  handler.close();
  ASSERT_TRUE(eventually(
      [&] {
        auto r = get(requester.send_request("Svc/nobody", "hello", request_timeout), prompt);
        return r.status.code == ErrorCode::no_handler;
      },
      short_wait))
      << "requests still find a handler after its session closed";
}

TEST(RequestFailure, fail_gives_handler_failed_with_the_handlers_message) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  Client handler, requester;
  ASSERT_TRUE(connect_client(handler, broker.url(), "shop"));
  ASSERT_TRUE(connect_client(requester, broker.url(), "requester"));
  ASSERT_TRUE(await(
      handler.add_request_handler("Svc/shop", [](const Request& request, Responder responder) {
        if (request.text() == "buy") {
          responder.fail("out of stock");
        } else if (request.text() == "fail twice") {
          responder.fail("first");
          responder.respond("second");  // the first answer wins
        }
        // "drop": the Responder goes away unanswered.
      })));

  auto failed = get(requester.send_request("Svc/shop", "buy", request_timeout), prompt);
  EXPECT_EQ(failed.status.code, ErrorCode::handler_failed) << describe(failed);
  EXPECT_NE(failed.status.message.find("out of stock"), std::string::npos) << describe(failed);

  auto dropped = get(requester.send_request("Svc/shop", "drop", request_timeout), prompt);
  EXPECT_EQ(dropped.status.code, ErrorCode::handler_failed) << describe(dropped);
  EXPECT_NE(dropped.status.message.find("no response"), std::string::npos) << describe(dropped);

  auto first = get(requester.send_request("Svc/shop", "fail twice", request_timeout), prompt);
  EXPECT_EQ(first.status.code, ErrorCode::handler_failed) << describe(first);
  EXPECT_NE(first.status.message.find("first"), std::string::npos) << describe(first);
}

TEST(RequestLater, a_responder_moved_to_another_thread_answers_after_the_handler_returned) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  std::mutex mutex;
  std::vector<std::jthread> workers;  // joined when the test ends, after the clients
  Client handler, requester;
  ASSERT_TRUE(connect_client(handler, broker.url(), "worker"));
  ASSERT_TRUE(connect_client(requester, broker.url(), "requester"));
  ASSERT_TRUE(await(
      handler.add_request_handler("Svc/later", [&](const Request& request, Responder responder) {
        std::lock_guard lock(mutex);
        workers.emplace_back(
            [responder = std::move(responder), text = std::string(request.text())]() mutable {
              std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the work
              responder.respond("done " + text);
            });
      })));

  constexpr int n = 10;
  std::vector<std::future<Response>> answers;
  for (int i = 0; i < n; ++i)
    answers.push_back(
        requester.send_request("Svc/later", "job" + std::to_string(i), request_timeout));
  for (int i = 0; i < n; ++i) {
    auto r = get(answers[i]);
    ASSERT_TRUE(r.status) << "job " << i << ": " << describe(r);
    EXPECT_EQ(r.text(), "done job" + std::to_string(i));
  }
  handler.close();
  std::lock_guard lock(mutex);
  workers.clear();  // joins
}

// ---- limits --------------------------------------------------------------------------------

TEST(RequestLimits, requests_beyond_max_in_flight_get_too_many_requests_at_once) {
  BrokerConfig config = with_shards(2);
  config.config_toml = "[requests]\nmax_in_flight = 4\n";
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  Handler slow("slow");
  Client handler, requester;
  ASSERT_TRUE(connect_client(handler, broker.url(), "slow"));
  ASSERT_TRUE(connect_client(requester, broker.url(), "requester"));
  ASSERT_TRUE(add_handler(handler, "Svc/slow", slow));
  slow.hold(true);

  std::vector<std::future<Response>> in_flight;
  for (int i = 0; i < 4; ++i)
    in_flight.push_back(
        requester.send_request("Svc/slow", "q" + std::to_string(i), request_timeout));
  ASSERT_TRUE(slow.wait_held(4)) << "the first 4 requests did not reach the handler";
  auto fifth = get(requester.send_request("Svc/slow", "q4", request_timeout), prompt);
  EXPECT_EQ(fifth.status.code, ErrorCode::too_many_requests) << describe(fifth);

  slow.hold(false);
  for (auto& responder : slow.take_held()) responder.respond("released");
  for (int i = 0; i < 4; ++i) {
    auto r = get(in_flight[i]);
    ASSERT_TRUE(r.status) << "request " << i << ": " << describe(r);
    EXPECT_EQ(r.text(), "released");
  }
  // Room again: four at a time succeed.
  for (int round = 0; round < 3; ++round) {
    std::vector<std::future<Response>> batch;
    for (int i = 0; i < 4; ++i)
      batch.push_back(requester.send_request("Svc/slow", "again", request_timeout));
    for (auto& a : batch) {
      auto r = get(a);
      ASSERT_TRUE(r.status) << "round " << round << ": " << describe(r);
      EXPECT_EQ(r.text(), "slow");
    }
  }
}

// A request or an answer larger than the broker's frame limit is refused with an error, and
// both sessions go on working.
TEST(RequestLimits, oversized_request_and_oversized_answer_are_refused_and_sessions_keep_working) {
  BrokerConfig config = with_shards(2);
  config.config_toml = "[limits]\nmax_frame_bytes = 65536\n";
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  Client handler, requester;
  ASSERT_TRUE(connect_client(handler, broker.url(), "handler"));
  ASSERT_TRUE(connect_client(requester, broker.url(), "requester"));
  const std::string big(100'000, 'x');
  ASSERT_TRUE(await(
      handler.add_request_handler("Svc/big", [big](const Request& request, Responder responder) {
        if (request.text() == "big answer")
          responder.respond(big);
        else
          responder.respond("size " + std::to_string(request.payload.size()));
      })));

  auto big_request = get(requester.send_request("Svc/big", big, request_timeout), long_wait);
  EXPECT_FALSE(big_request.status)
      << "a 100,000-byte request through a 65,536-byte frame limit: " << describe(big_request);
  // The client knows the broker's limit (from Connected) and refuses the request itself.
  EXPECT_EQ(big_request.status.code, ErrorCode::frame_too_large) << describe(big_request);
  auto small = get(requester.send_request("Svc/big", "small", request_timeout));
  EXPECT_TRUE(small.status) << "the requester's session after the oversized request: "
                            << describe(small);
  EXPECT_EQ(small.text(), "size 5");
  EXPECT_TRUE(requester.is_connected());

  auto big_answer =
      get(requester.send_request("Svc/big", "big answer", request_timeout), long_wait);
  EXPECT_FALSE(big_answer.status) << "a 100,000-byte answer through a 65,536-byte frame limit: "
                                  << describe(big_answer);
  EXPECT_EQ(big_answer.status.code, ErrorCode::handler_failed) << describe(big_answer);
  EXPECT_NE(big_answer.status.message.find("larger than"), std::string::npos)
      << describe(big_answer);
  auto after = get(requester.send_request("Svc/big", "small", request_timeout));
  EXPECT_TRUE(after.status) << "the handler's session after the oversized answer: "
                            << describe(after);
  EXPECT_TRUE(handler.is_connected());
}

// ---- requests and pub/sub together ---------------------------------------------------------

TEST(RequestWithPubSub, one_session_gets_both_its_updates_and_its_answers) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log;
  Handler mine("mixed-handler");
  Client mixed, service;
  ASSERT_TRUE(connect_client(mixed, broker.url(), "mixed"));
  ASSERT_TRUE(connect_client(service, broker.url(), "service"));
  ASSERT_TRUE(subscribe_and_wait(mixed, "Mixed/prices", log));
  // The service publishes a price for each request before answering it.
  ASSERT_TRUE(await(service.add_request_handler(
      "Svc/quote", [&service](const Request& request, Responder responder) {
        service.publish("Mixed/prices", "price for " + std::string(request.text()));
        responder.respond("quoted " + std::string(request.text()));
      })));
  // The mixed session also answers requests.
  ASSERT_TRUE(add_handler(mixed, "Svc/mixed", mine));

  constexpr int n = 50;
  for (int i = 0; i < n; ++i) {
    auto r = get(mixed.send_request("Svc/quote", "q" + std::to_string(i), request_timeout));
    ASSERT_TRUE(r.status) << "request " << i << ": " << describe(r);
    EXPECT_EQ(r.text(), "quoted q" + std::to_string(i));
    auto back = get(service.send_request("Svc/mixed", "hi", request_timeout));
    ASSERT_TRUE(back.status) << "request " << i << " to the mixed session: " << describe(back);
    EXPECT_EQ(back.text(), "mixed-handler");
  }
  ASSERT_TRUE(log.wait_for(n, short_wait)) << "received " << log.size() << " of " << n;
  auto got = log.entries();
  ASSERT_EQ(got.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) EXPECT_EQ(got[i].value, "price for q" + std::to_string(i));
  EXPECT_EQ(mine.requesters(), std::vector<std::string>(n, service.session_id()));
}

// ---- answers from sessions that were not asked (raw frames) --------------------------------

// Reads frames from `raw` until `done(message)`; false on timeout or a broken stream.
template <class Done>
bool read_until(RawConnection& raw, codec::FrameDecoder& decoder, Done done) {
  for (int frames = 0; frames < 1000; ++frames) {
    auto frame = raw.read_frame(short_wait);
    if (!frame) return false;
    auto decoded = decoder.decode(*frame);
    if (!decoded.ok()) return false;
    if (done(decoded.message)) return true;
  }
  return false;
}

// One shard, so that the forged answer is handled before the genuine one.
TEST(RequestForgery, an_answer_from_a_session_that_was_not_asked_is_dropped) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  codec::FrameEncoder encoder;
  codec::FrameDecoder decoder;
  RawConnection handler(broker.port()), forger(broker.port());
  ASSERT_TRUE(handler.connected() && forger.connected());
  ASSERT_TRUE(handler.greet());
  ASSERT_TRUE(forger.greet());
  ASSERT_TRUE(handler.send_bytes(encoder.add_handler(1, "Svc/raw", true)));
  ASSERT_TRUE(read_until(handler, decoder, [](const codec::Message& m) {
    if (auto* ack = std::get_if<codec::AckMsg>(&m)) return ack->request_id == 1u;
    if (auto* e = std::get_if<codec::ErrorMsg>(&m))
      ADD_FAILURE() << "add_handler refused: " << codec::to_string(e->code) << " " << e->message;
    return std::holds_alternative<codec::ErrorMsg>(m);
  })) << "no Ack for AddHandler";

  Client requester;
  ASSERT_TRUE(connect_client(requester, broker.url(), "requester"));
  auto answer = requester.send_request("Svc/raw", "question", request_timeout);
  std::uint64_t id = 0;
  ASSERT_TRUE(read_until(handler, decoder, [&](const codec::Message& m) {
    auto* h = std::get_if<codec::HandleRequestMsg>(&m);
    if (h) id = h->id;
    return h != nullptr;
  })) << "the raw handler got no HandleRequest";

  const std::string forged = "forged", genuine = "genuine";
  ASSERT_TRUE(forger.send_bytes(encoder.response(codec::ResponseMsg{.id = id,
                                                                    .failed = false,
                                                                    .message = {},
                                                                    .type = TopicType::string,
                                                                    .payload = bytes_of(forged)})));
  // The forger's ping is answered after its forged response was handled (one shard).
  ASSERT_TRUE(forger.send_bytes(encoder.ping(77, 0)));
  ASSERT_TRUE(read_until(forger, decoder, [](const codec::Message& m) {
    return std::holds_alternative<codec::PongMsg>(m);
  })) << "the forger's session stopped answering pings";

  ASSERT_TRUE(
      handler.send_bytes(encoder.response(codec::ResponseMsg{.id = id,
                                                             .failed = false,
                                                             .message = {},
                                                             .type = TopicType::string,
                                                             .payload = bytes_of(genuine)})));
  auto r = get(answer);
  ASSERT_TRUE(r.status) << describe(r);
  EXPECT_EQ(r.text(), "genuine");
  EXPECT_TRUE(round_trip(requester));
}

// ---- a handler that is only disconnected ---------------------------------------------------

// Handler a is cut off (its reconnection attempts turned away) while it holds a request of its
// sticky requester: new requests go to the connected handler b at once, and once a has
// resumed its session it answers the held request normally and gets its requester back.
TEST(RequestDisconnectedHandler, new_requests_go_to_a_connected_handler_and_the_held_one_is_answered_after_the_resume) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());
  Handler a("a"), b("b");
  Client ca, cb, requester;
  ClientOptions options;
  options.url = proxy.url();
  options.client_name = "a";
  options.reconnect_delay = std::chrono::milliseconds(100);
  ASSERT_TRUE(ca.connect(options));
  ASSERT_TRUE(add_handler(ca, "Svc/away", a));
  ASSERT_TRUE(connect_client(requester, broker.url(), "requester"));
  ASSERT_EQ(get(requester.send_request("Svc/away", "warm", request_timeout)).text(), "a");
  ASSERT_TRUE(connect_client(cb, broker.url(), "b"));
  ASSERT_TRUE(add_handler(cb, "Svc/away", b));

  a.hold(true);
  auto held = requester.send_request("Svc/away", "held", request_timeout);
  ASSERT_TRUE(a.wait_held(1));
  proxy.refuse_new_connections(true);
  ASSERT_TRUE(proxy.reset(0));
  // The broker learns of the cut when its socket fails; from then on b takes the requests.
  ASSERT_TRUE(eventually(
      [&] {
        return get(requester.send_request("Svc/away", "probe", std::chrono::milliseconds(500)),
                   prompt).text() == "b";
      },
      long_wait));
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(get(requester.send_request("Svc/away", "meanwhile", request_timeout)).text(), "b")
        << "request " << i << " while a is away";

  proxy.refuse_new_connections(false);
  ASSERT_TRUE(eventually([&] { return ca.state() == ClientState::connected; }, long_wait));
  for (auto& responder : a.take_held()) responder.respond("a, after the resume");
  auto answer = get(held, long_wait);
  EXPECT_TRUE(answer.status) << describe(answer);
  EXPECT_EQ(answer.text(), "a, after the resume");
  a.hold(false);
  EXPECT_TRUE(eventually(
      [&] { return get(requester.send_request("Svc/away", "back", request_timeout)).text() == "a"; },
      long_wait))
      << "the sticky requester did not return to a once it had resumed";
}

// ---- payload types ------------------------------------------------------------------------

TEST(RequestTypes, payloads_are_checked_against_their_declared_type_both_ways) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  Client service, requester;
  ASSERT_TRUE(connect_client(service, broker.url(), "service"));
  ASSERT_TRUE(await(service.add_request_handler(
      "Svc/json", [](const Request& r, Responder responder) {
        responder.respond(r.text() == "{}" ? std::string_view("not json") : std::string_view("{\"ok\":true}"),
                          TopicType::json);
      })));
  ASSERT_TRUE(connect_client(requester, broker.url(), "requester"));

  auto bad_request = get(requester.send_request("Svc/json", "{oops", request_timeout, TopicType::json));
  EXPECT_EQ(bad_request.status.code, ErrorCode::invalid_value) << describe(bad_request);
  EXPECT_NE(bad_request.status.message.find("not valid JSON"), std::string::npos) << describe(bad_request);

  auto bad_answer = get(requester.send_request("Svc/json", "{}", request_timeout, TopicType::json));
  EXPECT_EQ(bad_answer.status.code, ErrorCode::handler_failed) << describe(bad_answer);
  EXPECT_NE(bad_answer.status.message.find("not valid JSON"), std::string::npos) << describe(bad_answer);

  auto good = get(requester.send_request("Svc/json", "[1]", request_timeout, TopicType::json));
  EXPECT_TRUE(good.status) << describe(good);
  EXPECT_EQ(good.type, TopicType::json);
  EXPECT_EQ(good.text(), "{\"ok\":true}");
}

}  // namespace
}  // namespace brook::test
