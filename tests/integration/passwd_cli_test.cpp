// Integration: `brook passwd` writes a credentials file that CredentialStore reads back, and
// refuses what it must (empty password, invalid principal) with exit 2 and no file change.
#include <gtest/gtest.h>

#include <string>

#include "broker_process.hpp"
#include "brook/runtime/credentials.hpp"

namespace brook::test {
namespace {

std::span<const std::byte> bytes(std::string_view text) { return std::as_bytes(std::span(text)); }

class PasswdCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("passwd");
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override { remove_temp_dir(dir_); }

  std::string file() const { return dir_ + "/credentials"; }

  std::string dir_;
};

TEST_F(PasswdCli, passwd_adds_then_updates_a_principal_the_store_verifies) {
  auto added = run_cli({"passwd", "--cost", "minimal", file(), "alice"}, "first secret\n");
  ASSERT_EQ(added.exit_code(), 0) << added.describe();
  EXPECT_EQ(added.out, "alice added to " + file() + "\n");

  std::string error;
  auto store = runtime::CredentialStore::load(file(), error);
  ASSERT_TRUE(store) << error;
  EXPECT_TRUE(store->verify("alice", bytes("first secret")));
  EXPECT_FALSE(store->verify("alice", bytes("first secret\n")));

  // Only the first line is the password.
  auto updated =
      run_cli({"passwd", "--cost", "minimal", file(), "alice"}, "second secret\nignored\n");
  ASSERT_EQ(updated.exit_code(), 0) << updated.describe();
  EXPECT_EQ(updated.out, "alice updated in " + file() + "\n");

  store = runtime::CredentialStore::load(file(), error);
  ASSERT_TRUE(store) << error;
  EXPECT_EQ(store->size(), 1u);
  EXPECT_FALSE(store->verify("alice", bytes("first secret")));
  EXPECT_TRUE(store->verify("alice", bytes("second secret")));
}

TEST_F(PasswdCli, passwd_refuses_an_empty_password_or_a_bad_principal_with_exit_2) {
  auto empty = run_cli({"passwd", "--cost", "minimal", file(), "alice"}, "\n");
  EXPECT_EQ(empty.exit_code(), 2) << empty.describe();
  EXPECT_NE(empty.err.find("empty password"), std::string::npos) << empty.describe();

  auto no_input = run_cli({"passwd", "--cost", "minimal", file(), "alice"});
  EXPECT_EQ(no_input.exit_code(), 2) << no_input.describe();

  auto bad_principal = run_cli({"passwd", "--cost", "minimal", file(), "not valid"}, "pw\n");
  EXPECT_EQ(bad_principal.exit_code(), 2) << bad_principal.describe();
  EXPECT_NE(bad_principal.err.find("invalid principal"), std::string::npos)
      << bad_principal.describe();

  auto bad_cost = run_cli({"passwd", "--cost", "extreme", file(), "alice"}, "pw\n");
  EXPECT_EQ(bad_cost.exit_code(), 2) << bad_cost.describe();

  std::string error;
  EXPECT_FALSE(runtime::CredentialStore::load(file(), error)) << "no file should exist";
}

}  // namespace
}  // namespace brook::test
