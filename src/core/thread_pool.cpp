#include "core/thread_pool.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace uq {
namespace {

class ThreadPool {
 public:
  explicit ThreadPool(int count) { resize(count); }
  ~ThreadPool() { stop_workers(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int count) {
    stop_workers();
    stopping_ = false;
    for (int i = 1; i < std::max(count, 1); ++i) {
      // The generation is read here, not in the new thread: a run() issued
      // before the thread gets going must still count as new work for it.
      workers_.emplace_back([this, i, seen = generation_] { worker_loop(i, seen); });
    }
  }

  // Runs task(index) for index in [0, size()); the caller runs index 0.
  void run(const std::function<void(int)>& task) {
    std::unique_lock lock(mutex_);
    task_ = &task;
    pending_ = static_cast<int>(workers_.size());
    ++generation_;
    lock.unlock();
    wake_.notify_all();
    std::exception_ptr caller_error;
    try {
      task(0);
    } catch (...) {
      caller_error = std::current_exception();
    }
    lock.lock();
    done_.wait(lock, [this] { return pending_ == 0; });
    task_ = nullptr;
    std::exception_ptr error = caller_error ? caller_error : worker_error_;
    worker_error_ = nullptr;
    lock.unlock();
    if (error) std::rethrow_exception(error);
  }

 private:
  void worker_loop(int index, std::uint64_t seen) {
    for (;;) {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      const auto* task = task_;
      lock.unlock();
      std::exception_ptr error;
      try {
        (*task)(index);
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      if (error && !worker_error_) worker_error_ = error;
      if (--pending_ == 0) done_.notify_one();
    }
  }

  void stop_workers() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& worker : workers_) worker.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* task_ = nullptr;
  int pending_ = 0;
  std::uint64_t generation_ = 0;
  bool stopping_ = false;
  std::exception_ptr worker_error_;
};

int default_thread_count() {
  if (const char* env = std::getenv("UQ_NUM_THREADS")) {
    const int parsed = std::atoi(env);
    if (parsed > 0) return parsed;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

std::mutex& pool_mutex() {
  static std::mutex mutex;
  return mutex;
}

ThreadPool& pool() {
  static ThreadPool instance(default_thread_count());
  return instance;
}

thread_local bool inside_parallel_region = false;

}  // namespace

int num_threads() {
  return pool().size();
}

void set_num_threads(int count) {
  std::lock_guard lock(pool_mutex());
  pool().resize(count);
}

std::int64_t items_per_task(std::int64_t multiply_adds_per_item) {
  const std::int64_t per_item = std::max<std::int64_t>(1, multiply_adds_per_item);
  return std::max<std::int64_t>(1, (kMinMultiplyAddsPerTask + per_item - 1) / per_item);
}

void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t min_chunk,
                  const std::function<void(std::int64_t, std::int64_t)>& body) {
  const std::int64_t total = end - begin;
  if (total <= 0) return;
  const std::int64_t max_chunks =
      std::max<std::int64_t>(1, total / std::max<std::int64_t>(1, min_chunk));
  // Nested calls, and callers racing for the pool, run inline.
  std::unique_lock lock(pool_mutex(), std::defer_lock);
  if (inside_parallel_region || max_chunks == 1 || !lock.try_lock()) {
    body(begin, end);
    return;
  }
  const std::int64_t chunks = std::min<std::int64_t>(pool().size(), max_chunks);
  pool().run([&](int index) {
    if (index >= chunks) return;
    inside_parallel_region = true;
    const std::int64_t lo = begin + total * index / chunks;
    const std::int64_t hi = begin + total * (index + 1) / chunks;
    try {
      body(lo, hi);
    } catch (...) {
      inside_parallel_region = false;
      throw;
    }
    inside_parallel_region = false;
  });
}

}  // namespace uq
