#pragma once
// A progress bar with an ETA for long operations (quantize, eval, bench). It
// draws on stderr only when stderr is a terminal and progress is not quieted,
// so piped output and `--json` stdout stay clean. While one bar is showing,
// bars started inside it (e.g. quantize_model within `uq bench`) stay silent.
#include <chrono>
#include <cstdint>
#include <string>

namespace uq {

// `--quiet`: no bar is drawn anywhere in the process.
void set_progress_quiet(bool quiet);
// True when a new bar would be drawn (stderr is a terminal, not quiet).
bool progress_visible();

class Progress {
 public:
  Progress(std::string label, std::int64_t total);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Marks `steps` more units done; `detail` (e.g. the layer name) follows the bar.
  void advance(std::int64_t steps = 1, const std::string& detail = "");
  // Clears the bar's line; also done by the destructor.
  void finish();

 private:
  void draw(bool force);

  std::string label_;
  std::string detail_;
  std::int64_t total_;
  std::int64_t done_ = 0;
  bool visible_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace uq
