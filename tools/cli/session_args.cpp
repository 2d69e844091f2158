#include "session_args.hpp"

#include "commands.hpp"

#include <cstdlib>
#include <fstream>

namespace brook::cli {

void add_session_options(CLI::App& cmd, SessionArgs& args) {
  if (const char* p = std::getenv("BROOK_PRINCIPAL")) args.principal = p;
  cmd.add_option("--url", args.url,
                 "broker URL: tcp://HOST:PORT, tls://HOST:PORT or shm://PATH (default $BROOK_URL or "
                 "tcp://127.0.0.1:9090)");
  cmd.add_option("--tls-ca", args.tls_ca, "tls://: the CA file (PEM) that signs the broker's certificate (default: the system's)");
  cmd.add_option("--tls-cert", args.tls_cert, "tls://: this client's certificate (PEM), for a broker that verifies clients");
  cmd.add_option("--tls-key", args.tls_key, "tls://: the key of --tls-cert");
  cmd.add_option("--principal", args.principal,
                 "who connects (default $BROOK_PRINCIPAL; password from $BROOK_PASSWORD or "
                 "--password-file)");
  cmd.add_option("--password-file", args.password_file, "read the password from this file's first line");
  cmd.add_option("--session", args.session_number,
                 "name the session PRINCIPAL/N (N > 0): connecting again with it resumes it, also "
                 "after a restart of a broker with a data dir")
      ->check(CLI::NonNegativeNumber);
  cmd.add_flag("--transient-session", args.transient_session,
               "with --session: the broker keeps the session in memory only (a restart ends it)");
  cmd.add_option("--reconnect-timeout", args.reconnect_timeout_s,
                 "how long the session survives a dropped connection, in seconds (default 60)")
      ->check(CLI::Range(0.0, 86400.0));
  cmd.add_option("--reconnect-delay", args.reconnect_delay_s,
                 "seconds between reconnection attempts (default 1)")
      ->check(CLI::Range(0.0, 3600.0));
  cmd.add_flag("--spin", args.spin, "busy-poll instead of sleeping between messages (a core taken)");
}

ClientOptions client_options(const SessionArgs& args, std::string client_name, bool reconnect,
                             std::string& error) {
  ClientOptions o;
  o.url = args.url;
  o.client_name = std::move(client_name);
  o.principal = args.principal;
  o.session_number = args.session_number;
  o.durable_session = !args.transient_session;
  o.spin = args.spin;
  if (!args.tls_ca.empty()) o.tls_ca_file = args.tls_ca;
  if (!args.tls_cert.empty()) o.tls_cert_file = args.tls_cert;
  if (!args.tls_key.empty()) o.tls_key_file = args.tls_key;
  if (!args.password_file.empty()) {
    std::ifstream in(args.password_file);
    if (!in || !std::getline(in, o.credentials)) {
      error = "cannot read the password from " + args.password_file;
      return o;
    }
  } else if (const char* p = std::getenv("BROOK_PASSWORD")) {
    o.credentials = p;
  }
  using std::chrono::milliseconds;
  o.reconnect_timeout = reconnect ? milliseconds(static_cast<std::int64_t>(args.reconnect_timeout_s * 1000))
                                  : milliseconds(0);
  o.reconnect_delay = milliseconds(static_cast<std::int64_t>(args.reconnect_delay_s * 1000));
  // Without reconnection a broker that is not there is an error at once, as scripts expect.
  o.retries = reconnect ? -1 : 0;
  return o;
}

bool refused_by_broker(const Status& status) {
  switch (status.code) {
    case ErrorCode::authentication_failed:
    case ErrorCode::session_not_found:
    case ErrorCode::session_closed:
    case ErrorCode::protocol_version:
      return true;
    default:
      return false;
  }
}

int connect_failure_exit_code(const Status& status) {
  return refused_by_broker(status) ? exit_refused : exit_usage;
}

}  // namespace brook::cli
