#include "core/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>

namespace uq {
namespace {

std::atomic<bool> quiet{false};
std::atomic<bool> bar_showing{false};

constexpr int kBarWidth = 28;
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);

std::string format_duration(double seconds) {
  const auto total = static_cast<long long>(seconds + 0.5);
  char text[32];
  if (total >= 3600) {
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", total / 3600, total / 60 % 60,
                  total % 60);
  } else {
    std::snprintf(text, sizeof text, "%02lld:%02lld", total / 60, total % 60);
  }
  return text;
}

}  // namespace

void set_progress_quiet(bool value) {
  quiet = value;
}

bool progress_visible() {
  return !quiet && isatty(STDERR_FILENO) == 1;
}

Progress::Progress(std::string label, std::int64_t total)
    : label_(std::move(label)),
      total_(std::max<std::int64_t>(total, 1)),
      visible_(false),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {
  bool expected = false;
  visible_ = progress_visible() && bar_showing.compare_exchange_strong(expected, true);
  draw(true);
}

Progress::~Progress() {
  finish();
}

void Progress::advance(std::int64_t steps, const std::string& detail) {
  done_ = std::min(total_, done_ + steps);
  if (!detail.empty()) detail_ = detail;
  draw(done_ == total_);
}

void Progress::finish() {
  if (!visible_) return;
  std::fprintf(stderr, "\r\033[2K");
  std::fflush(stderr);
  visible_ = false;
  bar_showing = false;
}

void Progress::draw(bool force) {
  if (!visible_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < kRedrawInterval) return;
  last_draw_ = now;
  const double fraction = static_cast<double>(done_) / static_cast<double>(total_);
  const auto filled = static_cast<int>(fraction * kBarWidth);
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(kBarWidth, '.');
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const std::string eta =
      done_ > 0 ? format_duration(elapsed / fraction - elapsed) : std::string("--:--");
  std::fprintf(stderr, "\r\033[2K%s [%s] %3d%% %lld/%lld elapsed %s eta %s %s", label_.c_str(),
               bar.c_str(), static_cast<int>(fraction * 100.0), static_cast<long long>(done_),
               static_cast<long long>(total_), format_duration(elapsed).c_str(), eta.c_str(),
               detail_.substr(0, 40).c_str());
  std::fflush(stderr);
}

}  // namespace uq
