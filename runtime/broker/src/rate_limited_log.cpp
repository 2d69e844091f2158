#include "rate_limited_log.hpp"

#include <cstdarg>

namespace brook::runtime {

void RateLimitedLog::line(std::uint64_t now_ns, const char* format, ...) {
  if (now_ns - window_start_ns_ >= 1'000'000'000) {
    window_start_ns_ = now_ns;
    lines_in_window_ = 0;
  }
  if (lines_in_window_ == lines_per_second_) {
    ++held_back_;
    ++held_back_total_;
    return;
  }
  ++lines_in_window_;
  // One write per line, so that lines from several shards do not interleave.
  char text[1024];
  va_list arguments;
  va_start(arguments, format);
  int n = std::vsnprintf(text, sizeof text, format, arguments);
  va_end(arguments);
  if (n < 0) return;
  std::size_t length = static_cast<std::size_t>(n) < sizeof text ? static_cast<std::size_t>(n) : sizeof text - 1;
  if (held_back_ > 0 && length + 64 < sizeof text) {
    length += static_cast<std::size_t>(std::snprintf(text + length, sizeof text - length,
                                                     " (%llu similar lines held back)",
                                                     static_cast<unsigned long long>(held_back_)));
    held_back_ = 0;
  }
  std::fprintf(out_, "%.*s\n", static_cast<int>(length), text);
}

}  // namespace brook::runtime
