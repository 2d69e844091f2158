#include "brook/transport/shm_segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <new>
#include <string>
#include <system_error>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

namespace brook::transport {

namespace {
constexpr std::size_t page_bytes = 4096;
constexpr std::size_t session_header_area = 64 + 2 * sizeof(ShmRingIndices);

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }
std::size_t ring_capacity(std::size_t bytes) {
  return std::bit_ceil(bytes < page_bytes ? page_bytes : bytes);
}
[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}
// Closes `fd` (keeping errno, or EINVAL when no call failed) and throws.
[[noreturn]] void close_and_fail(int fd, const char* what) {
  int e = errno ? errno : EINVAL;
  ::close(fd);
  errno = e;
  fail(what);
}
}  // namespace

SharedSegment SharedSegment::create(const char* name, std::size_t bytes) {
  bytes = round_up(bytes, page_bytes);
  int fd = ::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) fail("memfd_create");
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0 ||
      ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0)
    close_and_fail(fd, "sizing a shared segment");
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) close_and_fail(fd, "mmap of a shared segment");
  return SharedSegment(fd, static_cast<std::byte*>(p), bytes);
}

SharedSegment SharedSegment::map(int fd, bool writable) {
  struct stat st{};
  // A peer's segment must be sealed against shrinking, or it could make our accesses fault.
  errno = 0;  // a check that fails without a failing call must report EINVAL, not a stale errno
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (::fstat(fd, &st) != 0 || st.st_size <= 0 || seals < 0 || !(seals & F_SEAL_SHRINK))
    close_and_fail(fd, "a shared segment that is not a sealed memfd");
  const auto bytes = static_cast<std::size_t>(st.st_size);
  void* p = ::mmap(nullptr, bytes, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) close_and_fail(fd, "mmap of a shared segment");
  return SharedSegment(fd, static_cast<std::byte*>(p), bytes);
}

SharedSegment::~SharedSegment() { reset(); }

SharedSegment::SharedSegment(SharedSegment&& other) noexcept
    : fd_(other.fd_), data_(other.data_), size_(other.size_) {
  other.fd_ = -1;
  other.data_ = nullptr;
  other.size_ = 0;
}

SharedSegment& SharedSegment::operator=(SharedSegment&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = other.fd_;
    data_ = other.data_;
    size_ = other.size_;
    other.fd_ = -1;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

void SharedSegment::reset() noexcept {
  if (data_) ::munmap(data_, size_);
  close_fd();
  data_ = nullptr;
  size_ = 0;
}

void SharedSegment::close_fd() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

int SharedSegment::seal_and_open_read_only() {
  if (fd_ < 0) return -EBADF;
  if (::fcntl(fd_, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) != 0) return -errno;
  // Reopening through /proc gives a descriptor of the same file opened read-only: mapping it
  // writable fails, and the seal stops a reopen for writing from mapping it writable either.
  std::string path = "/proc/self/fd/" + std::to_string(fd_);
  int ro = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  return ro >= 0 ? ro : -errno;
}

std::size_t session_segment_bytes(std::size_t to_broker_bytes, std::size_t to_client_bytes) {
  return round_up(session_header_area, page_bytes) + ring_capacity(to_broker_bytes) +
         ring_capacity(to_client_bytes);
}

SessionRings init_session_segment(std::span<std::byte> segment, std::size_t to_broker_bytes,
                                  std::size_t to_client_bytes) {
  to_broker_bytes = ring_capacity(to_broker_bytes);
  to_client_bytes = ring_capacity(to_client_bytes);
  auto* header = new (segment.data()) SessionSegmentHeader{};
  header->to_broker_offset = round_up(session_header_area, page_bytes);
  header->to_broker_bytes = to_broker_bytes;
  header->to_client_offset = header->to_broker_offset + to_broker_bytes;
  header->to_client_bytes = to_client_bytes;
  new (segment.data() + 64) ShmRingIndices{};
  new (segment.data() + 64 + sizeof(ShmRingIndices)) ShmRingIndices{};
  header->magic = session_segment_magic;
  return *open_session_segment(segment);
}

std::optional<SessionRings> open_session_segment(std::span<std::byte> segment) {
  if (segment.size() < session_header_area) return std::nullopt;
  SessionSegmentHeader header;
  std::memcpy(&header, segment.data(), sizeof header);
  auto ring_fits = [&](std::uint64_t offset, std::uint64_t bytes) {
    return bytes >= page_bytes && std::has_single_bit(bytes) && offset >= session_header_area &&
           offset <= segment.size() && bytes <= segment.size() - offset;
  };
  if (header.magic != session_segment_magic ||
      !ring_fits(header.to_broker_offset, header.to_broker_bytes) ||
      !ring_fits(header.to_client_offset, header.to_client_bytes))
    return std::nullopt;
  return SessionRings{
      reinterpret_cast<ShmRingIndices*>(segment.data() + 64),
      segment.data() + header.to_broker_offset,
      header.to_broker_bytes,
      reinterpret_cast<ShmRingIndices*>(segment.data() + 64 + sizeof(ShmRingIndices)),
      segment.data() + header.to_client_offset,
      header.to_client_bytes};
}

std::size_t broadcast_segment_bytes(std::size_t log_bytes) {
  return page_bytes + ring_capacity(log_bytes);
}

std::span<std::byte> init_broadcast_segment(std::span<std::byte> segment, std::size_t log_bytes) {
  auto* header = new (segment.data()) BroadcastSegmentHeader{};
  header->log_offset = page_bytes;
  header->log_bytes = ring_capacity(log_bytes);
  header->magic = broadcast_segment_magic;
  return segment.subspan(page_bytes, header->log_bytes);
}

std::optional<std::span<const std::byte>> open_broadcast_segment(std::span<const std::byte> segment) {
  if (segment.size() < sizeof(BroadcastSegmentHeader)) return std::nullopt;
  BroadcastSegmentHeader header;
  std::memcpy(&header, segment.data(), sizeof header);
  if (header.magic != broadcast_segment_magic || header.log_offset < sizeof header ||
      header.log_offset > segment.size() || !std::has_single_bit(header.log_bytes) ||
      header.log_bytes > segment.size() - header.log_offset)
    return std::nullopt;
  return segment.subspan(header.log_offset, header.log_bytes);
}

}  // namespace brook::transport
