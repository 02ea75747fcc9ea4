#include "io/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.hpp"

namespace uq {
namespace {

// Small writes are gathered so that streaming a tensor row by row does not
// cost one system call per row.
constexpr std::size_t kBufferCapacity = std::size_t{1} << 20;

std::filesystem::path temporary_name_for(const std::filesystem::path& path) {
  static std::atomic<unsigned> counter{0};
  auto name = path.filename().string();
  name += ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  return path.parent_path() / name;
}

void fsync_directory(const std::filesystem::path& file) {
  auto directory = file.parent_path();
  if (directory.empty()) directory = ".";
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(file.string(), ": cannot open its directory to sync it: ", std::strerror(errno));
  const int result = ::fsync(fd);
  const int error_number = errno;
  ::close(fd);
  // Some file systems cannot sync directories (EINVAL); the rename stands.
  if (result != 0 && error_number != EINVAL) {
    fail(file.string(), ": cannot sync its directory: ", std::strerror(error_number));
  }
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::filesystem::path path)
    : path_(std::move(path)), temporary_(temporary_name_for(path_)) {
  if (path_.filename().empty()) fail(path_.string(), ": not a file name");
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd_ < 0) {
    fail(path_.string(), ": cannot create ", temporary_.filename().string(), ": ",
         std::strerror(errno));
  }
  buffer_.reserve(kBufferCapacity);
}

AtomicFileWriter::~AtomicFileWriter() {
  if (state_ != State::kWriting) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink(temporary_.c_str());
}

void AtomicFileWriter::abandon(std::string_view action, int error_number) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(temporary_.c_str());
  state_ = State::kFailed;
  fail(path_.string(), ": ", action, " failed: ", std::strerror(error_number));
}

void AtomicFileWriter::check_writing(std::string_view action) const {
  if (state_ == State::kCommitted) fail(path_.string(), ": ", action, " after commit");
  if (state_ == State::kFailed) fail(path_.string(), ": ", action, " after an earlier failure");
}

void AtomicFileWriter::write_fully(const std::byte* data, std::size_t size) {
  while (size > 0) {
    const ssize_t written = ::write(fd_, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      abandon("write", errno);
    }
    if (written == 0) abandon("write", EIO);
    data += written;
    size -= static_cast<std::size_t>(written);
  }
}

void AtomicFileWriter::flush_buffer() {
  write_fully(buffer_.data(), buffer_.size());
  buffer_.clear();
}

void AtomicFileWriter::write(std::span<const std::byte> bytes) {
  check_writing("write");
  if (buffer_.size() + bytes.size() > kBufferCapacity) flush_buffer();
  if (bytes.size() >= kBufferCapacity) {
    write_fully(bytes.data(), bytes.size());
  } else {
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
  }
}

void AtomicFileWriter::write(std::string_view text) {
  write(std::as_bytes(std::span<const char>(text.data(), text.size())));
}

void AtomicFileWriter::commit() {
  check_writing("commit");
  flush_buffer();
  if (::fsync(fd_) != 0) abandon("fsync", errno);
  const int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0) abandon("close", errno);
  if (::rename(temporary_.c_str(), path_.c_str()) != 0) abandon("rename", errno);
  state_ = State::kCommitted;
  fsync_directory(path_);
}

void write_file_atomic(const std::filesystem::path& path, std::string_view contents) {
  AtomicFileWriter writer(path);
  writer.write(contents);
  writer.commit();
}

}  // namespace uq
