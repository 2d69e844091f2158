#include "server_list.hpp"

namespace brook::client_detail {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<ServerAddress> parse_one(std::string_view url) {
  constexpr std::string_view tcp = "tcp://", tls = "tls://", shm = "shm://";
  ServerAddress a;
  a.url = std::string(url);
  a.tls = url.substr(0, tls.size()) == tls;
  if (url.substr(0, tcp.size()) == tcp || a.tls) {
    a.tcp = transport::parse_endpoint(url.substr(tcp.size()));
    if (!a.tcp) return std::nullopt;
    return a;
  }
  if (url.substr(0, shm.size()) == shm && url.size() > shm.size()) {
    a.shm_path = std::string(url.substr(shm.size()));
    return a;
  }
  return std::nullopt;
}

}  // namespace

std::vector<ServerAddress> parse_server_list(std::string_view urls, std::string& error) {
  std::vector<ServerAddress> servers;
  for (;;) {
    const std::size_t comma = urls.find(',');
    const std::string_view url = trim(urls.substr(0, comma));
    auto server = parse_one(url);
    if (!server) {
      error = "cannot parse URL '" + std::string(url) + "' (want tcp://HOST:PORT, tls://HOST:PORT or shm://PATH)";
      return {};
    }
    servers.push_back(std::move(*server));
    if (comma == std::string_view::npos) break;
    urls.remove_prefix(comma + 1);
  }
  return servers;
}

}  // namespace brook::client_detail
