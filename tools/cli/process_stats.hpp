#pragma once
// What /proc says of a process (the broker under a benchmark): resident memory, CPU time, and
// finding the one brookd running.
#include <cstdint>

namespace brook::cli {

// Resident memory of a process, in KiB; 0 if unreadable.
std::uint64_t rss_kib(long pid);
// CPU time of a process (all its threads, or those named `thread_name`), in seconds, to the
// nanosecond (schedstat); -1 if unreadable.
double cpu_seconds(long pid, const char* thread_name = nullptr);
// The one process named brookd, or -1 when there is none, -2 when there are several.
long find_brookd();

}  // namespace brook::cli
