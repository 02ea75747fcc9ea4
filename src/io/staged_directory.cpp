#include "io/staged_directory.hpp"

#include <unistd.h>

#include <system_error>

#include "core/error.hpp"

namespace uq {
namespace fs = std::filesystem;

StagedDirectory::StagedDirectory(fs::path final_path) : final_(std::move(final_path)) {
  if (final_.filename().empty()) final_ = final_.parent_path();
  if (fs::exists(final_) && !fs::is_directory(final_)) {
    fail(final_.string(), ": exists and is not a directory");
  }
  const fs::path parent = final_.has_parent_path() ? final_.parent_path() : fs::path(".");
  std::error_code error;
  fs::create_directories(parent, error);
  if (error) fail(final_.string(), ": cannot create parent directory: ", error.message());
  staging_ = parent / (final_.filename().string() + ".tmp-" + std::to_string(getpid()));
  fs::remove_all(staging_, error);
  fs::create_directory(staging_, error);
  if (error) fail(final_.string(), ": cannot create output directory: ", error.message());
}

StagedDirectory::~StagedDirectory() {
  if (committed_) return;
  std::error_code ignored;
  fs::remove_all(staging_, ignored);
}

void StagedDirectory::commit() {
  std::error_code error;
  fs::path previous;
  if (fs::exists(final_)) {
    previous = final_;
    previous += ".old-" + std::to_string(getpid());
    fs::remove_all(previous, error);
    fs::rename(final_, previous, error);
    if (error) fail(final_.string(), ": cannot move the previous output aside: ", error.message());
  }
  fs::rename(staging_, final_, error);
  if (error) {
    if (!previous.empty()) fs::rename(previous, final_);
    fail(final_.string(), ": cannot move the finished output into place: ", error.message());
  }
  committed_ = true;
  if (!previous.empty()) fs::remove_all(previous, error);
}

}  // namespace uq
