// ClientOptions from a TOML file and from the environment, the way brookd reads its own.
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <string_view>
#include <toml++/toml.h>

#include "brook/client/client.hpp"

namespace brook {

namespace {

// -1 (no limit) and up; the duration and count fields refuse negatives themselves.
bool parse_integer(std::string_view text, std::int64_t& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

bool parse_fsync(std::string_view text, QueueFsync& out) {
  if (text == "never") out = QueueFsync::never;
  else if (text == "batch") out = QueueFsync::batch;
  else if (text == "always") out = QueueFsync::always;
  else return false;
  return true;
}

std::string check(const ClientOptions& o) {
  if (o.retries < -1) return "retries must be -1 (no limit) or more";
  if (o.queue_entries < -1) return "queue_entries must be -1 (no limit) or more";
  if (o.queue_bytes < -1) return "queue_bytes must be -1 (no limit) or more";
  if (o.reconnect_delay.count() < 0 || o.ping_interval.count() < 1 ||
      o.reconnect_timeout.count() < 0 || o.connect_timeout.count() < 1 ||
      o.close_timeout.count() < 0)
    return "durations must not be negative (ping_interval_ms and connect_timeout_ms at least 1)";
  return {};
}

}  // namespace

std::string load_client_options(const std::string& path, ClientOptions& options) {
  ClientOptions o = options;  // the caller's are changed only when the whole file is good
  toml::table config;
  try {
    config = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return "cannot read " + path + ": " + std::string(e.description());
  }
  auto client = config["client"];
  std::string error;
  auto text = [&](const char* key, std::string& field) {
    if (auto node = client[key]; node) {
      if (auto v = node.value<std::string>()) field = *v;
      else error = std::string("client.") + key + " must be a string";
    }
  };
  auto integer = [&](const char* key, std::int64_t& field) {
    if (auto node = client[key]; node) {
      if (auto v = node.value<std::int64_t>()) field = *v;
      else error = std::string("client.") + key + " must be an integer";
    }
  };
  auto millis = [&](const char* key, std::chrono::milliseconds& field) {
    std::int64_t v = field.count();
    integer(key, v);
    field = std::chrono::milliseconds(v);
  };
  auto boolean = [&](const char* key, bool& field) {
    if (auto node = client[key]; node) {
      if (auto v = node.value_exact<bool>()) field = *v;
      else error = std::string("client.") + key + " must be true or false";
    }
  };
  text("url", o.url);
  text("principal", o.principal);
  text("client_name", o.client_name);
  integer("session_number", o.session_number);
  boolean("durable_session", o.durable_session);
  integer("retries", o.retries);
  integer("queue_entries", o.queue_entries);
  integer("queue_bytes", o.queue_bytes);
  millis("reconnect_delay_ms", o.reconnect_delay);
  millis("reconnect_timeout_ms", o.reconnect_timeout);
  millis("connect_timeout_ms", o.connect_timeout);
  millis("ping_interval_ms", o.ping_interval);
  millis("close_timeout_ms", o.close_timeout);
  text("queue_path", o.queue_path);
  boolean("send_from_caller", o.send_from_caller);
  boolean("own_thread", o.own_thread);
  std::string fsync;
  text("queue_fsync", fsync);
  if (!fsync.empty() && !parse_fsync(fsync, o.queue_fsync))
    error = "client.queue_fsync must be \"never\", \"batch\" or \"always\"";
  if (!error.empty()) return path + ": " + error;
  if (auto why = check(o); !why.empty()) return path + ": client." + why;
  options = std::move(o);
  return {};
}

std::string apply_client_environment(ClientOptions& options) {
  ClientOptions o = options;
  if (const char* url = std::getenv("BROOK_URL"); url && *url) o.url = url;
  if (const char* path = std::getenv("BROOK_QUEUE_PATH"); path && *path) o.queue_path = path;
  if (const char* path = std::getenv("BROOK_TLS_CA"); path && *path) o.tls_ca_file = path;
  if (const char* path = std::getenv("BROOK_TLS_CERT"); path && *path) o.tls_cert_file = path;
  if (const char* path = std::getenv("BROOK_TLS_KEY"); path && *path) o.tls_key_file = path;
  if (const char* fsync = std::getenv("BROOK_QUEUE_FSYNC"); fsync && *fsync && !parse_fsync(fsync, o.queue_fsync))
    return std::string("BROOK_QUEUE_FSYNC must be never, batch or always, not '") + fsync + "'";
  auto boolean = [](const char* name, bool& field) -> std::string {
    const char* value = std::getenv(name);
    if (!value || !*value) return {};
    const std::string_view text = value;
    if (text == "1" || text == "true") field = true;
    else if (text == "0" || text == "false") field = false;
    else return std::string(name) + " must be 1, 0, true or false, not '" + value + "'";
    return {};
  };
  auto integer = [](const char* name, std::int64_t& field) -> std::string {
    const char* value = std::getenv(name);
    if (!value || !*value) return {};
    if (!parse_integer(value, field)) return std::string(name) + " must be an integer, not '" + value + "'";
    return {};
  };
  auto millis = [&](const char* name, std::chrono::milliseconds& field) -> std::string {
    std::int64_t v = field.count();
    auto why = integer(name, v);
    field = std::chrono::milliseconds(v);
    return why;
  };
  for (auto why : {boolean("BROOK_SEND_FROM_CALLER", o.send_from_caller), boolean("BROOK_OWN_THREAD", o.own_thread),
                   integer("BROOK_RETRIES", o.retries), millis("BROOK_RECONNECT_DELAY_MS", o.reconnect_delay),
                   millis("BROOK_PING_INTERVAL_MS", o.ping_interval),
                   integer("BROOK_QUEUE_ENTRIES", o.queue_entries),
                   integer("BROOK_QUEUE_BYTES", o.queue_bytes)})
    if (!why.empty()) return why;
  if (auto why = check(o); !why.empty()) return why;
  options = std::move(o);
  return {};
}

}  // namespace brook
