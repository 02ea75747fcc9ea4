#pragma once
// A process-wide pool of worker threads for data-parallel loops.
#include <cstdint>
#include <functional>

namespace uq {

// Number of threads parallel_for uses (default: hardware concurrency, or the
// UQ_NUM_THREADS environment variable). Setting it resizes the pool.
int num_threads();
void set_num_threads(int count);

// Splits [begin, end) into at most num_threads() contiguous chunks of at least
// `min_chunk` items and calls body(chunk_begin, chunk_end) for each, in
// parallel; returns when all are done. Exceptions from a body are rethrown.
void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t min_chunk,
                  const std::function<void(std::int64_t, std::int64_t)>& body);

// Handing a task to another thread costs tens of microseconds on a VM (a
// wake-up, a cache miss on the task); a task should carry at least this many
// multiply-adds (~25 µs of AVX2 work) or the split makes the loop slower.
inline constexpr std::int64_t kMinMultiplyAddsPerTask = std::int64_t{1} << 18;

// The min_chunk for a loop whose items each cost `multiply_adds_per_item`.
std::int64_t items_per_task(std::int64_t multiply_adds_per_item);

}  // namespace uq
