// Unit tests of a topic's history ring: bounded by count, bytes and age, the newest entry
// always kept, oldest first, and every frame reference given back when an entry goes.
#include <gtest/gtest.h>

#include <vector>

#include "../../runtime/broker/src/topic_history.hpp"
#include "brook/runtime/shared_buffer.hpp"

namespace brook::runtime {
namespace {

class TopicHistoryTest : public ::testing::Test {
 protected:
  // A frame of `bytes` with one reference for the history, and one kept here to watch it.
  SharedBuffer* frame(std::uint32_t bytes) {
    SharedBuffer* b = pool_.allocate(bytes);
    b->add_ref();
    watched_.push_back(b);
    return b;
  }
  ~TopicHistoryTest() override {
    for (SharedBuffer* b : watched_) b->release();
  }
  std::vector<std::uint64_t> seqs(const TopicHistory& h) {
    std::vector<std::uint64_t> out;
    for (std::size_t i = 0; i < h.size(); ++i) out.push_back(h[i].seq);
    return out;
  }
  BufferPool pool_;
  std::vector<SharedBuffer*> watched_;
};

TEST_F(TopicHistoryTest, keeps_the_last_depth_updates_oldest_first) {
  TopicHistory h;
  const HistoryLimits limits{.depth = 5, .max_bytes = 1 << 20, .max_age_ns = 0};
  for (std::uint64_t s = 1; s <= 12; ++s) h.push({s, s, frame(10)}, limits);
  EXPECT_EQ(seqs(h), (std::vector<std::uint64_t>{8, 9, 10, 11, 12}));
  EXPECT_EQ(h.bytes(), 50u);
  EXPECT_EQ(h.first_after(0), 0u);
  EXPECT_EQ(h.first_after(9), 2u);
  EXPECT_EQ(h.first_after(12), 5u);
  h.clear();
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.bytes(), 0u);
}

TEST_F(TopicHistoryTest, bytes_bound_it_but_the_newest_always_stays) {
  TopicHistory h;
  const HistoryLimits limits{.depth = 100, .max_bytes = 100, .max_age_ns = 0};
  for (std::uint64_t s = 1; s <= 10; ++s) h.push({s, s, frame(30)}, limits);
  EXPECT_EQ(seqs(h), (std::vector<std::uint64_t>{8, 9, 10}));
  h.push({11, 11, frame(500)}, limits);
  EXPECT_EQ(seqs(h), (std::vector<std::uint64_t>{11}));
}

TEST_F(TopicHistoryTest, entries_older_than_the_age_limit_expire) {
  TopicHistory h;
  const HistoryLimits limits{.depth = 100, .max_bytes = 1 << 20, .max_age_ns = 1000};
  for (std::uint64_t s = 1; s <= 10; ++s) h.push({s, s * 500, frame(8)}, limits);
  h.expire(4200, limits);  // older than 3200 goes: 1..6 (time 500..3000)
  EXPECT_EQ(seqs(h), (std::vector<std::uint64_t>{7, 8, 9, 10}));
}

TEST_F(TopicHistoryTest, entries_that_go_give_their_frame_reference_back) {
  {
    TopicHistory h;
    const HistoryLimits limits{.depth = 2, .max_bytes = 1 << 20, .max_age_ns = 0};
    for (std::uint64_t s = 1; s <= 4; ++s) h.push({s, s, frame(8)}, limits);
    // The two that went hold only the test's reference: releasing it frees them.
    for (int i = 0; i < 2; ++i) {
      watched_[i]->release();
      watched_[i] = nullptr;
    }
  }  // the history releases the last two
  std::erase(watched_, nullptr);
  for (SharedBuffer* b : watched_) b->release();
  watched_.clear();
  pool_.collect_remote();
  EXPECT_EQ(pool_.in_use_bytes(), 0u);
}

TEST_F(TopicHistoryTest, a_depth_of_zero_keeps_nothing) {
  TopicHistory h;
  h.push({1, 1, frame(8)}, HistoryLimits{.depth = 0, .max_bytes = 100, .max_age_ns = 0});
  EXPECT_TRUE(h.empty());
}

}  // namespace
}  // namespace brook::runtime
