// ws.static_dir: the files a WebSocket port serves to a plain GET (the betting page and its
// script), read into memory when brookd starts and again on SIGHUP, so that answering one
// never touches the disk from a shard's loop. Only the files found here are served: a
// request path is looked up, never joined to a directory, so nothing outside it is reachable.
#include "static_files.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

namespace brook::runtime {

namespace {

constexpr std::size_t max_files = 1000;
constexpr std::uintmax_t max_total_bytes = 32ull << 20;

std::string content_type_of(const std::filesystem::path& path) {
  const std::string ext = path.extension().string();
  if (ext == ".html" || ext == ".htm") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".json" || ext == ".map") return "application/json";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

}  // namespace

bool load_static_files(const std::string& dir, std::map<std::string, transport::StaticFile, std::less<>>& files,
                       std::string& error) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path root = fs::canonical(dir, ec);
  if (ec || !fs::is_directory(root, ec)) {
    error = "ws.static_dir " + dir + " is not a directory";
    return false;
  }
  std::map<std::string, transport::StaticFile, std::less<>> loaded;
  std::uintmax_t total = 0;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const fs::path relative = fs::relative(it->path(), root, ec);
    if (ec) break;
    if (!relative.empty() && relative.begin()->string().starts_with(".")) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;  // hidden files and directories stay private
    }
    if (!it->is_regular_file(ec)) continue;
    total += it->file_size(ec);
    if (loaded.size() >= max_files || total > max_total_bytes) {
      error = "ws.static_dir " + dir + " holds more than " + std::to_string(max_files) + " files or 32 MiB";
      return false;
    }
    std::ifstream in(it->path(), std::ios::binary);
    if (!in) {
      error = "cannot read " + it->path().string();
      return false;
    }
    transport::StaticFile file{content_type_of(it->path()),
                               std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>())};
    loaded.emplace("/" + relative.generic_string(), std::move(file));
  }
  if (ec) {
    error = "cannot read ws.static_dir " + dir + ": " + ec.message();
    return false;
  }
  files = std::move(loaded);
  return true;
}

}  // namespace brook::runtime
