#pragma once
// Lines from a shard's loop to stderr, at most a few a second: a flood of bad connections or
// of slow consumers must not turn the loop into a writer of stderr (a write that blocks when
// its reader, journald or a pipe, is slow), nor bury the log. What is held back is counted,
// and said in the next line that goes out. The shard's thread only.
#include <cstdint>
#include <cstdio>

namespace brook::runtime {

class RateLimitedLog {
 public:
  explicit RateLimitedLog(unsigned lines_per_second = 20, std::FILE* out = stderr)
      : lines_per_second_(lines_per_second), out_(out) {}
  // printf-style; `now_ns` is the shard's clock.
  void line(std::uint64_t now_ns, const char* format, ...) __attribute__((format(printf, 3, 4)));
  std::uint64_t held_back() const noexcept { return held_back_total_; }

 private:
  unsigned lines_per_second_;
  std::FILE* out_;
  std::uint64_t window_start_ns_ = 0;
  unsigned lines_in_window_ = 0;
  std::uint64_t held_back_ = 0;        // since the last line that went out
  std::uint64_t held_back_total_ = 0;
};

}  // namespace brook::runtime
