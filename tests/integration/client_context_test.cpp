// Many sessions, one client thread: Clients made on a ClientContext share its I/O thread, and
// Clients made without one share the process's default context. A thousand sessions add one
// thread to the process (none on the default context, which the publisher already started),
// each gets every update in order, and sessions on a context recover through a cut
// connection like any other.
#include <gtest/gtest.h>
#include <dirent.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "fault_proxy.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

std::size_t threads_of_this_process() {
  std::size_t n = 0;
  if (DIR* dir = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(dir))
      if (e->d_name[0] != '.') ++n;
    ::closedir(dir);
  }
  return n;
}

// Waits (bounded) until every session has `updates`.
bool all_received(const std::vector<std::unique_ptr<InOrderCounter>>& counters, std::uint64_t updates) {
  return eventually(
      [&] {
        for (auto& c : counters)
          if (c->received.load() < updates) return false;
        return true;
      },
      std::chrono::seconds(60));
}

// Which context the sessions under test are made on.
enum class Made { on_a_context, without_one };

class ClientContextP : public ::testing::TestWithParam<Made> {
 protected:
  // The test's context, or none for Clients made without one.
  std::unique_ptr<ClientContext> context_ =
      GetParam() == Made::on_a_context ? std::make_unique<ClientContext>() : nullptr;
  std::unique_ptr<Client> make_session() {
    return context_ ? std::make_unique<Client>(*context_) : std::make_unique<Client>();
  }
};

Status subscribe_counting(Client& client, const std::string& selector, InOrderCounter& counter) {
  auto verdict = std::make_shared<std::promise<Status>>();
  auto answer = verdict->get_future();
  client.subscribe(
      selector, [&counter](const Update& u) { counter.take(u); },
      [verdict](const Status& s) { verdict->set_value(s); });
  if (answer.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    auto pong = client.ping();
    const bool ponged = pong.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
    const bool late = answer.wait_for(std::chrono::seconds(1)) == std::future_status::ready;
    return Status{ErrorCode::internal, "no answer to subscribe (state " + std::string(to_string(client.state())) +
                                           ", calls handed to the client thread: " +
                                           std::to_string(client.calls_handed_to_client_thread()) +
                                           ", ping " + (ponged ? "answered" : "unanswered") +
                                           (late ? ", the answer came after the ping" : "") + ")"};
  }
  return answer.get();
}

TEST_P(ClientContextP, a_thousand_sessions_on_one_context_use_one_thread_and_get_every_update) {
  constexpr std::size_t sessions = 1000;
  ASSERT_TRUE(raise_descriptor_limit(sessions + 200)) << "needs " << sessions + 200 << " descriptors";
  BrokerProcess broker(with_shards(2));
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "publisher"));
  // Topic first: the subscribers' current value is then update 1.
  ASSERT_TRUE(publisher.publish_acked("Context/odds", std::as_bytes(std::span(std::string_view("1")))).get());

  const std::size_t threads_before = threads_of_this_process();
  std::vector<std::unique_ptr<Client>> clients;
  std::vector<std::unique_ptr<InOrderCounter>> counters;
  for (std::size_t i = 0; i < sessions; ++i) {
    clients.push_back(make_session());
    counters.push_back(std::make_unique<InOrderCounter>());
    ASSERT_TRUE(connect_client_once(*clients.back(), broker.url(), "ctx-" + std::to_string(i)));
    const Status subscribed = subscribe_counting(*clients.back(), "Context//", *counters.back());
    ASSERT_TRUE(subscribed) << "session " << i << ": " << subscribed.message;
  }
  EXPECT_EQ(threads_of_this_process(), threads_before + (context_ ? 1 : 0)) << "a context is one thread";
  if (context_) EXPECT_EQ(context_->sessions(), sessions);

  constexpr std::uint64_t updates = 200;
  for (std::uint64_t n = 2; n <= updates; ++n) {
    ASSERT_TRUE(publisher.publish("Context/odds", std::to_string(n)));
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  EXPECT_TRUE(all_received(counters, updates));
  std::size_t short_sessions = 0, disordered = 0;
  for (auto& c : counters) {
    short_sessions += c->received.load() != updates;
    disordered += c->out_of_order.load();
  }
  EXPECT_EQ(short_sessions, 0u) << "sessions that missed updates";
  EXPECT_EQ(disordered, 0u) << "sessions that got updates out of order";

  for (auto& c : clients) c->close();
  if (context_) EXPECT_EQ(context_->sessions(), 0u);
  context_.reset();
  publisher.close();
  broker.stop();
}

TEST_P(ClientContextP, sessions_on_a_context_resume_through_a_cut_connection_without_a_gap) {
  constexpr std::size_t sessions = 20;
  BrokerProcess broker(with_shards(2));
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(publisher.publish_acked("Context/odds", std::as_bytes(std::span(std::string_view("1")))).get());

  std::vector<std::unique_ptr<Client>> clients;
  std::vector<std::unique_ptr<InOrderCounter>> counters;
  std::atomic<int> reconnects{0};
  for (std::size_t i = 0; i < sessions; ++i) {
    clients.push_back(make_session());
    counters.push_back(std::make_unique<InOrderCounter>());
    ClientOptions options;
    options.url = proxy.url();
    options.client_name = "ctx-" + std::to_string(i);
    options.reconnect_delay = std::chrono::milliseconds(50);
    clients.back()->on_reconnect([&](bool) { ++reconnects; });
    ASSERT_TRUE(clients.back()->connect(options));
    ASSERT_TRUE(subscribe_counting(*clients.back(), "Context//", *counters.back()));
  }
  ASSERT_TRUE(proxy.wait_for_connections(sessions, std::chrono::seconds(10)));

  constexpr std::uint64_t updates = 300;
  for (std::uint64_t n = 2; n <= updates; ++n) {
    if (n == 100)
      for (std::size_t i = 0; i < sessions; ++i) ASSERT_TRUE(proxy.reset(i));  // every connection cut
    ASSERT_TRUE(publisher.publish("Context/odds", std::to_string(n)));
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  EXPECT_TRUE(all_received(counters, updates));
  for (auto& c : counters) {
    EXPECT_EQ(c->received.load(), updates);
    EXPECT_FALSE(c->out_of_order.load()) << "a gap or a repeat after the cut";
  }
  EXPECT_EQ(reconnects.load(), static_cast<int>(sessions)) << "every session resumed once";
  for (auto& c : clients) c->close();
  publisher.close();
  broker.stop();
}

INSTANTIATE_TEST_SUITE_P(ClientContext, ClientContextP,
                         ::testing::Values(Made::on_a_context, Made::without_one),
                         [](const auto& info) { return info.param == Made::on_a_context ? "explicit" : "default"; });

}  // namespace
}  // namespace brook::test
