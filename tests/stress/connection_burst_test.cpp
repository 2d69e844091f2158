// Stress: bursts of connections, as a feed's clients come back after a network blip. 10,000
// sessions open in batches of 500 on a 2-shard broker, four rounds: every Connect is
// answered. Connections accepted by shard 0 and handed to shard 1 must lose none of the bytes
// that arrived before, during or after the move.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <variant>
#include <vector>

#include "broker_process.hpp"
#include "brook/codec/messages.hpp"
#include "brook/transport/tcp.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

constexpr std::size_t sessions_per_round = 10'000;
constexpr std::size_t batch = 500;
constexpr int rounds = 4;

// Reads the first frame from each socket; returns how many were Connected within the
// deadline, and keeps the first few other answers in `others`.
std::size_t count_connected(const std::vector<int>& fds, std::chrono::seconds timeout,
                            std::vector<std::string>& others) {
  std::vector<std::vector<std::byte>> got(fds.size());
  std::vector<bool> done(fds.size(), false);
  std::size_t finished = 0, connected = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<pollfd> polls;
  std::vector<std::size_t> index;
  std::byte buffer[4096];
  codec::FrameDecoder decoder;
  auto note = [&](std::string what) {
    if (others.size() < 5) others.push_back(std::move(what));
  };
  while (finished < fds.size() && std::chrono::steady_clock::now() < deadline) {
    polls.clear();
    index.clear();
    for (std::size_t i = 0; i < fds.size(); ++i)
      if (!done[i]) {
        polls.push_back({fds[i], POLLIN, 0});
        index.push_back(i);
      }
    if (::poll(polls.data(), polls.size(), 100) <= 0) continue;
    for (std::size_t k = 0; k < polls.size(); ++k) {
      if (!(polls[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      std::size_t i = index[k];
      ssize_t n = ::recv(fds[i], buffer, sizeof buffer, MSG_DONTWAIT);
      if (n <= 0) {
        done[i] = true;
        ++finished;
        note("closed without an answer");
        continue;
      }
      got[i].insert(got[i].end(), buffer, buffer + n);
      auto split = codec::split_frame(got[i], codec::default_max_frame_bytes);
      if (split.status == codec::SplitStatus::need_more) continue;
      done[i] = true;
      ++finished;
      if (split.status != codec::SplitStatus::frame) {
        note("an unreadable answer");
        continue;
      }
      auto decoded = decoder.decode(std::span(got[i]).first(split.size));
      if (decoded.ok() && std::holds_alternative<codec::ConnectedMsg>(decoded.message)) {
        ++connected;
      } else if (auto* error = decoded.ok() ? std::get_if<codec::ErrorMsg>(&decoded.message) : nullptr) {
        note("error: " + std::string(error->message));
      } else {
        note("another frame than Connected");
      }
    }
  }
  if (finished < fds.size()) note(std::to_string(fds.size() - finished) + " without an answer in time");
  return connected;
}

TEST(StressConnectionBurst, ten_thousand_sessions_in_batches_of_500_all_connect_four_rounds_over) {
  if (!raise_descriptor_limit(sessions_per_round + 100))
    GTEST_SKIP() << "this process may not open " << sessions_per_round << " descriptors";
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  transport::Endpoint endpoint{"127.0.0.1", broker.port()};
  codec::FrameEncoder encoder;
  for (int round = 1; round <= rounds; ++round) {
    std::vector<int> fds;
    fds.reserve(sessions_per_round);
    std::size_t answered = 0;
    std::vector<std::string> others;
    for (std::size_t first = 0; first < sessions_per_round; first += batch) {
      std::vector<int> these;
      for (std::size_t i = 0; i < batch; ++i) {
        int fd = transport::connect_tcp(endpoint, 5000);
        ASSERT_GE(fd, 0) << "round " << round << ", session " << first + i << ": " << std::strerror(-fd);
        these.push_back(fd);
      }
      // The Connects go out at once, right behind the connections: the broker is still
      // handing the sockets to shard 1 when their first bytes arrive.
      for (int fd : these) {
        auto frame = encoder.connect("burst", "", {});
        ASSERT_EQ(::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL), static_cast<ssize_t>(frame.size()));
      }
      answered += count_connected(these, std::chrono::seconds(20), others);
      fds.insert(fds.end(), these.begin(), these.end());
    }
    for (int fd : fds) ::close(fd);
    std::string seen;
    for (auto& other : others) seen += "\n  " + other;
    EXPECT_EQ(answered, sessions_per_round) << "round " << round << ": "
                                            << sessions_per_round - answered << " not Connected:" << seen;
    ASSERT_TRUE(broker.running()) << broker.log_tail();
  }
  broker.stop();
  EXPECT_EQ(broker.counter_total("frames_in"), sessions_per_round * rounds) << broker.log_tail();
}

}  // namespace
}  // namespace brook::test
