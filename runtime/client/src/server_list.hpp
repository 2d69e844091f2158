#pragma once
// The brokers a client may reach, from ClientOptions::url: one URL or several separated by
// commas ("tcp://a:9090,tls://b:9443,shm:///run/brook.sock"), tried in that order on connect and on every
// reconnection attempt.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "brook/transport/tcp.hpp"

namespace brook::client_detail {

struct ServerAddress {
  std::string url;                             // as written, for reports
  std::optional<transport::Endpoint> tcp;      // tcp://HOST:PORT or tls://HOST:PORT
  bool tls = false;                            // tls://: TLS over that TCP connection
  std::string shm_path;                        // shm://PATH (when !tcp)
};

// The servers in `urls`, in order; empty with `error` set when one cannot be parsed.
std::vector<ServerAddress> parse_server_list(std::string_view urls, std::string& error);

}  // namespace brook::client_detail
