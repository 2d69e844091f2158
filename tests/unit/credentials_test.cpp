// Unit: password hashes, the credentials file (load, malformed lines) and write_credential's
// atomic add-or-replace. Hashes use PasswordCost::minimal to keep the tests fast.
#include "brook/runtime/credentials.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace brook::runtime {
namespace {

std::span<const std::byte> bytes(std::string_view text) { return std::as_bytes(std::span(text)); }

class CredentialFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/brook-credentials-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::filesystem::path file(const char* name = "credentials") const { return dir_ / name; }

  void write(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }
  static std::string read(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  std::filesystem::path dir_;
};

TEST(CredentialHash, a_hash_is_an_argon2id_string_with_a_fresh_salt) {
  auto first = hash_password("secret", PasswordCost::minimal);
  auto second = hash_password("secret", PasswordCost::minimal);
  EXPECT_TRUE(first.starts_with("$argon2id$v=19$")) << first;
  EXPECT_NE(first, second);
}

TEST(CredentialPrincipal, names_of_1_to_128_allowed_characters_are_valid) {
  EXPECT_TRUE(is_valid_principal("alice"));
  EXPECT_TRUE(is_valid_principal("feed-1.prod_eu@example.com"));
  EXPECT_TRUE(is_valid_principal(std::string(128, 'a')));
  EXPECT_FALSE(is_valid_principal(""));
  EXPECT_FALSE(is_valid_principal(std::string(129, 'a')));
  EXPECT_FALSE(is_valid_principal("al ice"));
  EXPECT_FALSE(is_valid_principal("alice:x"));
  EXPECT_FALSE(is_valid_principal("#alice"));
  EXPECT_FALSE(is_valid_principal("al\xc3\xaf" "ce"));
}

TEST_F(CredentialFile, store_verifies_the_right_password_and_refuses_a_wrong_one) {
  write(file(), "alice:" + hash_password("right horse", PasswordCost::minimal) + "\n");
  std::string error;
  auto store = CredentialStore::load(file(), error);
  ASSERT_TRUE(store) << error;
  EXPECT_TRUE(store->contains("alice"));
  EXPECT_TRUE(store->verify("alice", bytes("right horse")));
  EXPECT_FALSE(store->verify("alice", bytes("wrong horse")));
  EXPECT_FALSE(store->verify("alice", bytes("")));
  EXPECT_FALSE(store->verify("alice", bytes(std::string("right horse\0", 12))));
}

TEST_F(CredentialFile, store_refuses_an_unknown_principal_whatever_the_password) {
  write(file(), "alice:" + hash_password("pw", PasswordCost::minimal) + "\n");
  std::string error;
  auto store = CredentialStore::load(file(), error);
  ASSERT_TRUE(store) << error;
  EXPECT_FALSE(store->contains("bob"));
  EXPECT_FALSE(store->verify("bob", bytes("pw")));
  EXPECT_FALSE(store->verify("", bytes("pw")));
}

TEST_F(CredentialFile, an_empty_store_refuses_everyone) {
  write(file(), "# nobody yet\n");
  std::string error;
  auto store = CredentialStore::load(file(), error);
  ASSERT_TRUE(store) << error;
  EXPECT_EQ(store->size(), 0u);
  EXPECT_FALSE(store->verify("alice", bytes("pw")));
}

TEST_F(CredentialFile, load_skips_comments_and_blank_lines) {
  write(file(), "# Brook credentials\n\nalice:" + hash_password("a", PasswordCost::minimal) +
                    "\n   \n#bob:disabled\nbob@example.com:" +
                    hash_password("b", PasswordCost::minimal) + "\n\n");
  std::string error;
  auto store = CredentialStore::load(file(), error);
  ASSERT_TRUE(store) << error;
  EXPECT_EQ(store->size(), 2u);
  EXPECT_TRUE(store->verify("alice", bytes("a")));
  EXPECT_TRUE(store->verify("bob@example.com", bytes("b")));
  EXPECT_FALSE(store->contains("#bob"));
}

TEST_F(CredentialFile, load_names_the_file_and_line_of_a_malformed_line) {
  auto hash = hash_password("a", PasswordCost::minimal);
  struct Case {
    std::string third_line;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"no colon here", "expected PRINCIPAL:HASH"},
      {"bad principal!:" + hash, "invalid principal"},
      {":" + hash, "invalid principal"},
      {"carol:plaintext", "not a $argon2id$"},
      {"carol:$argon2i$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA", "not a $argon2id$"},
      {"carol:" + hash + "x y", "not a $argon2id$"},
      {"alice:" + hash, "already on line 2"},
  };
  for (const auto& c : cases) {
    write(file(), "# header\nalice:" + hash + "\n" + c.third_line + "\n");
    std::string error;
    auto store = CredentialStore::load(file(), error);
    EXPECT_FALSE(store) << c.third_line;
    EXPECT_NE(error.find(file().string() + ":3: "), std::string::npos) << error;
    EXPECT_NE(error.find(c.says), std::string::npos) << error;
  }
}

TEST_F(CredentialFile, load_of_a_missing_file_names_it) {
  std::string error;
  EXPECT_FALSE(CredentialStore::load(file("absent"), error));
  EXPECT_NE(error.find(file("absent").string()), std::string::npos) << error;
}

TEST_F(CredentialFile, verify_is_safe_from_several_threads_at_once) {
  write(file(), "alice:" + hash_password("a", PasswordCost::minimal) + "\nbob:" +
                    hash_password("b", PasswordCost::minimal) + "\n");
  std::string error;
  auto store = CredentialStore::load(file(), error);
  ASSERT_TRUE(store) << error;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (!store->verify("alice", bytes("a")) || !store->verify("bob", bytes("b")) ||
            store->verify("alice", bytes("b")) || store->verify("carol", bytes("a")))
          ++wrong;
      }
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST_F(CredentialFile, write_creates_a_missing_file_with_mode_0600) {
  std::string error;
  bool replaced = true;
  ASSERT_TRUE(write_credential(file(), "alice", hash_password("a", PasswordCost::minimal), error,
                               &replaced))
      << error;
  EXPECT_FALSE(replaced);
  struct stat st {};
  ASSERT_EQ(::stat(file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  auto store = CredentialStore::load(file(), error);
  ASSERT_TRUE(store) << error;
  EXPECT_TRUE(store->verify("alice", bytes("a")));
}

TEST_F(CredentialFile, write_adds_then_replaces_and_keeps_every_other_line) {
  auto bob = "bob:" + hash_password("b", PasswordCost::minimal);
  write(file(), "# Brook credentials\n\n" + bob + "\n# trailing comment\n");
  ::chmod(file().c_str(), 0644);

  std::string error;
  bool replaced = true;
  auto first = hash_password("a1", PasswordCost::minimal);
  ASSERT_TRUE(write_credential(file(), "alice", first, error, &replaced)) << error;
  EXPECT_FALSE(replaced);
  EXPECT_EQ(read(file()),
            "# Brook credentials\n\n" + bob + "\n# trailing comment\nalice:" + first + "\n");

  auto second = hash_password("a2", PasswordCost::minimal);
  ASSERT_TRUE(write_credential(file(), "alice", second, error, &replaced)) << error;
  EXPECT_TRUE(replaced);
  EXPECT_EQ(read(file()),
            "# Brook credentials\n\n" + bob + "\n# trailing comment\nalice:" + second + "\n");

  struct stat st {};
  ASSERT_EQ(::stat(file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  auto store = CredentialStore::load(file(), error);
  ASSERT_TRUE(store) << error;
  EXPECT_FALSE(store->verify("alice", bytes("a1")));
  EXPECT_TRUE(store->verify("alice", bytes("a2")));
  EXPECT_TRUE(store->verify("bob", bytes("b")));
  // Only the credentials file is left: no temporary file behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 1);
}

TEST_F(CredentialFile, write_refuses_an_invalid_principal_or_hash_and_leaves_the_file_alone) {
  const std::string original = "bob:" + hash_password("b", PasswordCost::minimal) + "\n";
  write(file(), original);
  std::string error;
  auto hash = hash_password("a", PasswordCost::minimal);
  EXPECT_FALSE(write_credential(file(), "not valid", hash, error));
  EXPECT_NE(error.find("invalid principal"), std::string::npos) << error;
  EXPECT_FALSE(write_credential(file(), "", hash, error));
  EXPECT_FALSE(write_credential(file(), "alice", "plaintext", error));
  EXPECT_FALSE(write_credential(file(), "alice", hash + "\nmallory:" + hash, error));
  EXPECT_EQ(read(file()), original);
}

TEST_F(CredentialFile, write_into_a_missing_directory_fails_with_a_message) {
  std::string error;
  EXPECT_FALSE(write_credential(dir_ / "absent" / "credentials", "alice",
                                hash_password("a", PasswordCost::minimal), error));
  EXPECT_FALSE(error.empty());
}

}  // namespace
}  // namespace brook::runtime
