// The fail-safe client against real brokers: a publisher started before its broker, a broker
// stopped and restarted under a publishing client (every accepted update arrives once, in
// order), failover along the server list when the first broker is killed, the client's queue
// refusing calls once full (or when switched off) and losing none it took, and close() going
// out last, after the queue. A FaultProxy in front of the publisher holds its connection back
// until the subscriber is in place, so that "every update arrives" is a fact, not a race.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "fault_proxy.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

using std::chrono::milliseconds;
constexpr auto short_wait = std::chrono::seconds(10);
constexpr auto long_wait = std::chrono::seconds(30);

BrokerConfig on_port(std::uint16_t port) {
  BrokerConfig config;
  config.listen = "127.0.0.1:" + std::to_string(port);
  return config;
}

ClientOptions failsafe_options(const std::string& url, const std::string& name) {
  ClientOptions options;
  options.url = url;
  options.client_name = name;
  options.connect_timeout = short_wait;
  options.reconnect_delay = milliseconds(50);
  options.retries = -1;
  return options;
}

// Every state change of a client, in order, with its reason.
class StateLog {
 public:
  void listen(Client& client) {
    client.on_state_change([this](ClientState from, ClientState to, const std::string& reason) {
      std::lock_guard lock(mutex_);
      changes_.push_back({from, to, reason});
      changed_.notify_all();
    });
  }
  struct Change {
    ClientState from, to;
    std::string reason;
  };
  // True once a change into `to` whose reason contains `text` was seen.
  bool wait_for(ClientState to, std::string_view text, milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
      for (const auto& c : changes_)
        if (c.to == to && c.reason.find(text) != std::string::npos) return true;
      return false;
    });
  }
  std::string describe() const {
    std::lock_guard lock(mutex_);
    std::string text;
    for (const auto& c : changes_)
      text += std::string(to_string(c.from)) + " -> " + std::string(to_string(c.to)) + " (" + c.reason + ")\n";
    return text;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Change> changes_;
};

std::string value_of(std::size_t i) { return "v" + std::to_string(i); }

// The values `log` got for `path`, each once and in order 0..count-1: "" or what is wrong.
std::string check_exactly_once_in_order(const UpdateLog& log, std::size_t count,
                                        const std::function<std::string(std::size_t)>& value = value_of) {
  std::size_t next = 0;
  for (const auto& r : log.entries()) {
    if (r.value != value(next))
      return "update " + std::to_string(next) + " is '" + r.value.substr(0, 32) + "', expected '" +
             value(next).substr(0, 32) + "'";
    ++next;
  }
  if (next != count) return "got " + std::to_string(next) + " of " + std::to_string(count) + " updates";
  return {};
}

TEST(FailSafeClient, a_publisher_started_before_its_broker_sends_its_queue_once_the_broker_starts) {
  const std::uint16_t port = free_port();
  FaultProxy proxy(port);  // the publisher's way in, held shut until the subscriber is ready
  ASSERT_TRUE(proxy.listening());
  proxy.refuse_new_connections(true);

  StateLog states;
  Client publisher;
  states.listen(publisher);
  // The proxy takes the connection and resets it at once, as a host whose broker is not up.
  Status started = publisher.connect(failsafe_options(proxy.url(), "early-publisher"));
  ASSERT_TRUE(started) << started.message;
  EXPECT_NE(started.message.find("recovering"), std::string::npos) << started.message;
  ASSERT_TRUE(states.wait_for(ClientState::recovering, "", short_wait)) << states.describe();
  EXPECT_EQ(publisher.state(), ClientState::recovering);
  EXPECT_EQ(publisher.server(), "");

  constexpr std::size_t count = 1000;
  for (std::size_t i = 0; i < count; ++i) {
    Status s = publisher.publish("Early/t", value_of(i));
    ASSERT_TRUE(s) << "publish " << i << ": " << s.message;
  }
  // The calls wait in the client's queue (the client thread counts them as it takes them).
  EXPECT_LE(publisher.queued_calls(), count);
  // close() goes last: it waits for the queue to go out, so it runs beside the test.
  std::thread closer([&] { publisher.close(); });

  BrokerProcess broker(on_port(port));
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log;
  Client subscriber;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "early-subscriber"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Early/t", log));
  proxy.refuse_new_connections(false);

  closer.join();
  EXPECT_TRUE(log.wait_for(count, long_wait)) << log.size() << " of " << count;
  EXPECT_EQ(check_exactly_once_in_order(log, count), "");
  EXPECT_TRUE(states.wait_for(ClientState::connected, "connected to " + proxy.url(), short_wait)) << states.describe();
  EXPECT_TRUE(states.wait_for(ClientState::closed, "closed by the client", short_wait)) << states.describe();
  EXPECT_EQ(publisher.queued_calls(), 0u);
  subscriber.close();
  broker.stop();
}

TEST(FailSafeClient, a_broker_restarted_under_a_publishing_client_loses_and_repeats_no_update) {
  const std::uint16_t port = free_port();
  auto first = std::make_unique<BrokerProcess>(on_port(port));
  BROOK_ASSERT_STARTED(*first);
  FaultProxy proxy(port);
  ASSERT_TRUE(proxy.listening());

  UpdateLog log;
  StateLog subscriber_states;
  Client subscriber;
  subscriber_states.listen(subscriber);
  ASSERT_TRUE(subscriber.connect(failsafe_options(first->url(), "restart-subscriber")));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Restart/t", log));

  StateLog publisher_states;
  Client publisher;
  publisher_states.listen(publisher);
  ASSERT_TRUE(publisher.connect(failsafe_options(proxy.url(), "restart-publisher")));
  constexpr std::size_t count = 20000;
  std::atomic<std::size_t> accepted{0};
  std::thread publishing([&] {
    for (std::size_t i = 0; i < count; ++i) {
      Status s = publisher.publish("Restart/t", value_of(i));
      if (!s) {
        ADD_FAILURE() << "publish " << i << " refused: " << s.message;
        return;
      }
      accepted.store(i + 1);
      if (i % 100 == 99) std::this_thread::sleep_for(milliseconds(1));  // a feed, not a flood
    }
  });
  ASSERT_TRUE(log.wait_for(count / 4, long_wait)) << log.size();

  // SIGTERM: the broker sends what it queued and tells the publisher what it took.
  proxy.refuse_new_connections(true);
  first->stop();
  first.reset();
  const std::size_t accepted_at_stop = accepted.load();
  BrokerProcess second(on_port(port));
  BROOK_ASSERT_STARTED(second);
  // The subscriber comes back first, in a new session, subscribed again.
  ASSERT_TRUE(subscriber_states.wait_for(ClientState::connected, "new session", long_wait))
      << subscriber_states.describe();
  ASSERT_TRUE(round_trip(subscriber)) << "the subscription reached the new broker";
  proxy.refuse_new_connections(false);

  publishing.join();
  EXPECT_TRUE(log.wait_for(count, long_wait)) << log.size() << " of " << count;
  EXPECT_EQ(check_exactly_once_in_order(log, count), "")
      << "accepted when the broker stopped: " << accepted_at_stop;
  EXPECT_TRUE(publisher_states.wait_for(ClientState::connected, "new session", short_wait))
      << publisher_states.describe();
  publisher.close();
  subscriber.close();
  second.stop();
}

// A connection lost while its send buffer was full (the network had stopped taking bytes, so
// the client's thread had stopped moving calls out of the outbox): the recovery forgets the
// dead connection's unsent bytes, the outbox drains into the client's queue, and calls made
// meanwhile are taken, not held up until a broker answers. Every update arrives once, in order.
TEST(FailSafeClient, calls_made_while_a_connection_with_a_full_send_buffer_recovers_are_queued_and_all_arrive) {
  const std::uint16_t port = free_port();
  BrokerProcess broker(on_port(port));
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(port);
  ASSERT_TRUE(proxy.listening());
  UpdateLog log;
  Client subscriber;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "drain-subscriber"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Drain/t", log));

  Client publisher(std::size_t{64} << 10);
  ASSERT_TRUE(publisher.connect(failsafe_options(proxy.url(), "drain-publisher")));
  ASSERT_TRUE(round_trip(publisher));
  ASSERT_TRUE(proxy.stall(0, FaultProxy::Direction::to_broker));

  const auto padded = [](std::size_t i) { return value_of(i) + std::string(500, '.'); };
  std::size_t accepted = 0;
  // Publishes the next value; false: refused for want of room (any other refusal fails).
  const auto publish_next = [&] {
    Status s = publisher.try_publish("Drain/t", padded(accepted));
    if (s) ++accepted;
    else EXPECT_EQ(s.code, ErrorCode::back_pressured) << s.message;
    return static_cast<bool>(s);
  };
  // Fills the kernel's buffers, the client's send buffer and the outbox: full once calls are
  // refused for 200 ms straight (the client's thread no longer makes room).
  constexpr std::size_t fill_limit = 200'000;  // 100 MB: far more than the buffers can hold
  auto refused_since = std::chrono::steady_clock::time_point{};
  while (accepted < fill_limit) {
    if (publish_next()) {
      refused_since = {};
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    if (refused_since == std::chrono::steady_clock::time_point{}) refused_since = now;
    if (now - refused_since > milliseconds(200)) break;
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_LT(accepted, fill_limit) << "the stalled connection never filled the outbox";

  proxy.refuse_new_connections(true);
  ASSERT_TRUE(proxy.reset(0));
  // Recovering, with no broker to be had: calls go to the client's queue.
  constexpr std::size_t during_recovery = 1000;
  std::size_t taken_during_recovery = 0;
  const auto deadline = std::chrono::steady_clock::now() + short_wait;
  while (taken_during_recovery < during_recovery && std::chrono::steady_clock::now() < deadline) {
    if (publish_next()) {
      ++taken_during_recovery;
      continue;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_EQ(taken_during_recovery, during_recovery) << "the outbox stayed full through the recovery";
  EXPECT_GT(publisher.queued_calls(), 0u);

  proxy.refuse_new_connections(false);
  EXPECT_TRUE(log.wait_for(accepted, long_wait)) << log.size() << " of " << accepted;
  EXPECT_EQ(check_exactly_once_in_order(log, accepted, padded), "");
  publisher.close();
  subscriber.close();
  broker.stop();
}

TEST(FailSafeClient, with_two_servers_listed_the_client_fails_over_when_the_first_is_killed) {
  BrokerProcess first(1), second(1);
  BROOK_ASSERT_STARTED(first);
  BROOK_ASSERT_STARTED(second);
  UpdateLog log;
  Client subscriber;
  ASSERT_TRUE(connect_client(subscriber, second.url(), "failover-subscriber"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Failover/t", log));

  StateLog states;
  Client publisher;
  states.listen(publisher);
  // A call made before connect() waits in the queue, and leaves it once connected.
  publisher.subscribe("Failover/unused", [](const Update&) {});
  EXPECT_EQ(publisher.queued_calls(), 1u);
  ASSERT_TRUE(publisher.connect(failsafe_options(first.url() + "," + second.url(), "failover-publisher")));
  EXPECT_EQ(publisher.server(), first.url()) << "the list is tried in order";
  ASSERT_TRUE(round_trip(publisher));
  EXPECT_EQ(publisher.queued_calls(), 0u);
  ASSERT_TRUE(await(publisher.publish_acked("Failover/t", bytes_of("on-first"))));

  first.crash();  // kill -9: no drain, no goodbye
  for (std::size_t i = 0; i < 100; ++i) ASSERT_TRUE(publisher.publish("Failover/t", value_of(i)));
  ASSERT_TRUE(states.wait_for(ClientState::connected, second.url(), short_wait)) << states.describe();
  EXPECT_EQ(publisher.server(), second.url());
  EXPECT_TRUE(log.wait_for(100, short_wait)) << log.size();
  EXPECT_EQ(check_exactly_once_in_order(log, 100), "") << "the updates made during the failover arrive";
  EXPECT_NE(states.describe().find("new session"), std::string::npos) << states.describe();
  EXPECT_EQ(publisher.queued_calls(), 0u);
  publisher.close();
  subscriber.close();
  second.stop();
}

TEST(FailSafeClient, a_full_queue_refuses_calls_with_a_clear_error_and_loses_none_it_took) {
  const std::uint16_t port = free_port();
  FaultProxy proxy(port);
  ASSERT_TRUE(proxy.listening());
  proxy.refuse_new_connections(true);

  Client publisher;
  ClientOptions options = failsafe_options(proxy.url(), "full-queue");
  options.queue_entries = 5;
  ASSERT_TRUE(publisher.connect(options));
  for (std::size_t i = 0; i < 5; ++i) ASSERT_TRUE(publisher.publish("Full/t", value_of(i)));
  Status refused = publisher.publish("Full/t", value_of(5));
  EXPECT_EQ(refused.code, ErrorCode::queue_full) << refused.message;
  EXPECT_NE(refused.message.find("queue is full"), std::string::npos) << refused.message;
  // A subscription is refused the same way, through its handler.
  std::promise<Status> verdict;
  Subscription s = publisher.subscribe("Full/other", [](const Update&) {},
                                       [&](const Status& st) { verdict.set_value(st); });
  EXPECT_FALSE(s) << "no id for a call that was not taken";
  auto answer = verdict.get_future();
  ASSERT_EQ(answer.wait_for(short_wait), std::future_status::ready);
  EXPECT_EQ(answer.get().code, ErrorCode::queue_full);

  Client bytes_bound;
  ClientOptions small = failsafe_options(proxy.url(), "byte-bound");
  small.queue_bytes = 200;
  ASSERT_TRUE(bytes_bound.connect(small));
  EXPECT_TRUE(bytes_bound.publish("Full/b", std::string(100, 'x')));
  EXPECT_EQ(bytes_bound.publish("Full/b", std::string(100, 'y')).code, ErrorCode::queue_full);

  Client no_queue;
  ClientOptions off = failsafe_options(proxy.url(), "no-queue");
  off.queue_entries = 0;
  ASSERT_TRUE(no_queue.connect(off));
  Status not_connected = no_queue.publish("Full/t", "x");
  EXPECT_EQ(not_connected.code, ErrorCode::not_connected) << not_connected.message;
  EXPECT_NE(not_connected.message.find("queue is off"), std::string::npos) << not_connected.message;

  BrokerProcess broker(on_port(port));
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log;
  Client subscriber;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "full-subscriber"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Full/t", log));
  proxy.refuse_new_connections(false);
  EXPECT_TRUE(log.wait_for(5, short_wait)) << log.size();
  EXPECT_EQ(check_exactly_once_in_order(log, 5), "");
  // Once connected the queue is empty again and calls go straight out.
  ASSERT_TRUE(await(publisher.publish_acked("Full/t", bytes_of(value_of(5)))));
  EXPECT_EQ(publisher.queued_calls(), 0u);
  EXPECT_TRUE(log.wait_for(6, short_wait));
  no_queue.close();
  bytes_bound.close();
  publisher.close();
  subscriber.close();
  broker.stop();
}

TEST(FailSafeClient, close_while_no_broker_comes_gives_up_after_close_timeout_and_says_what_was_not_sent) {
  const std::uint16_t port = free_port();
  Client publisher;
  ClientOptions options = failsafe_options("tcp://127.0.0.1:" + std::to_string(port), "never-flushed");
  options.close_timeout = milliseconds(300);
  ASSERT_TRUE(publisher.connect(options));
  std::mutex mutex;
  std::vector<std::string> errors;
  publisher.on_error([&](const Status& s) {
    std::lock_guard lock(mutex);
    errors.push_back(s.message);
  });
  for (std::size_t i = 0; i < 3; ++i) ASSERT_TRUE(publisher.publish("Never/t", value_of(i)));
  const auto start = std::chrono::steady_clock::now();
  publisher.close();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, milliseconds(300));
  EXPECT_LT(took, short_wait);
  EXPECT_EQ(publisher.state(), ClientState::closed);
  std::lock_guard lock(mutex);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("3 call(s)"), std::string::npos) << errors[0];
  EXPECT_EQ(publisher.publish("Never/t", "late").code, ErrorCode::not_connected);
}


// Runs `first_run` in a forked child (a publisher's first life), which calls the `ready` it is
// given once it has done its part (ready() never returns: the child waits there, its client
// alive), then kills the child with SIGKILL, as a crash would. Fork while this process has no
// thread of its own: a multi-threaded fork leaves the child unable to start threads under TSan.
::testing::AssertionResult run_then_kill(
    const std::function<void(const std::function<void()>& ready)>& first_run) {
  int ready[2];
  if (::pipe(ready) != 0) return ::testing::AssertionFailure() << "pipe failed";
  const pid_t child = ::fork();
  if (child < 0) return ::testing::AssertionFailure() << "fork failed";
  if (child == 0) {
    ::close(ready[0]);
    first_run([&] {
      [[maybe_unused]] auto n = ::write(ready[1], "x", 1);
      for (;;) ::pause();
    });
    ::_exit(3);  // it failed before it was ready
  }
  ::close(ready[1]);
  char byte = 0;
  pollfd wait_ready{ready[0], POLLIN, 0};
  const bool done = ::poll(&wait_ready, 1, 10'000) == 1 && ::read(ready[0], &byte, 1) == 1;
  ::close(ready[0]);
  ::kill(child, SIGKILL);
  int status = 0;
  const bool reaped = ::waitpid(child, &status, 0) == child && WIFSIGNALED(status);
  if (!done) return ::testing::AssertionFailure() << "the first run did not get through";
  if (!reaped) return ::testing::AssertionFailure() << "the first run did not die by SIGKILL";
  return ::testing::AssertionSuccess();
}

// A publisher with a persistent queue, killed with kill -9 while its broker is away, started
// again once the broker is back: every update it had accepted arrives once, in order, under
// the same session name; a torn tail in its file is dropped and reported, the rest sent.
TEST(FailSafeClient, a_publisher_killed_while_the_broker_was_away_sends_its_persistent_queue_once_restarted) {
  const std::uint16_t port = free_port();
  char dir_pattern[] = "/tmp/brook-failsafe-XXXXXX";
  const std::string dir = ::mkdtemp(dir_pattern);
  const std::string queue_path = dir + "/publisher.queue";
  auto publisher_options = [&] {
    ClientOptions o = failsafe_options("tcp://127.0.0.1:" + std::to_string(port), "persistent-publisher");
    o.queue_path = queue_path;
    o.queue_fsync = QueueFsync::never;  // the page cache survives kill -9
    o.session_number = 7;
    return o;
  };
  constexpr std::size_t count = 200;

  // The first run: no broker; every publish is accepted, then kill -9.
  ASSERT_TRUE(run_then_kill([&](const std::function<void()>& ready) {
    Client c;
    if (!c.connect(publisher_options())) return;
    for (std::size_t i = 0; i < count; ++i)
      if (!c.publish("Kept/t", value_of(i))) return;
    ready();
  }));
  {
    // A write torn by the kill: a record header and half a payload.
    std::FILE* f = std::fopen(queue_path.c_str(), "ab");
    const unsigned char torn[] = {40, 0, 0, 0, 1, 2, 3, 4, 1, 9, 9, 9};
    std::fwrite(torn, 1, sizeof torn, f);
    std::fclose(f);
  }

  BrokerProcess broker(on_port(port));
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log;
  Client subscriber;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "kept-subscriber"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Kept/t", log));

  std::mutex mutex;
  std::vector<std::string> warnings;
  {
    Client second_run;
    second_run.on_error([&](const Status& s) {
      std::lock_guard lock(mutex);
      warnings.push_back(s.message);
    });
    ASSERT_TRUE(second_run.connect(publisher_options()));
    EXPECT_EQ(second_run.recovered_calls(), count);
    EXPECT_EQ(second_run.session_id(), "anonymous/7");
    EXPECT_TRUE(log.wait_for(count, short_wait)) << log.size();
    second_run.close();
  }
  EXPECT_EQ(check_exactly_once_in_order(log, count), "");
  {
    std::lock_guard lock(mutex);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("persistent queue"), std::string::npos) << warnings[0];
  }
  // The broker confirmed them all: a third run has nothing to send again.
  Client third_run;
  ASSERT_TRUE(third_run.connect(publisher_options()));
  EXPECT_EQ(third_run.recovered_calls(), 0u);
  ASSERT_TRUE(round_trip(subscriber));
  EXPECT_EQ(log.size(), count) << "nothing arrives twice";
  third_run.close();
  subscriber.close();
  broker.stop();
  std::remove(queue_path.c_str());
  std::remove((queue_path + ".compact").c_str());
  ::rmdir(dir.c_str());
}

// A publisher with a persistent queue, killed with kill -9 while connected to a broker that
// has no credentials file, started again: it resumes its named session with the token its
// queue file recorded (a name alone would be refused), and its new updates go out in it.
TEST(FailSafeClient, a_publisher_killed_while_connected_resumes_its_named_session_with_the_recorded_token) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  char dir_pattern[] = "/tmp/brook-failsafe-XXXXXX";
  const std::string dir = ::mkdtemp(dir_pattern);
  const std::string queue_path = dir + "/publisher.queue";
  auto publisher_options = [&] {
    ClientOptions o = failsafe_options(broker.url(), "persistent-publisher");
    o.queue_path = queue_path;
    o.queue_fsync = QueueFsync::never;  // the page cache survives kill -9
    o.session_number = 9;
    return o;
  };
  // The child is forked while this process has no thread of its own (no Client yet): a
  // multi-threaded fork leaves the child unable to start threads under ThreadSanitizer.
  // The first run: connected, one acknowledged publish, then kill -9.
  ASSERT_TRUE(run_then_kill([&](const std::function<void()>& ready) {
    Client c;
    if (!c.connect(publisher_options())) return;
    auto verdict = c.publish_acked("Token/t", std::as_bytes(std::span("first", 5)));
    if (verdict.wait_for(short_wait) == std::future_status::ready && verdict.get()) ready();
  }));

  UpdateLog log;
  Client subscriber;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "token-subscriber"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Token/t", log));

  // Someone else naming the session, without its token, is refused while it waits.
  Client thief;
  ClientOptions by_name = failsafe_options(broker.url(), "thief");
  by_name.session_number = 9;
  by_name.retries = 0;
  EXPECT_FALSE(thief.connect(by_name));

  Client second_run;
  Status connected = second_run.connect(publisher_options());
  ASSERT_TRUE(connected) << connected.message;
  EXPECT_EQ(second_run.session_id(), "anonymous/9");
  auto verdict = second_run.publish_acked("Token/t", std::as_bytes(std::span("second", 6)));
  ASSERT_EQ(verdict.wait_for(short_wait), std::future_status::ready);
  EXPECT_TRUE(verdict.get());
  EXPECT_TRUE(log.wait_until(
      [](const std::vector<Received>& entries) { return !entries.empty() && entries.back().value == "second"; },
      short_wait));
  second_run.close();
  subscriber.close();
  broker.stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace brook::test
