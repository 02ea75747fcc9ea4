#include "io/staged_directory.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <system_error>

#include "core/error.hpp"

namespace uq {
namespace fs = std::filesystem;
namespace {

// Staging directories "<name>.tmp-<pid>" left by a process that died (killed,
// crashed) before it could remove its own.
void remove_abandoned_staging(const fs::path& parent, const std::string& name) {
  const std::string prefix = name + ".tmp-";
  std::error_code error;
  for (fs::directory_iterator item(parent, error), end; !error && item != end;
       item.increment(error)) {
    const std::string entry = item->path().filename().string();
    if (entry.size() <= prefix.size() || entry.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string pid_text = entry.substr(prefix.size());
    if (pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::stol(pid_text));
    if (pid == getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    std::error_code ignored;
    fs::remove_all(item->path(), ignored);
  }
}

}  // namespace

StagedDirectory::StagedDirectory(fs::path final_path) : final_(std::move(final_path)) {
  if (final_.filename().empty()) final_ = final_.parent_path();
  if (fs::exists(final_) && !fs::is_directory(final_)) {
    fail(final_.string(), ": exists and is not a directory");
  }
  const fs::path parent = final_.has_parent_path() ? final_.parent_path() : fs::path(".");
  std::error_code error;
  fs::create_directories(parent, error);
  if (error) fail(final_.string(), ": cannot create parent directory: ", error.message());
  remove_abandoned_staging(parent, final_.filename().string());
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
