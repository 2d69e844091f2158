// Unit tests of the client's configuration: server lists (ClientOptions::url with several
// URLs), options read from a TOML file's [client] table, and the environment winning over it.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "../../runtime/client/src/server_list.hpp"
#include "brook/client/client.hpp"

namespace brook {
namespace {

TEST(ServerList, urls_separated_by_commas_are_kept_in_order_with_their_kind) {
  std::string error;
  auto servers = client_detail::parse_server_list(
      "tcp://127.0.0.1:9090, shm:///run/brook.sock ,tcp://localhost:9091", error);
  ASSERT_EQ(servers.size(), 3u) << error;
  EXPECT_EQ(servers[0].url, "tcp://127.0.0.1:9090");
  ASSERT_TRUE(servers[0].tcp.has_value());
  EXPECT_EQ(servers[0].tcp->port, 9090);
  EXPECT_EQ(servers[1].url, "shm:///run/brook.sock");
  EXPECT_FALSE(servers[1].tcp.has_value());
  EXPECT_EQ(servers[1].shm_path, "/run/brook.sock");
  EXPECT_EQ(servers[2].tcp->port, 9091);
}

TEST(ServerList, one_bad_url_refuses_the_list_and_names_it) {
  for (const char* list : {"tcp://127.0.0.1:9090,http://x:1", "", "tcp://127.0.0.1:9090,", "shm://",
                           "tcp://nohost"}) {
    std::string error;
    EXPECT_TRUE(client_detail::parse_server_list(list, error).empty()) << list;
    EXPECT_NE(error.find("cannot parse URL"), std::string::npos) << list << ": " << error;
  }
}

class ClientOptionsFile : public ::testing::Test {
 protected:
  ClientOptionsFile() {
    char pattern[] = "/tmp/brook-client-options-XXXXXX";
    dir_ = ::mkdtemp(pattern);
    path_ = dir_ + "/client.toml";
  }
  ~ClientOptionsFile() override {
    std::remove(path_.c_str());
    ::rmdir(dir_.c_str());
    for (const char* name : {"BROOK_URL", "BROOK_RETRIES", "BROOK_RECONNECT_DELAY_MS",
                             "BROOK_PING_INTERVAL_MS", "BROOK_QUEUE_ENTRIES", "BROOK_QUEUE_BYTES",
                             "BROOK_SEND_FROM_CALLER", "BROOK_OWN_THREAD"})
      ::unsetenv(name);
  }
  void write(const std::string& text) { std::ofstream(path_) << text; }

  std::string dir_, path_;
};

TEST_F(ClientOptionsFile, every_key_of_the_client_table_is_read_and_absent_ones_are_kept) {
  write(R"([client]
url = "tcp://127.0.0.1:1,tcp://127.0.0.1:2"
retries = 7
reconnect_delay_ms = 250
reconnect_timeout_ms = 9000
connect_timeout_ms = 1500
ping_interval_ms = 3000
queue_entries = -1
queue_bytes = 1048576
close_timeout_ms = 400
principal = "feed"
session_number = 3
client_name = "odds-feed"
send_from_caller = false
own_thread = true
)");
  ClientOptions o;
  o.credentials = "kept";
  ASSERT_EQ(load_client_options(path_, o), "");
  EXPECT_EQ(o.url, "tcp://127.0.0.1:1,tcp://127.0.0.1:2");
  EXPECT_EQ(o.retries, 7);
  EXPECT_EQ(o.reconnect_delay.count(), 250);
  EXPECT_EQ(o.reconnect_timeout.count(), 9000);
  EXPECT_EQ(o.connect_timeout.count(), 1500);
  EXPECT_EQ(o.ping_interval.count(), 3000);
  EXPECT_EQ(o.queue_entries, -1);
  EXPECT_EQ(o.queue_bytes, 1048576);
  EXPECT_EQ(o.close_timeout.count(), 400);
  EXPECT_EQ(o.principal, "feed");
  EXPECT_EQ(o.session_number, 3);
  EXPECT_EQ(o.client_name, "odds-feed");
  EXPECT_FALSE(o.send_from_caller);
  EXPECT_TRUE(o.own_thread);
  EXPECT_EQ(o.credentials, "kept");
}

TEST_F(ClientOptionsFile, wrong_types_bad_values_and_unreadable_files_are_refused_with_the_reason) {
  ClientOptions o;
  write("[client]\nretries = \"forever\"\n");
  EXPECT_NE(load_client_options(path_, o).find("client.retries must be an integer"), std::string::npos);
  write("[client]\nretries = -2\n");
  EXPECT_NE(load_client_options(path_, o).find("retries must be -1"), std::string::npos);
  write("[client]\nqueue_bytes = -5\n");
  EXPECT_NE(load_client_options(path_, o).find("queue_bytes"), std::string::npos);
  write("[client]\nsend_from_caller = 1\n");
  EXPECT_NE(load_client_options(path_, o).find("client.send_from_caller must be true or false"), std::string::npos);
  write("[client\n");
  EXPECT_NE(load_client_options(path_, o).find("cannot read"), std::string::npos);
  EXPECT_NE(load_client_options(dir_ + "/absent.toml", o).find("cannot read"), std::string::npos);
}

TEST_F(ClientOptionsFile, the_environment_wins_over_the_file) {
  write("[client]\nurl = \"tcp://127.0.0.1:1\"\nretries = 2\nqueue_entries = 10\n");
  ClientOptions o;
  ASSERT_EQ(load_client_options(path_, o), "");
  ::setenv("BROOK_URL", "tcp://127.0.0.1:5,tcp://127.0.0.1:6", 1);
  ::setenv("BROOK_RETRIES", "-1", 1);
  ::setenv("BROOK_RECONNECT_DELAY_MS", "20", 1);
  ::setenv("BROOK_PING_INTERVAL_MS", "1000", 1);
  ::setenv("BROOK_QUEUE_ENTRIES", "0", 1);
  ::setenv("BROOK_QUEUE_BYTES", "4096", 1);
  ::setenv("BROOK_SEND_FROM_CALLER", "0", 1);
  ::setenv("BROOK_OWN_THREAD", "1", 1);
  ASSERT_EQ(apply_client_environment(o), "");
  EXPECT_TRUE(o.own_thread);
  EXPECT_EQ(o.url, "tcp://127.0.0.1:5,tcp://127.0.0.1:6");
  EXPECT_EQ(o.retries, -1);
  EXPECT_EQ(o.reconnect_delay.count(), 20);
  EXPECT_EQ(o.ping_interval.count(), 1000);
  EXPECT_EQ(o.queue_entries, 0);
  EXPECT_EQ(o.queue_bytes, 4096);
  EXPECT_FALSE(o.send_from_caller);
  ::setenv("BROOK_SEND_FROM_CALLER", "yes", 1);
  EXPECT_NE(apply_client_environment(o).find("BROOK_SEND_FROM_CALLER must be"), std::string::npos);
  ::setenv("BROOK_SEND_FROM_CALLER", "true", 1);
  ASSERT_EQ(apply_client_environment(o), "");
  EXPECT_TRUE(o.send_from_caller);
  ::setenv("BROOK_OWN_THREAD", "no", 1);
  EXPECT_NE(apply_client_environment(o).find("BROOK_OWN_THREAD must be 1, 0, true or false"), std::string::npos);
  ::unsetenv("BROOK_OWN_THREAD");
  ::setenv("BROOK_RETRIES", "lots", 1);
  EXPECT_NE(apply_client_environment(o).find("BROOK_RETRIES must be an integer"), std::string::npos);
}

}  // namespace
}  // namespace brook
