#pragma once
// Writing a file so that readers see either the old file or the complete new
// one, never a prefix: data goes to a temporary name in the same directory, is
// fsync'ed, renamed onto the final name, and the directory is fsync'ed.
#include <cstddef>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

namespace uq {

class AtomicFileWriter {
 public:
  // Creates "<path>.tmp-<pid>-<n>" next to `path`; throws uq::Error naming `path`.
  explicit AtomicFileWriter(std::filesystem::path path);
  // Removes the temporary file unless commit() succeeded.
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  // Appends bytes (buffered). On any I/O error the temporary file is removed
  // and uq::Error names `path` and the system's reason; the writer is then dead.
  void write(std::span<const std::byte> bytes);
  void write(std::string_view text);
  // Flushes, fsyncs, renames onto `path`, fsyncs the directory.
  void commit();

  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& temporary_path() const { return temporary_; }
  // True after an I/O error removed the temporary file.
  bool failed() const { return state_ == State::kFailed; }

 private:
  void check_writing(std::string_view action) const;
  void flush_buffer();
  void write_fully(const std::byte* data, std::size_t size);
  [[noreturn]] void abandon(std::string_view action, int error_number);

  enum class State { kWriting, kFailed, kCommitted };

  std::filesystem::path path_;
  std::filesystem::path temporary_;
  int fd_ = -1;
  State state_ = State::kWriting;
  std::vector<std::byte> buffer_;
};

// Replaces `path` with `contents` atomically (config.json, index files, ...).
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

}  // namespace uq
