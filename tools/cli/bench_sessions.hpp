#pragma once
// The session scenarios of `brook bench` (issue 3's figures):
//   resync:   a subscriber cut off (through a CutRelay) while `count` updates are published;
//             after it reconnects: how long until it has caught up, and how many of the
//             updates it recovered vs missed (must be all vs none).
//   sessions: `count` idle sessions opened on the broker; its resident memory before and
//             after, per session.
#include <cstdint>
#include <string>

namespace brook::cli {

int run_resync(const std::string& url, std::uint64_t count, std::size_t payload, bool json);
int run_sessions(const std::string& url, std::uint64_t count, long broker_pid, bool json);

}  // namespace brook::cli
