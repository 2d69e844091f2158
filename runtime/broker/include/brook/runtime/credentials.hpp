#pragma once
// Password credentials: one argon2id hash (libsodium's crypto_pwhash_str) per principal, kept
// in a text file of `PRINCIPAL:HASH` lines. Blank lines and lines starting with `#` are
// comments. A principal is 1..128 characters of [A-Za-z0-9._@-].
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace brook::runtime {

// libsodium's argon2id presets: minimal (OPSLIMIT/MEMLIMIT_MIN, for tests only), interactive
// (64 MiB, the default) and moderate (256 MiB). Each hash records its own cost, so entries of
// different costs can share a file.
enum class PasswordCost { minimal, interactive, moderate };

// A `$argon2id$...` string with a fresh random salt. Throws std::runtime_error when the memory
// the cost asks for cannot be allocated (or libsodium cannot initialise).
std::string hash_password(std::string_view password, PasswordCost cost = PasswordCost::interactive);

bool is_valid_principal(std::string_view principal);

// The principals and hashes of one credentials file, read once by load() and immutable after:
// any number of threads may call the const members at once. A verify() runs one argon2id
// computation (about 0.1 s and 64 MiB at the interactive cost), so keep it off the shards'
// loops and bound how many run at once.
class CredentialStore {
 public:
  // Reads `file`. On failure returns nullopt and sets `error` to "FILE: what" or, for a
  // malformed line, "FILE:LINE: what". A principal listed twice is malformed.
  static std::optional<CredentialStore> load(const std::filesystem::path& file, std::string& error);

  bool contains(std::string_view principal) const;
  // True only if `principal` is listed and `password` matches its hash. For an unknown
  // principal it verifies against a dummy hash of the file's most common cost, so the time
  // taken does not tell which principals exist.
  bool verify(std::string_view principal, std::span<const std::byte> password) const;
  std::size_t size() const { return hashes_.size(); }

 private:
  CredentialStore() = default;

  std::map<std::string, std::string, std::less<>> hashes_;  // principal -> $argon2id$ string
  std::string dummy_hash_;  // of a random password; empty when the file lists nobody
};

// Adds `principal` with `hash` to `file` or replaces its line, keeping every other line as it
// is; creates the file if missing. Writes a 0600 temporary file beside it, fsyncs it and
// renames it over `file`, so readers see the old file or the new one, never a mix. Concurrent
// writers are not serialised: the last rename wins. Sets `*replaced` (when given) to whether
// the principal was already listed. Returns false with `error` set on an invalid principal or
// hash, or an I/O failure (the original is then untouched).
bool write_credential(const std::filesystem::path& file, std::string_view principal,
                      std::string_view hash, std::string& error, bool* replaced = nullptr);

}  // namespace brook::runtime
