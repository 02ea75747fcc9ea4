// Progress bars: drawn with an ETA on a terminal, silent when stderr is not a
// terminal, when quieted, and when nested inside another bar.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "core/progress.hpp"

namespace uq {
namespace {

// Points stderr at a fresh pseudo-terminal for the scope; output() reads what was drawn.
class StderrOnTerminal {
 public:
  StderrOnTerminal() {
    master_ = posix_openpt(O_RDWR | O_NOCTTY);
    if (master_ < 0 || grantpt(master_) != 0 || unlockpt(master_) != 0) return;
    const int terminal = open(ptsname(master_), O_RDWR | O_NOCTTY);
    if (terminal < 0) return;
    saved_ = dup(STDERR_FILENO);
    dup2(terminal, STDERR_FILENO);
    close(terminal);
  }
  ~StderrOnTerminal() {
    if (saved_ >= 0) {
      dup2(saved_, STDERR_FILENO);
      close(saved_);
    }
    if (master_ >= 0) close(master_);
  }
  bool ok() const { return saved_ >= 0; }
  std::string output() {
    std::string text;
    char buffer[4096];
    pollfd ready{master_, POLLIN, 0};
    while (poll(&ready, 1, 50) > 0) {
      const auto got = read(master_, buffer, sizeof buffer);
      if (got <= 0) break;
      text.append(buffer, static_cast<std::size_t>(got));
    }
    return text;
  }

 private:
  int master_ = -1;
  int saved_ = -1;
};

TEST(Progress, DrawsBarWithEtaOnATerminal) {
  StderrOnTerminal terminal;
  if (!terminal.ok()) GTEST_SKIP() << "no pseudo-terminal available";
  set_progress_quiet(false);
  ASSERT_TRUE(progress_visible());
  {
    Progress progress("quantize", 4);
    progress.advance(1, "model.layers.0.mlp.up_proj");
    progress.advance(3);  // the last step always draws
  }
  const std::string drawn = terminal.output();
  EXPECT_NE(drawn.find("quantize ["), std::string::npos) << drawn;
  EXPECT_NE(drawn.find("eta"), std::string::npos) << drawn;
  EXPECT_NE(drawn.find("4/4"), std::string::npos) << drawn;
  EXPECT_NE(drawn.find("100%"), std::string::npos) << drawn;
}

TEST(Progress, QuietAndNestedBarsDrawNothing) {
  StderrOnTerminal terminal;
  if (!terminal.ok()) GTEST_SKIP() << "no pseudo-terminal available";
  set_progress_quiet(true);
  EXPECT_FALSE(progress_visible());
  {
    Progress progress("quiet", 2);
    progress.advance(2);
  }
  EXPECT_EQ(terminal.output(), "");
  set_progress_quiet(false);
  {
    Progress outer("outer", 1);
    terminal.output();  // the outer bar's first frame
    Progress inner("inner", 2);
    inner.advance(2);
    EXPECT_EQ(terminal.output().find("inner"), std::string::npos);
  }
}

TEST(Progress, SilentWhenStderrIsNotATerminal) {
  if (isatty(STDERR_FILENO) == 1) GTEST_SKIP() << "stderr is a terminal in this run";
  set_progress_quiet(false);
  EXPECT_FALSE(progress_visible());
}

}  // namespace
}  // namespace uq
