#include "brook/runtime/credentials.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace brook::runtime {

static_assert(crypto_pwhash_ALG_DEFAULT == crypto_pwhash_ALG_ARGON2ID13,
              "crypto_pwhash_str must produce argon2id hashes");

namespace {

constexpr std::size_t max_principal_chars = 128;
// A file larger than this is refused rather than read: ~400k entries of ~160 bytes.
constexpr std::size_t max_file_bytes = 64u << 20;
constexpr std::string_view argon2id_prefix = "$argon2id$v=19$m=";

// Thread-safe: the function-local static is initialised once, and sodium_init() itself is
// idempotent.
bool sodium_ready() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}

struct Argon2Cost {
  unsigned long long opslimit = 0;
  std::size_t memlimit_bytes = 0;
  auto operator<=>(const Argon2Cost&) const = default;
};

bool parse_number(std::string_view& text, std::uint64_t& value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end == text.data()) return false;
  text.remove_prefix(static_cast<std::size_t>(end - text.data()));
  return true;
}

bool consume(std::string_view& text, std::string_view expected) {
  if (!text.starts_with(expected)) return false;
  text.remove_prefix(expected.size());
  return true;
}

// ASCII only, whatever the locale.
bool is_alnum(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool is_base64_text(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text)
    if (!is_alnum(c) && c != '+' && c != '/') return false;
  return true;
}

// The cost recorded in `$argon2id$v=19$m=KIB,t=OPS,p=LANES$SALT$HASH`, or nullopt when `hash`
// is not in that form or asks for a cost libsodium refuses.
std::optional<Argon2Cost> argon2id_cost(std::string_view hash) {
  if (hash.size() >= crypto_pwhash_STRBYTES) return std::nullopt;
  std::uint64_t kib = 0, ops = 0, lanes = 0;
  std::string_view rest = hash;
  if (!consume(rest, argon2id_prefix) || !parse_number(rest, kib) || !consume(rest, ",t=") ||
      !parse_number(rest, ops) || !consume(rest, ",p=") || !parse_number(rest, lanes) ||
      !consume(rest, "$"))
    return std::nullopt;
  auto dollar = rest.find('$');
  if (dollar == std::string_view::npos || !is_base64_text(rest.substr(0, dollar)) ||
      !is_base64_text(rest.substr(dollar + 1)))
    return std::nullopt;
  if (lanes < 1 || ops < crypto_pwhash_OPSLIMIT_MIN || ops > crypto_pwhash_OPSLIMIT_MAX ||
      kib > crypto_pwhash_MEMLIMIT_MAX / 1024 || kib * 1024 < crypto_pwhash_MEMLIMIT_MIN)
    return std::nullopt;
  return Argon2Cost{ops, static_cast<std::size_t>(kib * 1024)};
}

// The hash of a random password nobody knows, at `cost`; empty when the memory is refused.
std::string dummy_hash(Argon2Cost cost) {
  unsigned char secret[32];
  randombytes_buf(secret, sizeof secret);
  char out[crypto_pwhash_STRBYTES];
  int rc = crypto_pwhash_str(out, reinterpret_cast<const char*>(secret), sizeof secret,
                             cost.opslimit, cost.memlimit_bytes);
  sodium_memzero(secret, sizeof secret);
  return rc == 0 ? std::string(out) : std::string();
}

// Reads the whole of `path` into `text`. `missing` (when given) reports ENOENT without an error.
bool read_file(const std::filesystem::path& path, std::string& text, std::string& error,
               bool* missing = nullptr) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (missing && errno == ENOENT) {
      *missing = true;
      return true;
    }
    error = path.string() + ": cannot open: " + std::strerror(errno);
    return false;
  }
  text.clear();
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = path.string() + ": cannot read: " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    if (text.size() + static_cast<std::size_t>(n) > max_file_bytes) {
      error = path.string() + ": larger than " + std::to_string(max_file_bytes >> 20) + " MiB";
      ::close(fd);
      return false;
    }
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return true;
}

// The lines of `text` without their '\n'; a final newline does not start another line.
std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    auto newline = text.find('\n');
    if (newline == std::string_view::npos) {
      lines.push_back(text);
      break;
    }
    lines.push_back(text.substr(0, newline));
    text.remove_prefix(newline + 1);
  }
  return lines;
}

bool is_comment_or_blank(std::string_view line) {
  return line.empty() || line.front() == '#' ||
         line.find_first_not_of(" \t\r") == std::string_view::npos;
}

// The principal a `PRINCIPAL:HASH` line is for (the text before the first ':'), or "" for a
// comment or blank line.
std::string_view principal_of(std::string_view line) {
  if (is_comment_or_blank(line)) return {};
  return line.substr(0, line.find(':'));
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Replaces `file` with `content` atomically: temporary file in the same directory (so rename
// stays within one filesystem), mode 0600, fsync, rename, then fsync of the directory so the
// rename itself survives a crash.
bool replace_file(const std::filesystem::path& file, std::string_view content, std::string& error) {
  std::filesystem::path directory = file.parent_path();
  if (directory.empty()) directory = ".";
  std::string temp = (directory / ("." + file.filename().string() + ".XXXXXX")).string();
  int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) {
    error = "cannot create a temporary file in " + directory.string() + ": " + std::strerror(errno);
    return false;
  }
  auto fail = [&](const char* what) {
    error = std::string(what) + " " + temp + ": " + std::strerror(errno);
    ::close(fd);
    ::unlink(temp.c_str());
    return false;
  };
  if (::fchmod(fd, S_IRUSR | S_IWUSR) < 0) return fail("cannot chmod");
  if (!write_all(fd, content)) return fail("cannot write");
  if (::fsync(fd) < 0) return fail("cannot fsync");
  if (::close(fd) < 0) {
    error = "cannot close " + temp + ": " + std::strerror(errno);
    ::unlink(temp.c_str());
    return false;
  }
  if (::rename(temp.c_str(), file.c_str()) < 0) {
    error = "cannot rename " + temp + " to " + file.string() + ": " + std::strerror(errno);
    ::unlink(temp.c_str());
    return false;
  }
  // Best effort: the new file is already in place, and some filesystems refuse to fsync a
  // directory (EINVAL); reporting failure now would wrongly suggest the old file remains.
  if (int dir_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return true;
}

}  // namespace

std::string hash_password(std::string_view password, PasswordCost cost) {
  if (!sodium_ready()) throw std::runtime_error("libsodium could not be initialised");
  unsigned long long opslimit = crypto_pwhash_OPSLIMIT_INTERACTIVE;
  std::size_t memlimit = crypto_pwhash_MEMLIMIT_INTERACTIVE;
  switch (cost) {
    case PasswordCost::minimal:
      opslimit = crypto_pwhash_OPSLIMIT_MIN;
      memlimit = crypto_pwhash_MEMLIMIT_MIN;
      break;
    case PasswordCost::interactive: break;
    case PasswordCost::moderate:
      opslimit = crypto_pwhash_OPSLIMIT_MODERATE;
      memlimit = crypto_pwhash_MEMLIMIT_MODERATE;
      break;
  }
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.data(), password.size(), opslimit, memlimit) != 0)
    throw std::runtime_error("out of memory hashing a password (" +
                             std::to_string(memlimit >> 20) + " MiB asked)");
  return std::string(out);
}

bool is_valid_principal(std::string_view principal) {
  if (principal.empty() || principal.size() > max_principal_chars) return false;
  for (char c : principal)
    if (!is_alnum(c) && c != '.' && c != '_' && c != '@' && c != '-') return false;
  return true;
}

std::optional<CredentialStore> CredentialStore::load(const std::filesystem::path& file,
                                                     std::string& error) {
  if (!sodium_ready()) {
    error = "libsodium could not be initialised";
    return std::nullopt;
  }
  std::string text;
  if (!read_file(file, text, error)) return std::nullopt;

  CredentialStore store;
  std::map<std::string_view, std::size_t> first_line;  // principal -> line number
  std::map<Argon2Cost, std::size_t> costs;             // cost -> entries using it
  auto malformed = [&](std::size_t number, const std::string& what) {
    error = file.string() + ":" + std::to_string(number) + ": " + what;
    return std::nullopt;
  };
  auto lines = split_lines(text);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::size_t number = i + 1;
    std::string_view line = lines[i];
    if (is_comment_or_blank(line)) continue;
    if (line.ends_with('\r')) line.remove_suffix(1);  // written on Windows
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return malformed(number, "expected PRINCIPAL:HASH");
    std::string_view principal = line.substr(0, colon);
    std::string_view hash = line.substr(colon + 1);
    if (!is_valid_principal(principal))
      return malformed(number, "invalid principal (1 to 128 of A-Z a-z 0-9 . _ @ -)");
    auto cost = argon2id_cost(hash);
    if (!cost) return malformed(number, "the hash is not a $argon2id$v=19$ string");
    if (auto [at, added] = first_line.emplace(principal, number); !added)
      return malformed(number, "principal '" + std::string(principal) + "' already on line " +
                                   std::to_string(at->second));
    ++costs[*cost];
    store.hashes_.emplace(principal, hash);
  }

  if (!costs.empty()) {
    // The most common cost (the highest on a tie): what most real verifies will spend.
    auto common = costs.begin();
    for (auto it = costs.begin(); it != costs.end(); ++it)
      if (it->second >= common->second) common = it;
    store.dummy_hash_ = dummy_hash(common->first);
    if (store.dummy_hash_.empty()) {
      error = file.string() + ": out of memory computing the dummy hash";
      return std::nullopt;
    }
  }
  return store;
}

bool CredentialStore::contains(std::string_view principal) const {
  return hashes_.find(principal) != hashes_.end();
}

bool CredentialStore::verify(std::string_view principal,
                             std::span<const std::byte> password) const {
  auto it = hashes_.find(principal);
  bool known = it != hashes_.end();
  // With nobody listed there is no principal to hide and no dummy hash.
  if (!known && dummy_hash_.empty()) return false;
  const std::string& hash = known ? it->second : dummy_hash_;
  const char* bytes = reinterpret_cast<const char*>(password.data());
  bool match = crypto_pwhash_str_verify(hash.c_str(), bytes, password.size()) == 0;
  return match && known;
}

bool write_credential(const std::filesystem::path& file, std::string_view principal,
                      std::string_view hash, std::string& error, bool* replaced) {
  if (!is_valid_principal(principal)) {
    error = "invalid principal '" + std::string(principal) + "' (1 to 128 of A-Z a-z 0-9 . _ @ -)";
    return false;
  }
  if (!argon2id_cost(hash)) {
    error = "the hash is not a $argon2id$v=19$ string";
    return false;
  }
  std::string text;
  bool missing = false;
  if (!read_file(file, text, error, &missing)) return false;

  std::string entry = std::string(principal) + ":" + std::string(hash);
  std::string content;
  content.reserve(text.size() + entry.size() + 1);
  bool found = false;
  for (std::string_view line : split_lines(text)) {
    std::string_view owner = principal_of(line);
    if (owner == principal) {
      // The first line for the principal takes the new hash; any later duplicate (which
      // load() would refuse) is dropped.
      if (found) continue;
      found = true;
      line = entry;
    }
    content += line;
    content += '\n';
  }
  if (!found) {
    content += entry;
    content += '\n';
  }
  if (!replace_file(file, content, error)) return false;
  if (replaced) *replaced = found;
  return true;
}

}  // namespace brook::runtime
