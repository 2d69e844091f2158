#include "nats_connect.hpp"

#include <cstdlib>
#include <stdexcept>

namespace brook::bench::nats {

// The library's last error says more than the status ("Authorization Violation"); it comes as
// "(conn.c:2088): text", and the source location is of no use to whoever runs the bench.
std::string failure(const std::string& what, natsStatus s) {
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  std::string reason = detail != nullptr && *detail != '\0' ? detail : natsStatus_GetText(s);
  if (const std::size_t at = reason.find("): "); reason.starts_with('(') && at != std::string::npos)
    reason.erase(0, at + 3);
  return "nats: " + what + ": " + reason;
}

void check(natsStatus s, const std::string& what) {
  if (s != NATS_OK) throw std::runtime_error(failure(what, s));
}

OptionsPtr connection_options(const std::string& url, const std::string& name, Writes writes) {
  natsOptions* raw = nullptr;
  check(natsOptions_Create(&raw), "natsOptions_Create");
  OptionsPtr options(raw);
  check(natsOptions_SetURL(raw, url.c_str()), "natsOptions_SetURL " + url);
  check(natsOptions_SetName(raw, name.c_str()), "natsOptions_SetName");
  check(natsOptions_SetNoRandomize(raw, true), "natsOptions_SetNoRandomize");
  check(natsOptions_SetTimeout(raw, kConnectTimeoutMs), "natsOptions_SetTimeout");
  check(natsOptions_SetSendAsap(raw, writes == Writes::at_once), "natsOptions_SetSendAsap");
  check(natsOptions_SetAllowReconnect(raw, false), "natsOptions_SetAllowReconnect");
  // tls://HOST:PORT: a nats-server with a tls {} block, its CA in $PEER_TLS_CA (the same
  // certificate and CA Brook's TLS listener gets in the same run).
  if (url.starts_with("tls://")) {
    check(natsOptions_SetSecure(raw, true), "natsOptions_SetSecure");
    if (const char* ca = std::getenv("PEER_TLS_CA"); ca && *ca)
      check(natsOptions_LoadCATrustedCertificates(raw, ca), "natsOptions_LoadCATrustedCertificates");
  }
  return options;
}

}  // namespace brook::bench::nats
