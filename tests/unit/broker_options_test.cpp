// Unit tests of brookd's configuration file: keys read into BrokerOptions, absent keys kept,
// and values that would make the broker misbehave refused with the key's name.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "brook/runtime/broker_options.hpp"

namespace brook::runtime {
namespace {

class BrokerOptionsFile : public ::testing::Test {
 protected:
  BrokerOptionsFile() {
    char pattern[] = "/tmp/brook-broker-options-XXXXXX";
    dir_ = ::mkdtemp(pattern);
    path_ = dir_ + "/brookd.toml";
  }
  ~BrokerOptionsFile() override {
    std::remove(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  std::string load(const std::string& text, BrokerOptions& options) {
    std::ofstream(path_) << text;
    return load_broker_options(path_, options);
  }

  std::string dir_, path_;
};

TEST_F(BrokerOptionsFile, polling_and_flow_keys_are_read_and_absent_ones_are_kept) {
  BrokerOptions o;
  const auto default_stall = o.flow_max_stall_ms;
  ASSERT_EQ(load(R"([broker]
idle_spin_us = 0
[flow]
high_water_bytes = 4194304
low_water_bytes = 65536
)", o), "");
  EXPECT_EQ(o.idle_spin_us, 0);
  EXPECT_EQ(o.flow_high_water_bytes, 4194304u);
  EXPECT_EQ(o.flow_low_water_bytes, 65536u);
  EXPECT_EQ(o.flow_max_stall_ms, default_stall);
  EXPECT_FALSE(o.spin);
}

TEST_F(BrokerOptionsFile, a_shard_polls_after_work_when_a_core_is_left_and_at_most_a_tenth_of_a_second) {
  BrokerOptions o;
  EXPECT_EQ(o.idle_spin_us, -1);
  EXPECT_EQ(o.validate(), "");
  const unsigned cores = std::thread::hardware_concurrency();
  EXPECT_EQ(resolve_idle_spin_us(o, cores), 0u) << "a shard per core leaves none to the clients";
  if (cores > 1) EXPECT_EQ(resolve_idle_spin_us(o, cores - 1), 50u);
  o.idle_spin_us = 20;
  EXPECT_EQ(resolve_idle_spin_us(o, cores), 20u) << "a value set is kept";
  const std::string error = load("[broker]\nidle_spin_us = 100001\n", o);
  EXPECT_NE(error.find("broker.idle_spin_us must be at most 100000"), std::string::npos) << error;
}

TEST_F(BrokerOptionsFile, send_coalescing_keys_are_read_and_a_window_past_10_ms_is_refused) {
  BrokerOptions o;
  EXPECT_EQ(o.send_coalesce_us, 500u);
  EXPECT_EQ(o.send_coalesce_rate, 200'000u);
  ASSERT_EQ(load("[broker]\nsend_coalesce_us = 0\nsend_coalesce_rate = 50000\n", o), "");
  EXPECT_EQ(o.send_coalesce_us, 0u);
  EXPECT_EQ(o.send_coalesce_rate, 50'000u);
  const std::string error = load("[broker]\nsend_coalesce_us = 10001\n", o);
  EXPECT_NE(error.find("broker.send_coalesce_us must be at most 10000"), std::string::npos) << error;
}

TEST_F(BrokerOptionsFile, flow_marks_that_cannot_work_are_refused_by_name) {
  BrokerOptions o;
  std::string error = load("[flow]\nhigh_water_bytes = 1000\nlow_water_bytes = 1000\n", o);
  EXPECT_NE(error.find("flow.low_water_bytes must be below flow.high_water_bytes"), std::string::npos)
      << error;
  BrokerOptions off;
  EXPECT_EQ(load("[flow]\nhigh_water_bytes = 0\nlow_water_bytes = 1000\n", off), "")
      << "high_water_bytes = 0 turns flow control off, whatever the other marks say";
}

}  // namespace
}  // namespace brook::runtime
