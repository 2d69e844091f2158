#pragma once
// Principals for tests of authenticated brokers: a credentials file with alice and bob (hashed
// at the minimal cost, so that a check takes milliseconds), a broker config that uses it, and
// client options that log in.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "brook/runtime/credentials.hpp"

namespace brook::test {

inline constexpr const char* alice_password = "alice's secret";
inline constexpr const char* bob_password = "bob's other secret";

// A credentials file (alice and bob) in its own temporary directory, removed with it.
class CredentialsFile {
 public:
  CredentialsFile() : dir_(make_temp_dir("auth")) {
    add("alice", alice_password);
    add("bob", bob_password);
  }
  ~CredentialsFile() { remove_temp_dir(dir_); }
  CredentialsFile(const CredentialsFile&) = delete;
  CredentialsFile& operator=(const CredentialsFile&) = delete;

  std::string path() const { return dir_ + "/credentials"; }

 private:
  void add(const std::string& principal, const std::string& password) {
    std::string error;
    if (dir_.empty() ||
        !runtime::write_credential(
            path(), principal, runtime::hash_password(password, runtime::PasswordCost::minimal),
            error))
      ADD_FAILURE() << "cannot write the credentials of " << principal << ": " << error;
  }

  std::string dir_;
};

inline BrokerConfig auth_broker(const CredentialsFile& credentials, bool allow_anonymous,
                         unsigned shards = 2) {
  BrokerConfig config = with_shards(shards);
  config.config_toml = "[auth]\ncredentials_file = \"" + credentials.path() +
                       "\"\nallow_anonymous = " + (allow_anonymous ? "true" : "false") +
                       "\n[session]\nrecovery_bytes = 67108864\n";
  return config;
}

inline ClientOptions login(const std::string& url, std::string principal, std::string password,
                    std::int64_t session_number = 0) {
  ClientOptions options;
  options.url = url;
  options.client_name = "auth-test-" + (principal.empty() ? "anonymous" : principal);
  options.principal = std::move(principal);
  options.credentials = std::move(password);
  options.session_number = session_number;
  options.connect_timeout = std::chrono::seconds(10);
  options.reconnect_timeout = std::chrono::seconds(30);
  options.reconnect_delay = std::chrono::milliseconds(50);
  return options;
}

}  // namespace brook::test
