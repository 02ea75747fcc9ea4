#pragma once
// Sequential reading of many byte ranges of files, a few ranges ahead of the
// consumer: a helper thread reads each range into a reused buffer while the
// caller computes on the previous one. Nothing is memory-mapped, so the
// process's resident set holds only the buffers, and the disk never waits for
// the computation (streaming quantization reads its input this way). Reads
// bypass the page cache (O_DIRECT: the disk writes straight into the buffer,
// no copy) where the file system allows it, plain pread elsewhere.
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace uq {

struct ReadRange {
  std::filesystem::path file;
  std::uint64_t offset = 0;
  std::size_t bytes = 0;
};

class ReadAhead {
 public:
  // Starts reading `ranges` in order; at most `budget_bytes` are read ahead
  // (but always the next range, however large).
  ReadAhead(std::vector<ReadRange> ranges, std::size_t budget_bytes);
  ~ReadAhead();
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  // The next range's bytes, valid until the following call. Throws uq::Error
  // naming the file when its read failed, or when every range was taken.
  std::span<const std::byte> next();

 private:
  // Page-aligned storage (O_DIRECT needs it); only grows.
  struct Buffer {
    std::unique_ptr<std::byte, void (*)(void*)> data{nullptr, std::free};
    std::size_t capacity = 0;
    void reserve(std::size_t bytes);
  };
  struct Slot {
    Buffer buffer;
    std::size_t lead = 0;  // the range starts this far into the buffer
    std::string error;
  };
  struct OpenFile {
    std::filesystem::path path;
    int fd = -1;
    bool direct = false;
  };
  void read_all();
  void read_range(const ReadRange& range, OpenFile& file, Slot& slot);

  std::vector<ReadRange> ranges_;
  std::size_t budget_;
  std::size_t taken_ = 0;  // ranges handed to the consumer

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Slot> ready_;
  std::vector<Buffer> spare_;   // buffers to reuse
  Slot current_;                // the consumer's
  std::size_t held_bytes_ = 0;  // in ready_ and current_
  bool stopping_ = false;
  std::thread reader_;
};

}  // namespace uq
