#pragma once
// The session options `brook sub`, `pub` and `ping` share: where, who, and how to come back
// after a dropped connection. The password is never a command-line argument (it would show in
// `ps`): it comes from $BROOK_PASSWORD or the first line of --password-file.
#include <CLI/CLI.hpp>
#include <string>

#include "brook/client/client.hpp"

namespace brook::cli {

struct SessionArgs {
  std::string tls_ca;    // tls:// URLs: --tls-ca, --tls-cert, --tls-key
  std::string tls_cert;
  std::string tls_key;
  std::string url = default_url();
  std::string principal;  // default $BROOK_PRINCIPAL
  std::string password_file;
  std::int64_t session_number = 0;
  bool transient_session = false;  // a named session the broker does not journal
  double reconnect_timeout_s = 60;
  double reconnect_delay_s = 1;
  bool spin = false;  // busy-poll (shared memory: the lowest latency, a core taken)
};

void add_session_options(CLI::App& cmd, SessionArgs& args);

// The client options; `reconnect` false: a dropped connection ends the session. Sets `error`
// when the password file cannot be read.
ClientOptions client_options(const SessionArgs& args, std::string client_name, bool reconnect,
                             std::string& error);

// A failed connect: 3 when the broker refused (credentials, session), 2 when it could not be
// reached or the options were wrong (the exit codes of commands.hpp).
bool refused_by_broker(const Status& status);
int connect_failure_exit_code(const Status& status);

}  // namespace brook::cli
