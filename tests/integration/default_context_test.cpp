// Integration: Clients made without a ClientContext run on the process's default one. However
// many there are, the process has one Brook I/O thread ("brook-client"), every callback runs
// on it, and it is gone once the last of them has closed. A Client destroyed or connected
// from a callback on that thread never waits for the thread itself; a child process after
// fork() gets a default context of its own, and a process that exits with Clients still open
// (or destroys a static one on its way out) ends cleanly.
#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

using namespace std::chrono_literals;

constexpr auto long_wait = std::chrono::seconds(60);

std::string thread_name(const std::string& tid) {
  std::string name;
  std::getline(std::ifstream("/proc/self/task/" + tid + "/comm"), name);
  return name;
}

// This process's threads named as Brook's client loops name theirs.
std::size_t brook_client_threads() {
  std::size_t n = 0;
  if (DIR* dir = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(dir))
      if (e->d_name[0] != '.' && thread_name(e->d_name) == "brook-client") ++n;
    ::closedir(dir);
  }
  return n;
}

// True once every Brook client thread of this process sleeps (in its io_uring wait). The
// leak checker of a forked child cannot read the parent's threads, so a fork should find
// them holding nothing of their own: asleep, between turns.
bool client_threads_asleep() {
  DIR* dir = ::opendir("/proc/self/task");
  if (!dir) return false;
  bool asleep = true;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.' || thread_name(e->d_name) != "brook-client") continue;
    std::string stat;
    std::getline(std::ifstream(std::string("/proc/self/task/") + e->d_name + "/stat"), stat);
    const auto state = stat.rfind(") ");  // "pid (comm) S ...": the state follows the name
    asleep &= state != std::string::npos && state + 2 < stat.size() && stat[state + 2] == 'S';
  }
  ::closedir(dir);
  return asleep;
}

// The thread ids (kernel tids) that callbacks ran on.
class CallbackThreads {
 public:
  void note() {
    std::lock_guard lock(mutex_);
    tids_.insert(::gettid());
  }
  std::set<pid_t> seen() const {
    std::lock_guard lock(mutex_);
    return tids_;
  }

 private:
  mutable std::mutex mutex_;
  std::set<pid_t> tids_;
};

// Subscribes and waits for the broker's verdict; each update is counted and its thread noted.
Status subscribe_counting(Client& client, const std::string& selector, InOrderCounter& counter,
                          CallbackThreads& threads) {
  std::promise<Status> verdict;
  auto answer = verdict.get_future();
  client.subscribe(
      selector,
      [&counter, &threads](const Update& u) {
        threads.note();
        counter.take(u);
      },
      [&verdict](const Status& s) { verdict.set_value(s); });
  return await(std::move(answer), long_wait);
}

TEST(DefaultContext, clients_made_without_a_context_share_one_io_thread_that_runs_every_callback) {
  constexpr std::size_t sessions = 100;
  constexpr std::uint64_t updates = 50;
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  ASSERT_EQ(brook_client_threads(), 0u) << "a Brook thread before any Client";
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(await(publisher.publish_acked("Default/odds", bytes_of("1")), long_wait));

  CallbackThreads threads;
  std::vector<std::unique_ptr<InOrderCounter>> counters;
  std::vector<std::unique_ptr<Client>> clients;
  for (std::size_t i = 0; i < sessions; ++i) {
    counters.push_back(std::make_unique<InOrderCounter>());
    clients.push_back(std::make_unique<Client>());
    ASSERT_TRUE(connect_client_once(*clients.back(), broker.url(), "default-" + std::to_string(i)));
    ASSERT_TRUE(subscribe_counting(*clients.back(), "Default//", *counters.back(), threads));
  }
  EXPECT_EQ(brook_client_threads(), 1u) << sessions + 1 << " default Clients, one I/O thread";

  for (std::uint64_t n = 2; n <= updates; ++n) {
    ASSERT_TRUE(publisher.publish("Default/odds", std::to_string(n)));
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_TRUE(eventually(
      [&] {
        for (auto& c : counters)
          if (c->received.load() < updates) return false;
        return true;
      },
      long_wait));
  for (auto& c : counters) {
    EXPECT_EQ(c->received.load(), updates);
    EXPECT_FALSE(c->out_of_order.load());
  }
  const auto seen = threads.seen();
  ASSERT_EQ(seen.size(), 1u) << "callbacks ran on " << seen.size() << " threads";
  EXPECT_EQ(thread_name(std::to_string(*seen.begin())), "brook-client");

  clients.clear();
  publisher.close();
  EXPECT_EQ(brook_client_threads(), 0u) << "the last close() leaves no thread behind";
}

TEST(DefaultContext, a_client_with_own_thread_runs_its_callbacks_on_a_thread_of_its_own) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  Client shared, own;
  ASSERT_TRUE(connect_client_once(shared, broker.url(), "shared"));
  ClientOptions options;
  options.url = broker.url();
  options.own_thread = true;
  ASSERT_TRUE(own.connect(options));
  EXPECT_EQ(brook_client_threads(), 2u);
  CallbackThreads on_shared, on_own;
  InOrderCounter shared_count, own_count;
  ASSERT_TRUE(subscribe_counting(shared, "Own/t", shared_count, on_shared));
  ASSERT_TRUE(subscribe_counting(own, "Own/t", own_count, on_own));
  ASSERT_TRUE(await(shared.publish_acked("Own/t", bytes_of("1")), long_wait));
  ASSERT_TRUE(eventually([&] { return shared_count.received.load() == 1 && own_count.received.load() == 1; },
                         long_wait));
  ASSERT_EQ(on_shared.seen().size(), 1u);
  ASSERT_EQ(on_own.seen().size(), 1u);
  EXPECT_NE(*on_shared.seen().begin(), *on_own.seen().begin());
  own.close();
  EXPECT_EQ(brook_client_threads(), 1u) << "its thread ends with it";
}

// One topic, updated every few milliseconds by a publisher of this test's own thread.
class Ticker {
 public:
  explicit Ticker(const std::string& url) {
    EXPECT_TRUE(connect_client_once(client_, url, "ticker"));
    thread_ = std::jthread([this](std::stop_token stop) {
      for (int n = 1; !stop.stop_requested(); ++n) {
        client_.publish("Tick/now", std::to_string(n));
        std::this_thread::sleep_for(2ms);
      }
    });
  }

 private:
  Client client_;
  std::jthread thread_;
};

// Expires once `client`'s session has closed and left its loop, which then frees its callbacks.
std::weak_ptr<int> freed_when_gone(Client& client) {
  auto token = std::make_shared<int>(0);
  client.on_error([token](const Status&) {});
  return token;
}

// The test thread's last call on a client, made known to the callback that destroys it:
// ThreadSanitizer cannot see that the update this callback reacts to follows those calls
// through the broker, and would take the destruction for a race with them.
class LastCall {
 public:
  void made() { made_.store(true, std::memory_order_release); }
  bool seen() const { return made_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> made_{false};
};

TEST(DefaultContext, a_client_destroyed_in_its_own_callback_closes_and_the_others_keep_receiving) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog survivor_log;
  Client survivor;
  ASSERT_TRUE(connect_and_subscribe(survivor, broker.url(), "survivor", "Tick/now", survivor_log));
  auto doomed = std::make_unique<Client>();
  const auto callbacks = freed_when_gone(*doomed);
  std::atomic<int> calls_after{0};
  std::atomic<bool> close_listener_ran{false};
  doomed->on_close([&](const std::string&) { close_listener_ran = true; });
  ASSERT_TRUE(connect_client_once(*doomed, broker.url(), "doomed"));
  LastCall last_call;
  doomed->subscribe("Tick/now", [&](const Update&) {
    if (!doomed) ++calls_after;
    if (last_call.seen()) doomed.reset();  // ~Client in its own callback: it cannot wait here
  });
  last_call.made();
  Ticker ticker(broker.url());
  EXPECT_TRUE(eventually([&] { return callbacks.expired(); }, long_wait)) << "the destroyed client never closed";
  const std::size_t before = survivor_log.size();
  EXPECT_TRUE(survivor_log.wait_for(before + 10, long_wait)) << "the other client stopped receiving";
  EXPECT_EQ(calls_after.load(), 0) << "an update reached a client destroyed before";
  EXPECT_FALSE(close_listener_ran.load()) << "a listener ran after its client was destroyed";
  EXPECT_EQ(brook_client_threads(), 1u);
}

TEST(DefaultContext, a_client_destroyed_in_another_clients_callback_closes_without_waiting) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog killer_log;
  Client killer;
  auto victim = std::make_unique<Client>();
  const auto callbacks = freed_when_gone(*victim);
  ASSERT_TRUE(connect_client_once(*victim, broker.url(), "victim"));
  ASSERT_TRUE(round_trip(*victim));
  LastCall last_call;
  last_call.made();
  ASSERT_TRUE(connect_client_once(killer, broker.url(), "killer"));
  auto log_update = killer_log.handler();
  killer.subscribe("Tick/now", [&](const Update& u) {
    if (last_call.seen()) victim.reset();  // the first time; later a no-op
    log_update(u);
  });
  Ticker ticker(broker.url());
  EXPECT_TRUE(eventually([&] { return callbacks.expired(); }, long_wait)) << "the destroyed client never closed";
  const std::size_t before = killer_log.size();
  EXPECT_TRUE(killer_log.wait_for(before + 10, long_wait)) << "the killer stopped receiving";
}

TEST(DefaultContext, the_last_client_destroyed_in_its_callback_ends_the_thread_and_a_new_client_starts_another) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  ClientOptions ticker_options;
  ticker_options.url = broker.url();
  ticker_options.own_thread = true;  // not on the default context: its last client is `only`
  Client ticker;
  ASSERT_TRUE(ticker.connect(ticker_options));
  auto only = std::make_unique<Client>();
  const auto callbacks = freed_when_gone(*only);
  ASSERT_TRUE(connect_client_once(*only, broker.url(), "only"));
  LastCall last_call;
  only->subscribe("Tick/now", [&](const Update&) {
    if (last_call.seen()) only.reset();
  });
  last_call.made();
  ASSERT_TRUE(await(ticker.publish_acked("Tick/now", bytes_of("1")), long_wait));
  ASSERT_TRUE(eventually([&] { return callbacks.expired(); }, long_wait));
  EXPECT_TRUE(eventually([] { return brook_client_threads() == 1; }, long_wait))
      << "the default context's thread did not end with its last client";

  UpdateLog log;
  Client next;
  ASSERT_TRUE(connect_and_subscribe(next, broker.url(), "next", "Tick/now", log));
  EXPECT_EQ(brook_client_threads(), 2u);
  ASSERT_TRUE(await(ticker.publish_acked("Tick/now", bytes_of("2")), long_wait));
  EXPECT_TRUE(log.wait_until([](const auto& got) { return !got.empty() && got.back().value == "2"; }, long_wait));
}

TEST(DefaultContext, connect_in_a_callback_returns_at_once_and_a_full_outbox_of_that_client_is_back_pressured) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log;
  Client watcher;
  ASSERT_TRUE(connect_and_subscribe(watcher, broker.url(), "watcher", "Late/t", log));
  Client trigger;
  ASSERT_TRUE(connect_client_once(trigger, broker.url(), "trigger"));
  Client late(4096);  // the smallest outbox
  std::promise<Status> connected, first_refusal;
  std::atomic<int> accepted{0};
  bool done = false;  // the loop's thread only
  trigger.subscribe("Go/now", [&](const Update&) {
    if (done) return;
    done = true;
    ClientOptions options;
    options.url = broker.url();
    options.client_name = "late";
    connected.set_value(late.connect(options));
    // Its loop is this thread, which has not taken it yet: a full outbox cannot wait.
    for (int i = 0; i < 1000; ++i) {
      Status s = late.publish("Late/t", std::to_string(i));
      if (!s) {
        first_refusal.set_value(s);
        return;
      }
      ++accepted;
    }
    first_refusal.set_value(Status::ok());
  });
  ASSERT_TRUE(await(trigger.publish_acked("Go/now", bytes_of("go")), long_wait));
  auto answer = connected.get_future();
  ASSERT_EQ(answer.wait_for(long_wait), std::future_status::ready) << "connect() in a callback waited";
  EXPECT_TRUE(answer.get());
  auto refusal = first_refusal.get_future();
  ASSERT_EQ(refusal.wait_for(long_wait), std::future_status::ready);
  EXPECT_EQ(refusal.get().code, ErrorCode::back_pressured);
  ASSERT_GT(accepted.load(), 0);
  // What it accepted goes out once it has connected, in order.
  ASSERT_TRUE(log.wait_for(static_cast<std::size_t>(accepted.load()), long_wait));
  EXPECT_TRUE(eventually([&] { return late.is_connected(); }, long_wait));
  auto got = log.entries();
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i].value, std::to_string(i));
}

// Runs `body` in a forked child and returns how it ended (bounded: a child that hangs is
// killed, which fails the test).
ExitStatus run_in_child(const std::function<int()>& body) {
  ExitStatus result;
  const pid_t child = ::fork();
  if (child < 0) return result;
  if (child == 0) std::exit(body());  // exit(), not _exit(): the exit hooks are part of it
  const auto deadline = std::chrono::steady_clock::now() + long_wait;
  int status = 0;
  while (::waitpid(child, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      result.timed_out = true;
      return result;
    }
    std::this_thread::sleep_for(5ms);
  }
  result.exited = WIFEXITED(status);
  result.code = result.exited ? WEXITSTATUS(status) : -1;
  result.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  return result;
}

#if defined(__SANITIZE_THREAD__)
constexpr bool thread_sanitizer = true;
#else
constexpr bool thread_sanitizer = false;
#endif

TEST(DefaultContextProcess, a_child_after_fork_gets_a_context_of_its_own_and_exits_with_clients_open) {
  if (thread_sanitizer) GTEST_SKIP() << "ThreadSanitizer stops a child of a threaded process from making threads";
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  Client parent;
  ASSERT_TRUE(connect_client_once(parent, broker.url(), "parent"));
  ASSERT_TRUE(round_trip(parent));
  ASSERT_TRUE(eventually(client_threads_asleep, long_wait));
  const std::string url = broker.url();
  ExitStatus child = run_in_child([&] {
    // Made in the child: the parent's loop thread is not here.
    static Client* const open = new Client;  // never closed: the process exits with it running
    if (!connect_client_once(*open, url, "child")) return 2;
    if (!await(open->publish_acked("Fork/t", bytes_of("from the child")), long_wait)) return 3;
    return brook_client_threads() == 1 ? 0 : 4;
  });
  EXPECT_TRUE(child.clean()) << child.describe();
  EXPECT_TRUE(round_trip(parent)) << "the parent's client survived the fork";
}

TEST(DefaultContextProcess, a_static_client_closed_during_exit_ends_the_process_cleanly) {
  if (thread_sanitizer) GTEST_SKIP() << "ThreadSanitizer stops a child of a threaded process from making threads";
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  const std::string url = broker.url();
  ExitStatus child = run_in_child([&] {
    // Destroyed among the statics, after the default context's exit hook has run.
    static Client kept;
    if (!connect_client_once(kept, url, "static")) return 2;
    return round_trip(kept) ? 0 : 3;
  });
  EXPECT_TRUE(child.clean()) << child.describe();
}

}  // namespace
}  // namespace brook::test
