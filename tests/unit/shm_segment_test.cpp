// Unit tests of the shared-memory transport's set-up pieces: SharedSegment (memfd, seals,
// read-only descriptors), the session and broadcast segment layouts and their checks against a
// peer's garbage headers, and the Unix-socket helpers (listening over stale and live paths,
// peer credentials, passing descriptors).
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "brook/transport/shm_ring.hpp"
#include "brook/transport/shm_segment.hpp"
#include "brook/transport/unix_socket.hpp"

namespace brook::transport {
namespace {

// Closes the descriptor on every path out of a test.
struct Fd {
  explicit Fd(int fd = -1) : fd(fd) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(Fd&& other) noexcept : fd(std::exchange(other.fd, -1)) {}
  Fd& operator=(Fd&&) = delete;
  int release() { return std::exchange(fd, -1); }
  int fd;
};

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

std::size_t open_descriptor_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
    ++n;
  return n;
}

// ---- SharedSegment ----

TEST(SharedSegment, create_rounds_up_to_whole_pages_and_another_mapping_shares_the_bytes) {
  auto segment = SharedSegment::create("brook-segment-test", 5000);
  ASSERT_TRUE(segment);
  EXPECT_EQ(segment.size(), 8192u);
  Fd copy(::dup(segment.fd()));
  ASSERT_GE(copy.fd, 0);
  segment.close_fd();
  EXPECT_EQ(segment.fd(), -1);

  // The creator's mapping outlives its descriptor.
  std::memcpy(segment.data() + 8000, "from the creator", 16);
  auto other = SharedSegment::map(copy.release(), true);
  ASSERT_EQ(other.size(), 8192u);
  EXPECT_EQ(std::memcmp(other.data() + 8000, "from the creator", 16), 0);
  std::memcpy(other.data(), "from the peer", 13);
  EXPECT_EQ(std::memcmp(segment.data(), "from the peer", 13), 0);
}

TEST(SharedSegment, a_moved_segment_keeps_its_mapping_and_descriptor) {
  auto segment = SharedSegment::create("brook-segment-test", 4096);
  std::byte* data = segment.data();
  const int fd = segment.fd();
  SharedSegment moved = std::move(segment);
  EXPECT_FALSE(segment);
  EXPECT_EQ(moved.data(), data);
  EXPECT_EQ(moved.fd(), fd);
  moved = SharedSegment::create("brook-segment-test", 4096);
  EXPECT_FALSE(is_open(fd)) << "move-assignment released the old segment";
}

TEST(SharedSegment, map_refuses_an_unsealed_memfd_with_einval_and_closes_it) {
  const int fd = ::memfd_create("brook-unsealed", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 4096), 0);
  errno = EAGAIN;  // left by some unrelated call: must not become the reason given
  try {
    SharedSegment::map(fd, true);
    ADD_FAILURE() << "an unsealed memfd was mapped";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EINVAL) << e.what();
  }
  EXPECT_FALSE(is_open(fd)) << "map() owns the descriptor, even when it refuses it";
}

TEST(SharedSegment, map_refuses_a_memfd_that_allows_sealing_but_is_not_sealed) {
  const int fd = ::memfd_create("brook-unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 4096), 0);
  EXPECT_THROW(SharedSegment::map(fd, false), std::system_error);
  EXPECT_FALSE(is_open(fd));
}

TEST(SharedSegment, map_refuses_an_empty_sealed_memfd_and_a_descriptor_that_is_no_memfd) {
  const int empty = ::memfd_create("brook-empty", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_GE(empty, 0);
  ASSERT_EQ(::fcntl(empty, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
  EXPECT_THROW(SharedSegment::map(empty, false), std::system_error);

  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  Fd write_end(pipe_fds[1]);
  EXPECT_THROW(SharedSegment::map(pipe_fds[0], false), std::system_error);
  EXPECT_FALSE(is_open(pipe_fds[0]));
}

TEST(SharedSegment, a_segment_cannot_be_shrunk_or_grown) {
  auto segment = SharedSegment::create("brook-segment-test", 8192);
  EXPECT_NE(::ftruncate(segment.fd(), 0), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::ftruncate(segment.fd(), 4096), 0);
  EXPECT_NE(::ftruncate(segment.fd(), 16384), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::fallocate(segment.fd(), 0, 0, 16384), 0);
  struct stat st{};
  ASSERT_EQ(::fstat(segment.fd(), &st), 0);
  EXPECT_EQ(st.st_size, 8192);
  segment.data()[8191] = std::byte{1};  // still mapped in full: no SIGBUS
}

TEST(SharedSegment, a_read_only_descriptor_cannot_be_mapped_writable_even_when_reopened) {
  auto segment = SharedSegment::create("brook-broadcast-test", 8192);
  const int ro_or_error = segment.seal_and_open_read_only();
  if (ro_or_error == -EINVAL) GTEST_SKIP() << "the kernel lacks F_SEAL_FUTURE_WRITE (Linux 5.1)";
  ASSERT_GE(ro_or_error, 0) << std::strerror(-ro_or_error);
  Fd ro(ro_or_error);
  EXPECT_EQ(::fcntl(ro.fd, F_GETFL) & O_ACCMODE, O_RDONLY);
  EXPECT_TRUE(::fcntl(ro.fd, F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(segment.fd(), F_GET_SEALS) & F_SEAL_FUTURE_WRITE);

  void* writable = ::mmap(nullptr, segment.size(), PROT_READ | PROT_WRITE, MAP_SHARED, ro.fd, 0);
  EXPECT_EQ(writable, MAP_FAILED) << "a read-only descriptor mapped writable";
  if (writable != MAP_FAILED) ::munmap(writable, segment.size());

  // A peer holding the read-only descriptor may reopen the file for writing through /proc;
  // the seal is what stops that descriptor from writing.
  const std::string path = "/proc/self/fd/" + std::to_string(ro.fd);
  Fd reopened(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (reopened.fd >= 0) {
    void* again = ::mmap(nullptr, segment.size(), PROT_READ | PROT_WRITE, MAP_SHARED,
                         reopened.fd, 0);
    EXPECT_EQ(again, MAP_FAILED) << "a reopened descriptor mapped writable";
    if (again != MAP_FAILED) ::munmap(again, segment.size());
    EXPECT_LT(::pwrite(reopened.fd, "x", 1, 0), 0) << "a reopened descriptor wrote";
  }

  // The creator's mapping, made before the seal, still writes; readers see it.
  void* readable = ::mmap(nullptr, segment.size(), PROT_READ, MAP_SHARED, ro.fd, 0);
  ASSERT_NE(readable, MAP_FAILED);
  std::memcpy(segment.data() + 4096, "broadcast", 9);
  EXPECT_EQ(std::memcmp(static_cast<char*>(readable) + 4096, "broadcast", 9), 0);
  EXPECT_NE(::mprotect(readable, segment.size(), PROT_READ | PROT_WRITE), 0)
      << "a read-only mapping was made writable";
  ::munmap(readable, segment.size());

  // Through SharedSegment: a read-only map works, a writable one is refused.
  Fd second(::dup(ro.fd));
  ASSERT_GE(second.fd, 0);
  auto reader = SharedSegment::map(ro.release(), false);
  EXPECT_EQ(std::memcmp(reader.data() + 4096, "broadcast", 9), 0);
  EXPECT_THROW(SharedSegment::map(second.release(), true), std::system_error);
}

TEST(SharedSegment, seal_and_open_read_only_without_a_descriptor_is_ebadf) {
  auto segment = SharedSegment::create("brook-segment-test", 4096);
  segment.close_fd();
  EXPECT_EQ(segment.seal_and_open_read_only(), -EBADF);
}

// ---- session segment ----

TEST(SharedSegment, a_session_segment_opens_as_it_was_initialised) {
  const std::size_t bytes = session_segment_bytes(4096, 10000);
  EXPECT_EQ(bytes, 4096u + 4096u + 16384u) << "a header page, then each ring a power of two";
  auto segment = SharedSegment::create("brook-session-test", bytes);
  ASSERT_EQ(segment.size(), bytes);
  const SessionRings made = init_session_segment(segment.bytes(), 4096, 10000);
  EXPECT_EQ(made.to_broker_bytes, 4096u);
  EXPECT_EQ(made.to_client_bytes, 16384u);

  const auto opened = open_session_segment(segment.bytes());
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(opened->to_broker, made.to_broker);
  EXPECT_EQ(opened->to_broker_data, made.to_broker_data);
  EXPECT_EQ(opened->to_broker_bytes, made.to_broker_bytes);
  EXPECT_EQ(opened->to_client, made.to_client);
  EXPECT_EQ(opened->to_client_data, made.to_client_data);
  EXPECT_EQ(opened->to_client_bytes, made.to_client_bytes);

  // The rings lie inside the segment, apart from each other and from the header and indices.
  const std::byte* start = segment.data();
  EXPECT_GE(made.to_broker_data, start + 64 + 2 * sizeof(ShmRingIndices));
  EXPECT_LE(made.to_broker_data + made.to_broker_bytes, made.to_client_data);
  EXPECT_LE(made.to_client_data + made.to_client_bytes, start + segment.size());
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(made.to_broker) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(made.to_client) % 64, 0u);

  // Both rings carry bytes, each its own way.
  ShmRingWriter client_writer(opened->to_broker, opened->to_broker_data, opened->to_broker_bytes);
  ShmRingReader broker_reader(made.to_broker, made.to_broker_data, made.to_broker_bytes);
  ShmRingWriter broker_writer(made.to_client, made.to_client_data, made.to_client_bytes);
  ShmRingReader client_reader(opened->to_client, opened->to_client_data, opened->to_client_bytes);
  const auto up = std::as_bytes(std::span("subscribe", 9));
  const auto down = std::as_bytes(std::span("update", 6));
  ASSERT_EQ(client_writer.write(up), up.size());
  client_writer.publish();
  ASSERT_EQ(broker_writer.write(down), down.size());
  broker_writer.publish();
  auto got_up = broker_reader.readable();
  auto got_down = client_reader.readable();
  ASSERT_EQ(got_up.size(), up.size());
  ASSERT_EQ(got_down.size(), down.size());
  EXPECT_EQ(std::memcmp(got_up.data(), up.data(), up.size()), 0);
  EXPECT_EQ(std::memcmp(got_down.data(), down.data(), down.size()), 0);
}

TEST(SharedSegment, open_session_segment_rejects_headers_that_do_not_describe_rings_inside_it) {
  auto segment = SharedSegment::create("brook-session-test", session_segment_bytes(4096, 4096));
  init_session_segment(segment.bytes(), 4096, 4096);
  SessionSegmentHeader valid;
  std::memcpy(&valid, segment.data(), sizeof valid);
  const std::uint64_t size = segment.size();
  ASSERT_EQ(size, 3u * 4096);

  auto opens_with = [&](const std::function<void(SessionSegmentHeader&)>& scribble) {
    SessionSegmentHeader header = valid;
    scribble(header);
    std::memcpy(segment.data(), &header, sizeof header);
    return open_session_segment(segment.bytes()).has_value();
  };
  EXPECT_TRUE(opens_with([](auto&) {}));
  EXPECT_FALSE(opens_with([](auto& h) { h.magic = 0; }));
  EXPECT_FALSE(opens_with([](auto& h) { h.magic = broadcast_segment_magic; }));
  EXPECT_FALSE(opens_with([](auto& h) { h = SessionSegmentHeader{}; }));
  // Ring offsets over the header and indices, at or past the end, or wrapping around.
  EXPECT_FALSE(opens_with([](auto& h) { h.to_broker_offset = 0; }));
  EXPECT_FALSE(opens_with([](auto& h) { h.to_broker_offset = 64; }));
  EXPECT_FALSE(opens_with([&](auto& h) { h.to_broker_offset = size; }));
  EXPECT_FALSE(opens_with([&](auto& h) { h.to_broker_offset = size - 2048; }));
  EXPECT_FALSE(opens_with([&](auto& h) { h.to_client_offset = size - 4095; }));
  EXPECT_FALSE(opens_with([](auto& h) { h.to_client_offset = UINT64_MAX - 4095; }));
  EXPECT_FALSE(opens_with([](auto& h) { h.to_client_offset = 1ull << 63; }));
  // Ring sizes that are no power of two, below a page, or larger than the segment.
  EXPECT_FALSE(opens_with([](auto& h) { h.to_broker_bytes = 0; }));
  EXPECT_FALSE(opens_with([](auto& h) { h.to_broker_bytes = 4097; }));
  EXPECT_FALSE(opens_with([](auto& h) { h.to_client_bytes = 3 * 1024; }));
  EXPECT_FALSE(opens_with([](auto& h) { h.to_client_bytes = 2048; }));
  EXPECT_FALSE(opens_with([](auto& h) { h.to_client_bytes = 8192; }));
  EXPECT_FALSE(opens_with([](auto& h) { h.to_broker_bytes = 1ull << 63; }));

  // A view shorter than the header area, or than the rings it describes.
  std::memcpy(segment.data(), &valid, sizeof valid);
  EXPECT_FALSE(open_session_segment(segment.bytes().first(100)).has_value());
  EXPECT_FALSE(open_session_segment(segment.bytes().first(2 * 4096)).has_value());
  EXPECT_FALSE(open_session_segment({}).has_value());
  EXPECT_TRUE(open_session_segment(segment.bytes()).has_value());
}

// ---- broadcast segment ----

TEST(SharedSegment, a_broadcast_segment_opens_read_only_as_it_was_initialised) {
  const std::size_t bytes = broadcast_segment_bytes(5000);
  EXPECT_EQ(bytes, 4096u + 8192u);
  auto segment = SharedSegment::create("brook-broadcast-test", bytes);
  const auto log = init_broadcast_segment(segment.bytes(), 5000);
  EXPECT_EQ(log.data(), segment.data() + 4096);
  EXPECT_EQ(log.size(), 8192u);
  std::memcpy(log.data() + log.size() - 4, "last", 4);

  const auto opened = open_broadcast_segment(segment.bytes());
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(opened->data(), log.data());
  EXPECT_EQ(opened->size(), log.size());

  // As a client sees it: through the read-only descriptor, mapped read-only.
  const int ro = segment.seal_and_open_read_only();
  if (ro == -EINVAL) GTEST_SKIP() << "the kernel lacks F_SEAL_FUTURE_WRITE (Linux 5.1)";
  ASSERT_GE(ro, 0);
  auto client = SharedSegment::map(ro, false);
  const auto seen = open_broadcast_segment(client.bytes());
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->size(), 8192u);
  EXPECT_EQ(std::memcmp(seen->data() + seen->size() - 4, "last", 4), 0);
}

TEST(SharedSegment, open_broadcast_segment_rejects_headers_that_do_not_describe_a_log_inside_it) {
  auto segment = SharedSegment::create("brook-broadcast-test", broadcast_segment_bytes(8192));
  init_broadcast_segment(segment.bytes(), 8192);
  BroadcastSegmentHeader valid;
  std::memcpy(&valid, segment.data(), sizeof valid);
  const std::uint64_t size = segment.size();
  ASSERT_EQ(size, 4096u + 8192u);

  auto opens_with = [&](const std::function<void(BroadcastSegmentHeader&)>& scribble) {
    BroadcastSegmentHeader header = valid;
    scribble(header);
    std::memcpy(segment.data(), &header, sizeof header);
    return open_broadcast_segment(segment.bytes()).has_value();
  };
  EXPECT_TRUE(opens_with([](auto&) {}));
  EXPECT_FALSE(opens_with([](auto& h) { h.magic = session_segment_magic; }));
  EXPECT_FALSE(opens_with([](auto& h) { h = BroadcastSegmentHeader{}; }));
  EXPECT_FALSE(opens_with([](auto& h) { h.log_offset = 0; }));
  EXPECT_FALSE(opens_with([](auto& h) { h.log_offset = sizeof(BroadcastSegmentHeader) - 1; }));
  EXPECT_FALSE(opens_with([&](auto& h) { h.log_offset = size + 1; }));
  EXPECT_FALSE(opens_with([](auto& h) { h.log_offset = UINT64_MAX - 4095; }));
  EXPECT_FALSE(opens_with([](auto& h) { h.log_offset = 8192; }));  // runs past the end
  EXPECT_FALSE(opens_with([](auto& h) { h.log_bytes = 0; }));
  EXPECT_FALSE(opens_with([](auto& h) { h.log_bytes = 6000; }));
  EXPECT_FALSE(opens_with([](auto& h) { h.log_bytes = 16384; }));
  EXPECT_FALSE(opens_with([](auto& h) { h.log_bytes = 1ull << 63; }));

  std::memcpy(segment.data(), &valid, sizeof valid);
  EXPECT_FALSE(open_broadcast_segment(segment.bytes().first(32)).has_value());
  EXPECT_FALSE(open_broadcast_segment(segment.bytes().first(8192)).has_value());
  EXPECT_TRUE(open_broadcast_segment(segment.bytes()).has_value());
}

// ---- Unix sockets ----

class UnixSocket : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/brook-unix-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr) << std::strerror(errno);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }
  std::string path(const char* name) const { return dir_ + "/" + name; }

  // A connected pair through a real listener: {client side, accepted side}.
  std::pair<Fd, Fd> connected_pair() {
    Fd listener(listen_unix(path("broker.sock")));
    EXPECT_GE(listener.fd, 0) << std::strerror(-listener.fd);
    Fd client(connect_unix(path("broker.sock")));
    EXPECT_GE(client.fd, 0) << std::strerror(-client.fd);
    Fd accepted(::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC));
    EXPECT_GE(accepted.fd, 0) << std::strerror(errno);
    return {std::move(client), std::move(accepted)};
  }

  std::string dir_;
};

TEST_F(UnixSocket, a_client_connects_to_a_listener_and_bytes_flow_both_ways) {
  auto [client, accepted] = connected_pair();
  ASSERT_GE(client.fd, 0);
  ASSERT_GE(accepted.fd, 0);
  ASSERT_EQ(::write(client.fd, "hello", 5), 5);
  char buf[8] = {};
  ASSERT_EQ(::read(accepted.fd, buf, sizeof buf), 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
  ASSERT_EQ(::write(accepted.fd, "back", 4), 4);
  ASSERT_EQ(::read(client.fd, buf, sizeof buf), 4);
  EXPECT_EQ(std::string(buf, 4), "back");
  EXPECT_TRUE(::fcntl(client.fd, F_GETFD) & FD_CLOEXEC);
}

TEST_F(UnixSocket, peer_credentials_name_our_own_process_on_both_sides) {
  auto [client, accepted] = connected_pair();
  ASSERT_GE(accepted.fd, 0);
  for (int fd : {accepted.fd, client.fd}) {
    const auto cred = peer_credentials(fd);
    ASSERT_TRUE(cred.has_value());
    EXPECT_EQ(cred->pid, ::getpid());
    EXPECT_EQ(cred->uid, ::geteuid());
    EXPECT_EQ(cred->gid, ::getegid());
  }
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  Fd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  EXPECT_FALSE(peer_credentials(read_end.fd).has_value()) << "a pipe has no peer credentials";
}

TEST_F(UnixSocket, passed_descriptors_work_on_the_other_side) {
  auto [client, accepted] = connected_pair();
  ASSERT_GE(accepted.fd, 0);
  Fd event(::eventfd(0, EFD_CLOEXEC));
  ASSERT_GE(event.fd, 0);
  auto segment = SharedSegment::create("brook-passed-test", 4096);
  std::memcpy(segment.data(), "shared", 6);

  const int to_pass[] = {event.fd, segment.fd()};
  const auto message = std::as_bytes(std::span("rings", 5));
  ASSERT_EQ(send_with_fds(accepted.fd, message, to_pass), 5);

  std::byte buf[16];
  std::vector<int> received;
  ASSERT_EQ(receive_with_fds(client.fd, buf, received, 1000), 5);
  EXPECT_EQ(std::memcmp(buf, "rings", 5), 0);
  ASSERT_EQ(received.size(), 2u);
  Fd their_event(received[0]);
  for (int fd : received) {
    EXPECT_NE(fd, event.fd);
    EXPECT_NE(fd, segment.fd());
    EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC) << "received descriptors are close-on-exec";
  }

  const std::uint64_t seven = 7;
  ASSERT_EQ(::write(their_event.fd, &seven, sizeof seven), 8);
  std::uint64_t counted = 0;
  ASSERT_EQ(::read(event.fd, &counted, sizeof counted), 8);
  EXPECT_EQ(counted, 7u);

  auto theirs = SharedSegment::map(received[1], true);
  EXPECT_EQ(std::memcmp(theirs.data(), "shared", 6), 0);
  std::memcpy(theirs.data() + 100, "reply", 5);
  EXPECT_EQ(std::memcmp(segment.data() + 100, "reply", 5), 0);
}

TEST_F(UnixSocket, receive_times_out_when_nothing_arrives_and_sees_zero_when_the_peer_closes) {
  auto [client, accepted] = connected_pair();
  ASSERT_GE(accepted.fd, 0);
  std::byte buf[16];
  std::vector<int> fds;
  EXPECT_EQ(receive_with_fds(client.fd, buf, fds, 20), -ETIMEDOUT);
  EXPECT_TRUE(fds.empty());
  ::close(accepted.release());
  EXPECT_EQ(receive_with_fds(client.fd, buf, fds, 1000), 0);
  EXPECT_TRUE(fds.empty());
}

TEST_F(UnixSocket, more_descriptors_than_fit_are_refused_and_none_leak) {
  auto [client, accepted] = connected_pair();
  ASSERT_GE(accepted.fd, 0);
  Fd event(::eventfd(0, EFD_CLOEXEC));
  ASSERT_GE(event.fd, 0);

  std::vector<int> many(81, event.fd);
  const auto one_byte = std::as_bytes(std::span("x", 1));
  EXPECT_EQ(send_with_fds(accepted.fd, one_byte, many), -EINVAL);

  // A peer that is not ours may send more than our receive buffer holds.
  many.assign(100, event.fd);
  char control[CMSG_SPACE(sizeof(int) * 100)] = {};
  iovec iov{const_cast<char*>("x"), 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int) * many.size());
  std::memcpy(CMSG_DATA(cm), many.data(), sizeof(int) * many.size());
  ASSERT_EQ(::sendmsg(accepted.fd, &msg, MSG_NOSIGNAL), 1) << std::strerror(errno);

  const std::size_t before = open_descriptor_count();
  std::byte buf[16];
  std::vector<int> fds;
  EXPECT_EQ(receive_with_fds(client.fd, buf, fds, 1000), -EMSGSIZE);
  EXPECT_TRUE(fds.empty());
  EXPECT_EQ(open_descriptor_count(), before) << "descriptors of a refused message leaked";
}

TEST_F(UnixSocket, listen_replaces_a_socket_file_left_by_a_process_that_is_gone) {
  const std::string stale = path("broker.sock");
  {
    Fd old(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_GE(old.fd, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, stale.c_str(), stale.size() + 1);
    ASSERT_EQ(::bind(old.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(old.fd, 1), 0);
  }  // closed without unlinking, as by a crash
  struct stat st{};
  ASSERT_EQ(::lstat(stale.c_str(), &st), 0);
  ASSERT_TRUE(S_ISSOCK(st.st_mode));

  Fd listener(listen_unix(stale));
  ASSERT_GE(listener.fd, 0) << std::strerror(-listener.fd);
  Fd client(connect_unix(stale));
  EXPECT_GE(client.fd, 0) << std::strerror(-client.fd);
}

TEST_F(UnixSocket, listen_refuses_a_path_where_a_listener_is_alive) {
  const std::string live = path("broker.sock");
  Fd first(listen_unix(live));
  ASSERT_GE(first.fd, 0);
  EXPECT_EQ(listen_unix(live), -EADDRINUSE);
  Fd client(connect_unix(live));
  EXPECT_GE(client.fd, 0) << "the first listener still owns the path";
}

TEST_F(UnixSocket, listen_refuses_to_replace_a_file_that_is_not_a_socket) {
  const std::string file = path("broker.sock");
  std::ofstream(file) << "not a socket";
  EXPECT_EQ(listen_unix(file), -EEXIST);
  std::ifstream in(file);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "not a socket") << "the file was left alone";
}

TEST_F(UnixSocket, paths_too_long_for_a_socket_address_are_refused_and_missing_ones_not_found) {
  const std::string too_long = dir_ + "/" + std::string(sizeof(sockaddr_un::sun_path), 'x');
  EXPECT_EQ(listen_unix(too_long), -ENAMETOOLONG);
  EXPECT_EQ(connect_unix(too_long), -ENAMETOOLONG);
  EXPECT_EQ(listen_unix(""), -ENAMETOOLONG);
  EXPECT_EQ(connect_unix(path("nobody.sock")), -ENOENT);
}

}  // namespace
}  // namespace brook::transport
