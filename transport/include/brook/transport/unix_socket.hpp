#pragma once
// Unix-domain stream sockets, for the shared-memory transport's set-up: listening, connecting,
// the peer's credentials (SO_PEERCRED, vouched for by the kernel) and passing descriptors
// (SCM_RIGHTS). Set-up only: data flows through shared memory.
#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace brook::transport {

// Listens on `path`. A socket file left by a process that is gone is replaced; a path where
// something still accepts connections gives -EADDRINUSE. Returns the fd or -errno.
int listen_unix(const std::string& path, int backlog = 1024);
// Blocking connect. Returns the fd or -errno.
int connect_unix(const std::string& path);

struct PeerCredentials {
  pid_t pid;
  uid_t uid;
  gid_t gid;
};
std::optional<PeerCredentials> peer_credentials(int fd);

// Sends `bytes` with the descriptors attached, without blocking. Returns bytes sent or -errno.
int send_with_fds(int fd, std::span<const std::byte> bytes, std::span<const int> fds);
// Waits up to timeout_ms for one message and its descriptors (received close-on-exec).
// Returns bytes received (0: the peer closed) or -errno (-ETIMEDOUT).
int receive_with_fds(int fd, std::span<std::byte> bytes, std::vector<int>& fds, int timeout_ms);

}  // namespace brook::transport
