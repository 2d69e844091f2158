// Unit tests of a topic's journal index: sparse marks, the lsn to read a sequence from, and
// trimming by the history limits (count, bytes, age) that always leaves the last mark and
// never a mark an update still kept needs.
#include <gtest/gtest.h>

#include "../../runtime/broker/src/topic_journal_index.hpp"

namespace brook::runtime {
namespace {

// Update n (sequence n) at lsn 10n, time n ms, 100 bytes.
TopicJournalIndex index_of(std::uint64_t updates) {
  TopicJournalIndex index;
  for (std::uint64_t n = 1; n <= updates; ++n) index.add(n, 10 * n, n * 1'000'000, 100);
  return index;
}

TEST(TopicJournalIndex, marks_are_sparse_and_lead_to_a_sequence_from_at_or_before_it) {
  TopicJournalIndex index = index_of(10'000);
  EXPECT_EQ(index.marks(), (10'000 + TopicJournalIndex::updates_per_mark - 1) / TopicJournalIndex::updates_per_mark);
  EXPECT_EQ(index.oldest_seq(), 1u);
  EXPECT_EQ(index.oldest_lsn(), 10u);
  for (std::uint64_t seq : {1ull, 2ull, 32ull, 33ull, 34ull, 5000ull, 10'000ull}) {
    const std::uint64_t lsn = index.lsn_for(seq);
    EXPECT_LE(lsn, 10 * seq) << seq;
    EXPECT_GT(lsn + 10 * TopicJournalIndex::updates_per_mark, 10 * seq) << seq;
  }
  EXPECT_EQ(index.lsn_for(0), 10u) << "older than every mark: the oldest";
  // A snapshot writing the current value again adds nothing.
  index.add(10'000, 999'999, 0, 100);
  index.add(9'000, 999'999, 0, 100);
  EXPECT_EQ(index.lsn_for(10'000), index_of(10'000).lsn_for(10'000));
}

TEST(TopicJournalIndex, trimming_by_count_bytes_and_age_keeps_every_mark_a_kept_update_needs) {
  const std::uint64_t updates = 10'000;
  {
    TopicJournalIndex index = index_of(updates);
    index.trim(updates, {.depth = 1000, .max_bytes = 1ull << 40, .max_age_ns = 0}, 0);
    EXPECT_LE(index.oldest_seq(), updates - 1000 + 1) << "an update still kept lost its mark";
    EXPECT_GT(index.oldest_seq() + TopicJournalIndex::updates_per_mark, updates - 1000 + 1);
  }
  {
    TopicJournalIndex index = index_of(updates);
    index.trim(updates, {.depth = 1u << 24, .max_bytes = 100 * 500, .max_age_ns = 0}, 0);  // the last 500
    EXPECT_LE(index.oldest_seq(), updates - 500 + 1);
    EXPECT_GT(index.oldest_seq() + TopicJournalIndex::updates_per_mark, updates - 500 + 1);
  }
  {
    TopicJournalIndex index = index_of(updates);
    // At 10,000 ms, none older than 2,000 ms: updates from 8,000 on.
    index.trim(updates, {.depth = 1u << 24, .max_bytes = 1ull << 40, .max_age_ns = 2'000'000'000}, 10'000'000'000);
    EXPECT_LE(index.oldest_seq(), 8000u);
    EXPECT_GT(index.oldest_seq() + TopicJournalIndex::updates_per_mark, 8000u);
  }
  {
    TopicJournalIndex index = index_of(updates);
    index.trim(updates + 1'000'000, {.depth = 10, .max_bytes = 1ull << 40, .max_age_ns = 0}, 0);
    EXPECT_EQ(index.marks(), 1u) << "the last mark stays";
    index.trim(updates, {.depth = 0, .max_bytes = 0, .max_age_ns = 0}, 0);
    EXPECT_TRUE(index.empty()) << "no history: nothing to find";
  }
}

}  // namespace
}  // namespace brook::runtime
