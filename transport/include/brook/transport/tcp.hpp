#pragma once
// Plain socket set-up for TCP: listening, connecting and addresses. The data path runs on the
// Reactor; these calls are for start-up and connection set-up only.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace brook::transport {

struct Endpoint {
  std::string host;
  std::uint16_t port = 0;
  std::string to_string() const;
};

// "host:port" (host may be empty, meaning 0.0.0.0). nullopt when malformed.
std::optional<Endpoint> parse_endpoint(std::string_view text);

// Listening socket with SO_REUSEADDR, non-blocking accept semantics left to io_uring.
// Returns the fd or -errno.
int listen_tcp(const Endpoint& endpoint, int backlog = 4096);
// Port the socket is bound to (after binding port 0), or 0 on failure.
std::uint16_t local_port(int fd);
// Blocking connect with TCP_NODELAY set. Returns the fd or -errno.
int connect_tcp(const Endpoint& endpoint, int timeout_ms = 5000);
// TCP_NODELAY and large socket buffers for a connection on the data path.
void tune_connection(int fd);

}  // namespace brook::transport
