#pragma once
// Tells systemd (Type=notify) how brookd is doing, over $NOTIFY_SOCKET, as sd_notify(3) does:
// one datagram per state ("READY=1", "STOPPING=1"). Without that variable, or when systemd
// is not listening, it does nothing: brookd runs the same from a shell.
#include <string_view>

namespace brook::tools {

void notify_systemd(std::string_view state);

}  // namespace brook::tools
