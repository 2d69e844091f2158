#include "bench_sessions.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <thread>
#include <vector>

#include "brook/client/client.hpp"
#include "brook/codec/messages.hpp"
#include "brook/transport/tcp.hpp"
#include "bench_support.hpp"
#include "commands.hpp"
#include "cut_relay.hpp"
#include "process_stats.hpp"

namespace brook::cli {

namespace {

using clock = std::chrono::steady_clock;

std::optional<transport::Endpoint> endpoint_of(const std::string& url) {
  constexpr std::string_view scheme = "tcp://";
  if (url.rfind(scheme, 0) != 0) return std::nullopt;
  return transport::parse_endpoint(std::string_view(url).substr(scheme.size()));
}

}  // namespace

int run_resync(const std::string& url, std::uint64_t count, std::size_t payload, bool json) {
  auto endpoint = endpoint_of(url);
  if (!endpoint) {
    std::fprintf(stderr, "brook bench: resync needs a tcp:// URL\n");
    return exit_usage;
  }
  CutRelay relay(endpoint->port);
  if (relay.port() == 0) {
    std::fprintf(stderr, "brook bench: cannot open the relay\n");
    return exit_usage;
  }
  const std::string path = "Bench/resync/" + unique_suffix();

  Client publisher, subscriber;
  ClientOptions po;
  po.url = url;
  po.client_name = "brook-bench-publisher";
  ClientOptions so;
  so.url = "tcp://127.0.0.1:" + std::to_string(relay.port());
  so.client_name = "brook-bench-resync";
  so.reconnect_delay = std::chrono::milliseconds(1);
  so.reconnect_timeout = std::chrono::seconds(60);
  // Tries every millisecond while the relay turns connections away, until the broker is back.
  so.reconnect_strategy = [](ReconnectControl& c) { c.reconnect(std::chrono::milliseconds(1)); };
  if (auto s = publisher.connect(po); !s) {
    std::fprintf(stderr, "brook bench: %s\n", s.message.c_str());
    return exit_usage;
  }
  if (auto s = subscriber.connect(so); !s) {
    std::fprintf(stderr, "brook bench: %s\n", s.message.c_str());
    return exit_usage;
  }

  // Values carry their index in the first 8 bytes: the subscriber counts what it recovered.
  std::atomic<std::uint64_t> received{0}, out_of_order{0}, last_index{0};
  std::atomic<bool> resynced{false};
  std::atomic<std::int64_t> reconnected_ns{0}, caught_up_ns{0};
  std::atomic<bool> measuring{false};
  auto subscribed = std::make_shared<std::promise<Status>>();
  auto subscribed_answer = subscribed->get_future();
  subscriber.on_reconnect([&](bool resync) {
    resynced = resync;
    reconnected_ns = clock::now().time_since_epoch().count();
  });
  subscriber.subscribe(
      path,
      [&](const Update& u) {
        if (u.value.size() < 8) return;  // the empty first value
        std::uint64_t index;
        std::memcpy(&index, u.value.data(), 8);
        if (index != last_index.load(std::memory_order_relaxed) + 1) out_of_order.fetch_add(1);
        last_index.store(index, std::memory_order_relaxed);
        if (measuring.load(std::memory_order_relaxed)) received.fetch_add(1);
        if (index == count) caught_up_ns = clock::now().time_since_epoch().count();
      },
      [subscribed](const Status& s) { subscribed->set_value(s); });
  publisher.create_topic(path, TopicType::binary).wait_for(std::chrono::seconds(10));
  if (subscribed_answer.wait_for(std::chrono::seconds(10)) != std::future_status::ready ||
      !subscribed_answer.get()) {
    std::fprintf(stderr, "brook bench: subscription not confirmed\n");
    return exit_refused;
  }

  relay.cut();  // the subscriber is away while everything is published
  auto away_since = clock::now();
  while (subscriber.state() != ClientState::recovering &&
         clock::now() - away_since < std::chrono::seconds(10))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  measuring = true;
  std::vector<std::byte> value(std::max<std::size_t>(payload, 8));
  for (std::uint64_t i = 1; i <= count; ++i) {
    std::memcpy(value.data(), &i, 8);
    if (i == count) {
      auto acked = publisher.publish_acked(path, value);
      acked.wait_for(std::chrono::seconds(30));
    } else {
      publisher.publish(path, value);
    }
  }
  relay.reopen();
  auto deadline = clock::now() + std::chrono::seconds(60);
  while (caught_up_ns.load() == 0 && clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));

  const std::uint64_t recovered = received.load();
  const std::uint64_t missed = count > recovered ? count - recovered : 0;
  const double catchup_ms =
      caught_up_ns.load() && reconnected_ns.load()
          ? static_cast<double>(caught_up_ns.load() - reconnected_ns.load()) / 1e6
          : -1;
  if (json) {
    std::printf("{\"system\":\"brook\",\"scenario\":\"resync\",\"transport\":\"tcp\",\"payload_bytes\":%zu,"
                "\"updates\":%llu,\"recovered\":%llu,\"missed\":%llu,\"out_of_order\":%llu,"
                "\"resync\":%s,\"catchup_ms\":%.3f}\n",
                value.size(), (unsigned long long)count, (unsigned long long)recovered,
                (unsigned long long)missed, (unsigned long long)out_of_order.load(),
                resynced.load() ? "true" : "false", catchup_ms);
  } else {
    std::printf("resync %zu B: %llu updates while away, %llu recovered, %llu missed, "
                "caught up %.1f ms after reconnecting%s\n",
                value.size(), (unsigned long long)count, (unsigned long long)recovered,
                (unsigned long long)missed, catchup_ms, resynced.load() ? " (resync)" : "");
  }
  subscriber.close();
  publisher.close();
  return missed == 0 && out_of_order.load() == 0 && catchup_ms >= 0 ? exit_ok : exit_refused;
}

int run_sessions(const std::string& url, std::uint64_t count, long broker_pid, bool json) {
  // ws://: each session after a WebSocket upgrade, its Connect in a masked binary frame.
  const bool websocket = url.rfind("ws://", 0) == 0;
  auto endpoint = websocket ? transport::parse_endpoint(std::string_view(url).substr(5)) : endpoint_of(url);
  if (!endpoint) {
    std::fprintf(stderr, "brook bench: sessions needs a tcp:// or ws:// URL\n");
    return exit_usage;
  }
  if (broker_pid <= 0) broker_pid = find_brookd();
  if (broker_pid <= 0) {
    std::fprintf(stderr, "brook bench: cannot tell which brookd to measure: give --broker-pid\n");
    return exit_usage;
  }
  // Raw sockets, not Clients: a Client brings a thread and its buffers, and the point is the
  // broker's cost per session.
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;  // one descriptor per session
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  codec::FrameEncoder encoder;
  std::vector<int> fds;
  fds.reserve(count);
  const std::uint64_t before_kib = rss_kib(broker_pid);
  auto close_all = [&] {
    for (int fd : fds) ::close(fd);
  };
  for (std::uint64_t i = 0; i < count; ++i) {
    int fd = transport::connect_tcp(*endpoint, 5000);
    if (fd < 0) {
      std::fprintf(stderr, "brook bench: session %llu: cannot connect: %s\n",
                   (unsigned long long)i, std::strerror(-fd));
      close_all();
      return exit_refused;
    }
    fds.push_back(fd);
    auto connect = encoder.connect("brook-bench-idle", "", {});
    std::vector<std::byte> frame(connect.begin(), connect.end());
    if (websocket) {
      const std::string upgrade =
          "GET / HTTP/1.1\r\nHost: " + endpoint->host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
      std::vector<std::byte> wire(reinterpret_cast<const std::byte*>(upgrade.data()),
                                  reinterpret_cast<const std::byte*>(upgrade.data()) + upgrade.size());
      // One masked binary frame (a Connect is under 126 bytes); the zero mask leaves it as it is.
      wire.push_back(std::byte{0x82});
      wire.push_back(static_cast<std::byte>(0x80 | frame.size()));
      wire.insert(wire.end(), 4, std::byte{0});
      wire.insert(wire.end(), frame.begin(), frame.end());
      frame = std::move(wire);
    }
    if (::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(frame.size())) {
      close_all();
      return exit_refused;
    }
  }
  // Every session answered: read each Connected (they are small; one recv each, and over a
  // WebSocket until the bytes after the upgrade's answer came).
  std::vector<std::byte> buffer(4096);
  for (int fd : fds) {
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string answer;
    ssize_t n;
    do {
      n = ::recv(fd, buffer.data(), buffer.size(), 0);
      if (n > 0) answer.append(reinterpret_cast<const char*>(buffer.data()), static_cast<std::size_t>(n));
    } while (websocket && n > 0 && (answer.find("\r\n\r\n") == std::string::npos ||
                                     answer.size() == answer.find("\r\n\r\n") + 4));
    if (n <= 0) {
      std::fprintf(stderr, "brook bench: a session got no answer\n");
      close_all();
      return exit_refused;
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the broker settle
  const std::uint64_t after_kib = rss_kib(broker_pid);
  const double per_session_kib =
      count ? static_cast<double>(after_kib > before_kib ? after_kib - before_kib : 0) / static_cast<double>(count) : 0;
  if (json) {
    std::printf("{\"system\":\"brook\",\"scenario\":\"sessions\",\"transport\":\"%s\",\"sessions\":%llu,"
                "\"rss_before_kib\":%llu,\"rss_after_kib\":%llu,\"kib_per_session\":%.2f}\n",
                websocket ? "ws" : "tcp", (unsigned long long)count, (unsigned long long)before_kib,
                (unsigned long long)after_kib, per_session_kib);
  } else {
    std::printf("sessions: %llu idle %s sessions, broker RSS %llu -> %llu KiB, %.2f KiB per session\n",
                (unsigned long long)count, websocket ? "WebSocket" : "TCP", (unsigned long long)before_kib,
                (unsigned long long)after_kib, per_session_kib);
  }
  close_all();
  return exit_ok;
}

}  // namespace brook::cli
