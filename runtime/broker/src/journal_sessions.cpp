#include "journal_sessions.hpp"

#include <xxhash.h>

#include <cstring>

namespace brook::runtime::journal {

namespace {

constexpr std::size_t fixed_bytes = 8 + 8 + 8 + 8 + 4 + 1 + 1 + 2 + 16;

template <class T>
void put(std::vector<std::byte>& out, T value) {
  const std::size_t at = out.size();
  out.resize(at + sizeof value);
  std::memcpy(out.data() + at, &value, sizeof value);
}

void put_text(std::vector<std::byte>& out, std::string_view text) {
  const auto* bytes = reinterpret_cast<const std::byte*>(text.data());
  out.insert(out.end(), bytes, bytes + text.size());
}

// Reads little-endian fields off the front of a payload; any read past its end fails them all.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> bytes) : bytes_(bytes) {}
  template <class T>
  T get() {
    T value{};
    if (!take(sizeof value)) return value;
    std::memcpy(&value, bytes_.data() + at_ - sizeof value, sizeof value);
    return value;
  }
  std::string text(std::size_t n) {
    if (!take(n)) return {};
    return {reinterpret_cast<const char*>(bytes_.data() + at_ - n), n};
  }
  void bytes(std::byte* out, std::size_t n) {
    if (take(n)) std::memcpy(out, bytes_.data() + at_ - n, n);
  }
  bool ok() const { return ok_; }
  bool at_end() const { return ok_ && at_ == bytes_.size(); }

 private:
  bool take(std::size_t n) {
    if (!ok_ || bytes_.size() - at_ < n) return ok_ = false;
    at_ += n;
    return true;
  }
  std::span<const std::byte> bytes_;
  std::size_t at_ = 0;
  bool ok_ = true;
};

}  // namespace

void encode_session_record(const SessionRecord& r, std::vector<std::byte>& out) {
  out.clear();
  put<std::uint64_t>(out, r.time_ns);
  put<std::uint64_t>(out, r.through);
  put<std::uint64_t>(out, r.publisher_key);
  put<std::int64_t>(out, r.number);
  put<std::uint32_t>(out, r.reconnect_timeout_ms);
  put<std::uint8_t>(out, r.ended ? 1 : 0);
  put<std::uint8_t>(out, 0);
  put<std::uint16_t>(out, static_cast<std::uint16_t>(r.principal.size()));
  out.insert(out.end(), r.token.begin(), r.token.end());
  put_text(out, r.principal);
  put<std::uint32_t>(out, static_cast<std::uint32_t>(r.subscriptions.size()));
  for (const SessionSubscriptionRecord& s : r.subscriptions) {
    put<std::uint32_t>(out, s.request_id);
    put<std::uint32_t>(out, s.history);
    put<std::uint64_t>(out, s.since_plus_one);
    put<std::uint16_t>(out, static_cast<std::uint16_t>(s.selector.size()));
    put_text(out, s.selector);
  }
}

std::optional<SessionRecord> decode_session_record(std::span<const std::byte> payload) {
  if (payload.size() < fixed_bytes) return std::nullopt;
  Reader in(payload);
  SessionRecord r;
  r.time_ns = in.get<std::uint64_t>();
  r.through = in.get<std::uint64_t>();
  r.publisher_key = in.get<std::uint64_t>();
  r.number = in.get<std::int64_t>();
  r.reconnect_timeout_ms = in.get<std::uint32_t>();
  r.ended = in.get<std::uint8_t>() != 0;
  in.get<std::uint8_t>();
  const auto principal_bytes = in.get<std::uint16_t>();
  in.bytes(r.token.data(), r.token.size());
  r.principal = in.text(principal_bytes);
  const auto count = in.get<std::uint32_t>();
  // Each subscription takes at least 18 bytes: a count the payload cannot hold is damage.
  if (!in.ok() || count > payload.size() / 18) return std::nullopt;
  r.subscriptions.resize(count);
  for (SessionSubscriptionRecord& s : r.subscriptions) {
    s.request_id = in.get<std::uint32_t>();
    s.history = in.get<std::uint32_t>();
    s.since_plus_one = in.get<std::uint64_t>();
    s.selector = in.text(in.get<std::uint16_t>());
  }
  if (!in.at_end() || r.principal.empty() || r.number <= 0) return std::nullopt;
  return r;
}

unsigned session_home(std::string_view id, unsigned shard_count) noexcept {
  return static_cast<unsigned>(XXH3_64bits(id.data(), id.size()) % shard_count);
}

}  // namespace brook::runtime::journal
