#include "io/read_ahead.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.hpp"

namespace uq {

ReadAhead::ReadAhead(std::vector<ReadRange> ranges, std::size_t budget_bytes)
    : ranges_(std::move(ranges)), budget_(budget_bytes), reader_([this] { read_all(); }) {}

ReadAhead::~ReadAhead() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  reader_.join();
}

namespace {

// O_DIRECT's alignment of offsets, lengths and buffers (the page size covers
// every logical block size in use).
constexpr std::size_t kAlign = 4096;

// Reads [offset, offset + bytes) into `out`: 0, or the errno of a failed
// read. A short read at the end of the file stops it (`got` says how far).
int read_fully(int fd, std::byte* out, std::size_t bytes, std::uint64_t offset, std::size_t& got) {
  for (got = 0; got < bytes;) {
    const ssize_t n = ::pread(fd, out + got, bytes - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return 0;
    got += static_cast<std::size_t>(n);
  }
  return 0;
}

std::string read_error(const ReadRange& range, int error) {
  return range.file.string() + ": cannot read " + std::to_string(range.bytes) +
         " bytes at offset " + std::to_string(range.offset) + ": " +
         (error != 0 ? std::strerror(error) : "the file is shorter");
}

}  // namespace

void ReadAhead::Buffer::reserve(std::size_t bytes) {
  if (bytes <= capacity) return;
  const std::size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  data.reset(static_cast<std::byte*>(std::aligned_alloc(kAlign, rounded)));
  if (!data) throw std::bad_alloc();
  capacity = rounded;
}

void ReadAhead::read_range(const ReadRange& range, OpenFile& file, Slot& slot) {
  if (range.file != file.path) {
    if (file.fd >= 0) ::close(file.fd);
    file.path = range.file;
    file.fd = ::open(range.file.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
    file.direct = file.fd >= 0;
    if (!file.direct) file.fd = ::open(range.file.c_str(), O_RDONLY | O_CLOEXEC);
    if (file.fd < 0) {
      slot.error = range.file.string() + ": cannot open: " + std::strerror(errno);
      return;
    }
    // Buffered reads: a larger kernel read-ahead window (the ranges come in file order).
    if (!file.direct) ::posix_fadvise(file.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  if (file.fd < 0) {
    slot.error = range.file.string() + ": cannot open";
    return;
  }
  std::size_t got = 0;
  if (file.direct) {
    const std::uint64_t start = range.offset / kAlign * kAlign;
    slot.lead = static_cast<std::size_t>(range.offset - start);
    const std::size_t length = (slot.lead + range.bytes + kAlign - 1) / kAlign * kAlign;
    slot.buffer.reserve(length);
    const int error = read_fully(file.fd, slot.buffer.data.get(), length, start, got);
    if (error == 0 && got >= slot.lead + range.bytes) return;
    if (error != EINVAL) {
      slot.error = read_error(range, error);
      return;
    }
    // The file system refuses direct reads after all: read through the page cache.
    ::close(file.fd);
    file.fd = ::open(range.file.c_str(), O_RDONLY | O_CLOEXEC);
    file.direct = false;
    if (file.fd < 0) {
      slot.error = range.file.string() + ": cannot open: " + std::strerror(errno);
      return;
    }
  }
  slot.lead = 0;
  slot.buffer.reserve(range.bytes);
  const int error = read_fully(file.fd, slot.buffer.data.get(), range.bytes, range.offset, got);
  if (error != 0 || got < range.bytes) slot.error = read_error(range, error);
}

void ReadAhead::read_all() {
  OpenFile file;
  for (const auto& range : ranges_) {
    Slot slot;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] {
        return stopping_ || held_bytes_ == 0 || held_bytes_ + range.bytes <= budget_;
      });
      if (stopping_) break;
      held_bytes_ += range.bytes;
      if (!spare_.empty()) {
        slot.buffer = std::move(spare_.back());
        spare_.pop_back();
      }
    }
    try {
      read_range(range, file, slot);
    } catch (const std::exception& error) {  // allocation
      slot.error = range.file.string() + ": " + error.what();
    }
    {
      const std::lock_guard lock(mutex_);
      ready_.push_back(std::move(slot));
    }
    changed_.notify_all();
  }
  if (file.fd >= 0) ::close(file.fd);
}

std::span<const std::byte> ReadAhead::next() {
  std::unique_lock lock(mutex_);
  if (taken_ == ranges_.size()) fail("read-ahead: all ", ranges_.size(), " ranges were read");
  if (taken_ > 0) {
    held_bytes_ -= ranges_[taken_ - 1].bytes;
    spare_.push_back(std::move(current_.buffer));
    changed_.notify_all();
  }
  changed_.wait(lock, [&] { return !ready_.empty(); });
  current_ = std::move(ready_.front());
  ready_.pop_front();
  const ReadRange& range = ranges_[taken_++];
  if (!current_.error.empty()) fail(current_.error);
  return {current_.buffer.data.get() + current_.lead, range.bytes};
}

}  // namespace uq
