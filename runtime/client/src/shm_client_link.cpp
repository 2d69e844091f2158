#include "shm_client_link.hpp"

#include <unistd.h>

#include <array>
#include <cstring>
#include <system_error>

#include "brook/transport/shm_handshake.hpp"
#include "brook/transport/unix_socket.hpp"

namespace brook::client_detail {

ShmClientLink::~ShmClientLink() {
  if (socket_fd >= 0) ::close(socket_fd);
  if (doorbell_to_broker >= 0) ::close(doorbell_to_broker);
  if (doorbell_in >= 0) ::close(doorbell_in);
}

void ShmClientLink::ring_broker() const noexcept {
  const std::uint64_t one = 1;
  // A full counter (EAGAIN) still leaves the broker's read ready: nothing to handle.
  [[maybe_unused]] auto n = ::write(doorbell_to_broker, &one, sizeof one);
}

std::unique_ptr<ShmClientLink> ShmClientLink::open(const std::string& path, int timeout_ms,
                                                   std::string& error, bool* refused) {
  auto link = std::make_unique<ShmClientLink>();
  link->socket_fd = transport::connect_unix(path);
  if (link->socket_fd < 0) {
    error = "cannot connect to shm://" + path + ": " + std::strerror(-link->socket_fd);
    return nullptr;
  }
  transport::ShmHello hello;
  std::vector<int> fds;
  int n = transport::receive_with_fds(link->socket_fd, std::as_writable_bytes(std::span(&hello, 1)),
                                      fds, timeout_ms);
  auto close_all = [&] {
    for (int fd : fds) ::close(fd);
  };
  if (n != static_cast<int>(sizeof hello) || !hello.valid()) {
    close_all();
    error = n == -ETIMEDOUT ? "no answer from shm://" + path
            : n == 0        ? "shm://" + path + " closed the connection"
                            : "shm://" + path + " is not a Brook broker";
    return nullptr;
  }
  if (hello.refused) {
    close_all();
    if (refused) *refused = true;
    error = std::string(hello.reason_text());
    return nullptr;
  }
  if (fds.size() != transport::shm_session_fds + hello.broadcast_segments) {
    close_all();
    error = "shm://" + path + ": the broker sent " + std::to_string(fds.size()) + " descriptors";
    return nullptr;
  }
  link->doorbell_to_broker = fds[1];
  link->doorbell_in = fds[2];
  try {
    link->session = transport::SharedSegment::map(fds[0], true);
    fds[0] = -1;
    for (std::size_t i = transport::shm_session_fds; i < fds.size(); ++i) {
      int fd = fds[i];
      fds[i] = -1;
      link->broadcast.push_back(transport::SharedSegment::map(fd, false));
      auto log = transport::open_broadcast_segment(link->broadcast.back().bytes());
      if (!log) throw std::system_error(EPROTO, std::generic_category(), "broadcast segment");
      link->broadcast_logs.push_back(*log);
      link->broadcast_reclaimed.push_back(&transport::broadcast_reclaimed(link->broadcast.back().data()));
      link->broadcast.back().close_fd();
    }
  } catch (const std::system_error& e) {
    for (std::size_t i = transport::shm_session_fds; i < fds.size(); ++i)
      if (fds[i] >= 0) ::close(fds[i]);
    error = "shm://" + path + ": cannot map the shared memory: " + e.what();
    return nullptr;
  }
  auto rings = transport::open_session_segment(link->session.bytes());
  if (!rings) {
    error = "shm://" + path + ": the session segment is malformed";
    return nullptr;
  }
  link->session.close_fd();
  link->to_broker = {rings->to_broker, rings->to_broker_data, rings->to_broker_bytes};
  link->from_broker = {rings->to_client, rings->to_client_data, rings->to_client_bytes};
  return link;
}

}  // namespace brook::client_detail
