#include "process_stats.hpp"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace brook::cli {

std::uint64_t rss_kib(long pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      std::uint64_t kib = 0;
      status >> kib;
      return kib;
    }
    status.ignore(4096, '\n');
  }
  return 0;
}

double cpu_seconds(long pid, const char* thread_name) {
  // /proc/PID/stat counts in clock ticks (10 ms): too coarse for microseconds per update.
  // Each thread's schedstat starts with its time on a CPU in nanoseconds.
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  DIR* dir = ::opendir(tasks.c_str());
  if (!dir) return -1;
  unsigned long long total_ns = 0;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    if (thread_name) {
      std::string name;
      std::getline(std::ifstream(tasks + "/" + entry->d_name + "/comm"), name);
      if (name != thread_name) continue;
    }
    std::ifstream schedstat(tasks + "/" + entry->d_name + "/schedstat");
    unsigned long long ns = 0;
    if (schedstat >> ns) total_ns += ns;
  }
  ::closedir(dir);
  return static_cast<double>(total_ns) / 1e9;
}

long find_brookd() {
  long found = -1;
  DIR* proc = ::opendir("/proc");
  if (!proc) return -1;
  while (dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    if (!(comm >> name) || name != "brookd") continue;
    if (found != -1) {
      found = -2;
      break;
    }
    found = pid;
  }
  ::closedir(proc);
  return found;
}

}  // namespace brook::cli
