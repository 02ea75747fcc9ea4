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

void ReadAhead::read_range(const ReadRange& range, int& fd, std::filesystem::path& open_file,
                           Slot& slot) {
  if (range.file != open_file) {
    if (fd >= 0) ::close(fd);
    open_file = range.file;
    fd = ::open(range.file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      slot.error = range.file.string() + ": cannot open: " + std::strerror(errno);
      return;
    }
    // A larger kernel read-ahead window: the ranges come in file order.
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  if (fd < 0) {
    slot.error = range.file.string() + ": cannot open";
    return;
  }
  // Buffers only grow: resizing down and up again would zero-fill each time.
  if (slot.bytes.size() < range.bytes) slot.bytes.resize(range.bytes);
  for (std::size_t done = 0; done < range.bytes;) {
    const ssize_t got = ::pread(fd, slot.bytes.data() + done, range.bytes - done,
                                static_cast<off_t>(range.offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      slot.error = range.file.string() + ": cannot read " + std::to_string(range.bytes) +
                   " bytes at offset " + std::to_string(range.offset) + ": " +
                   (got < 0 ? std::strerror(errno) : "the file is shorter");
      return;
    }
    done += static_cast<std::size_t>(got);
  }
}

void ReadAhead::read_all() {
  int fd = -1;
  std::filesystem::path open_file;
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
        slot.bytes = std::move(spare_.back());
        spare_.pop_back();
      }
    }
    try {
      read_range(range, fd, open_file, slot);
    } catch (const std::exception& error) {  // allocation
      slot.error = range.file.string() + ": " + error.what();
    }
    {
      const std::lock_guard lock(mutex_);
      ready_.push_back(std::move(slot));
    }
    changed_.notify_all();
  }
  if (fd >= 0) ::close(fd);
}

std::span<const std::byte> ReadAhead::next() {
  std::unique_lock lock(mutex_);
  if (taken_ == ranges_.size()) fail("read-ahead: all ", ranges_.size(), " ranges were read");
  if (taken_ > 0) {
    held_bytes_ -= ranges_[taken_ - 1].bytes;
    spare_.push_back(std::move(current_.bytes));
    changed_.notify_all();
  }
  changed_.wait(lock, [&] { return !ready_.empty(); });
  current_ = std::move(ready_.front());
  ready_.pop_front();
  const ReadRange& range = ranges_[taken_++];
  if (!current_.error.empty()) fail(current_.error);
  return {current_.bytes.data(), range.bytes};
}

}  // namespace uq
