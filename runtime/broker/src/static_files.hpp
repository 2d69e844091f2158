#pragma once
// ws.static_dir, read into memory (static_files.cpp).
#include <map>
#include <string>

#include "brook/transport/websocket.hpp"

namespace brook::runtime {

// Every regular file under `dir` (not hidden), by its request path ("/app/page.js"). False,
// `error` set and `files` untouched, when the directory cannot be read or is over the limits
// (1,000 files, 32 MiB).
bool load_static_files(const std::string& dir, std::map<std::string, transport::StaticFile, std::less<>>& files,
                       std::string& error);

}  // namespace brook::runtime
