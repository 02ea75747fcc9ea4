// The process-wide thread pool: every index visited exactly once, errors
// propagate, nested and concurrent callers are safe (run under TSan by
// scripts/sanitize.sh thread).
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/thread_pool.hpp"

namespace uq {
namespace {

std::vector<int> visit_counts(std::int64_t count, std::int64_t min_chunk) {
  std::vector<std::atomic<int>> visits(static_cast<std::size_t>(count));
  parallel_for(0, count, min_chunk, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) visits[static_cast<std::size_t>(i)]++;
  });
  std::vector<int> result;
  for (const auto& visit : visits) result.push_back(visit.load());
  return result;
}

TEST(ThreadPool, VisitsEveryIndexExactlyOnce) {
  set_num_threads(4);
  for (const std::int64_t count : {1, 3, 4, 7, 1000, 4097}) {
    for (const std::int64_t min_chunk : {1, 16, 5000}) {
      EXPECT_EQ(visit_counts(count, min_chunk),
                std::vector<int>(static_cast<std::size_t>(count), 1))
          << count << " items, min chunk " << min_chunk;
    }
  }
  parallel_for(5, 5, 1, [](std::int64_t, std::int64_t) { FAIL() << "empty range ran"; });
}

TEST(ThreadPool, ChunksAreContiguousAndBoundedByThreadCount) {
  set_num_threads(3);
  EXPECT_EQ(num_threads(), 3);
  std::atomic<int> chunks{0};
  std::atomic<std::int64_t> sum{0};
  parallel_for(10, 110, 1, [&](std::int64_t lo, std::int64_t hi) {
    EXPECT_LT(lo, hi);
    chunks++;
    sum += (lo + hi - 1) * (hi - lo) / 2;
  });
  EXPECT_EQ(chunks.load(), 3);
  EXPECT_EQ(sum.load(), (10 + 109) * 100 / 2);
}

TEST(ThreadPool, RethrowsAnErrorFromAnyChunk) {
  set_num_threads(4);
  for (int failing = 0; failing < 4; ++failing) {
    EXPECT_THROW(parallel_for(0, 4, 1,
                              [&](std::int64_t lo, std::int64_t) {
                                if (lo == failing) throw std::runtime_error("chunk failed");
                              }),
                 std::runtime_error);
  }
  EXPECT_EQ(visit_counts(100, 1), std::vector<int>(100, 1));  // still usable afterwards
}

TEST(ThreadPool, NestedCallsRunInline) {
  set_num_threads(4);
  std::atomic<int> inner_items{0};
  parallel_for(0, 8, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) {
      parallel_for(0, 10, 1,
                   [&](std::int64_t a, std::int64_t b) { inner_items += static_cast<int>(b - a); });
    }
  });
  EXPECT_EQ(inner_items.load(), 80);
}

TEST(ThreadPool, ConcurrentCallersEachGetTheirWholeRange) {
  set_num_threads(4);
  std::vector<std::thread> callers;
  std::vector<std::int64_t> sums(6, 0);
  for (std::size_t t = 0; t < sums.size(); ++t) {
    callers.emplace_back([&, t] {
      for (int round = 0; round < 50; ++round) {
        std::atomic<std::int64_t> sum{0};
        parallel_for(0, 1000, 10, [&](std::int64_t lo, std::int64_t hi) {
          for (std::int64_t i = lo; i < hi; ++i) sum += i;
        });
        sums[t] += sum.load();
      }
    });
  }
  for (auto& caller : callers) caller.join();
  for (const auto sum : sums) EXPECT_EQ(sum, 50 * 999 * 1000 / 2);
}

// Workers that start after the first task was posted must still run it (a
// worker reading the task generation late used to wait forever).
TEST(ThreadPool, WorkJustAfterResizingCompletes) {
  for (int round = 0; round < 200; ++round) {
    set_num_threads(2 + round % 3);
    EXPECT_EQ(visit_counts(64, 1), std::vector<int>(64, 1));
  }
}

// A decode step of a small model is dozens of microsecond-sized matmuls;
// handing each to a second thread made decoding 5x slower at 2 threads.
TEST(ThreadPool, SmallWorkStaysOnTheCallingThread) {
  EXPECT_EQ(items_per_task(kMinMultiplyAddsPerTask), 1);
  EXPECT_EQ(items_per_task(256), kMinMultiplyAddsPerTask / 256);
  EXPECT_EQ(items_per_task(0), kMinMultiplyAddsPerTask);
  set_num_threads(2);
  const auto caller = std::this_thread::get_id();
  std::atomic<int> chunks{0}, elsewhere{0};
  // A 768x256 matrix-vector product: 196,608 multiply-adds in all.
  parallel_for(0, 768, items_per_task(256), [&](std::int64_t, std::int64_t) {
    ++chunks;
    if (std::this_thread::get_id() != caller) ++elsewhere;
  });
  EXPECT_EQ(chunks.load(), 1);
  EXPECT_EQ(elsewhere.load(), 0);
  // A 4096x4096 one is split across both threads.
  chunks = 0;
  parallel_for(0, 4096, items_per_task(4096), [&](std::int64_t, std::int64_t) { ++chunks; });
  EXPECT_EQ(chunks.load(), 2);
}

}  // namespace
}  // namespace uq
