#include "shm_link.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <system_error>
#include <vector>

#include "brook/transport/shm_handshake.hpp"
#include "brook/transport/unix_socket.hpp"

namespace brook::runtime {

ShmLink::~ShmLink() { close_doorbells(); }

void ShmLink::close_doorbells() noexcept {
  if (doorbell_in >= 0) ::close(doorbell_in);
  if (doorbell_out >= 0) ::close(doorbell_out);
  doorbell_in = doorbell_out = -1;
}

bool shm_peer_allowed(const BrokerOptions& options, uid_t uid, gid_t gid) {
  if (options.shm_allow_uids.empty() && options.shm_allow_gids.empty()) return uid == ::geteuid();
  auto listed = [](const std::vector<std::uint32_t>& ids, std::uint32_t id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  };
  return listed(options.shm_allow_uids, uid) || listed(options.shm_allow_gids, gid);
}

namespace {
void send_refusal(int fd, const std::string& why) {
  transport::ShmHello hello;
  hello.refused = 1;
  hello.set_reason(why);
  transport::send_with_fds(fd, std::as_bytes(std::span(&hello, 1)), {});
}
}  // namespace

std::unique_ptr<ShmLink> accept_shm_peer(int fd, const BrokerOptions& options,
                                         std::span<const int> broadcast_fds, std::string& why) {
  auto peer = transport::peer_credentials(fd);
  if (!peer) {
    why = "cannot read the peer's credentials";
    send_refusal(fd, why);
    return nullptr;
  }
  if (!shm_peer_allowed(options, peer->uid, peer->gid)) {
    why = "shared memory refused: uid " + std::to_string(peer->uid) + " gid " +
          std::to_string(peer->gid) + " (pid " + std::to_string(peer->pid) + ") is not allowed";
    send_refusal(fd, why);
    return nullptr;
  }
  auto link = std::make_unique<ShmLink>();
  try {
    link->segment = transport::SharedSegment::create(
        "brook-session", transport::session_segment_bytes(options.shm_ring_bytes, options.shm_ring_bytes));
  } catch (const std::system_error& e) {
    why = std::string("cannot create a shared segment: ") + e.what();
    send_refusal(fd, why);
    return nullptr;
  }
  auto rings = transport::init_session_segment(link->segment.bytes(), options.shm_ring_bytes,
                                               options.shm_ring_bytes);
  link->from_client = {rings.to_broker, rings.to_broker_data, rings.to_broker_bytes};
  link->to_client = {rings.to_client, rings.to_client_data, rings.to_client_bytes};
  link->doorbell_in = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  link->doorbell_out = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (link->doorbell_in < 0 || link->doorbell_out < 0) {
    why = std::string("cannot create doorbells: ") + std::strerror(errno);
    send_refusal(fd, why);
    return nullptr;
  }
  std::vector<int> fds{link->segment.fd(), link->doorbell_in, link->doorbell_out};
  fds.insert(fds.end(), broadcast_fds.begin(), broadcast_fds.end());
  transport::ShmHello hello;
  hello.broadcast_segments = static_cast<std::uint32_t>(broadcast_fds.size());
  int sent = transport::send_with_fds(fd, std::as_bytes(std::span(&hello, 1)), fds);
  if (sent != static_cast<int>(sizeof hello)) {
    why = "cannot send the segments to the client";
    return nullptr;
  }
  link->segment.close_fd();  // the mapping is all we need from here on
  return link;
}

}  // namespace brook::runtime
