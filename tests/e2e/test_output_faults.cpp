// A save that fails part-way (here: the disk fills up) through `uq quantize`:
// one error line, the previous output untouched, nothing new that looks
// complete. The fault is a file-size limit (RLIMIT_FSIZE with SIGXFSZ
// ignored), so write() fails with EFBIG exactly as on a full disk.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "support/test_support.hpp"

namespace uq {
namespace {

namespace fs = std::filesystem;

// Every file under `dir` with its contents.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) {
      files[fs::relative(entry.path(), dir).string()] = test::read_text(entry.path());
    }
  }
  return files;
}

// `uq quantize` with files limited to `limit_kib` KiB.
test::CommandResult quantize_with_file_limit(const fs::path& out, int limit_kib) {
  const std::string command =
      "trap '' XFSZ; ulimit -f " + std::to_string(limit_kib) +
      "; exec \"$0\" quantize \"$1\" -o \"$2\" --bits 4 --backend mlx --quiet";
  return test::run_command(
      {"bash", "-c", command, UQ_CLI, test::bundled_model().string(), out.string()});
}

TEST(OutputFaults, DiskFullDuringQuantizeKeepsThePreviousOutput) {
  test::TempDir dir;
  const fs::path out = dir / "q";
  const auto first = test::run_uq({"quantize", test::bundled_model().string(), "-o", out.string(),
                                   "--bits", "8", "--backend", "mlx", "--quiet"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const auto before = snapshot(out);
  ASSERT_TRUE(before.contains("model.safetensors"));

  // The 4-bit weights are ~3 MiB: a 1 MiB limit fails inside model.safetensors.
  const auto failed = quantize_with_file_limit(out, 1024);
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_EQ(failed.err.rfind("error: ", 0), 0u) << failed.err;
  EXPECT_EQ(std::count(failed.err.begin(), failed.err.end(), '\n'), 1) << failed.err;
  EXPECT_NE(failed.err.find("model.safetensors"), std::string::npos) << failed.err;
  EXPECT_EQ(snapshot(out), before);
  // Nothing else was left beside it (no staging directory, no temporary file).
  std::vector<std::string> entries;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    entries.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(entries, std::vector<std::string>{"q"});

  // The previous output still loads and evaluates.
  const auto logits = test::run_uq(
      {"logits", out.string(), "--ids", "1,2,3", "-o", (dir / "logits.safetensors").string()});
  EXPECT_EQ(logits.exit_code, 0) << logits.err;
}

TEST(OutputFaults, DiskFullOnAFreshPathCreatesNothing) {
  test::TempDir dir;
  const auto failed = quantize_with_file_limit(dir / "fresh", 1024);
  EXPECT_EQ(failed.exit_code, 1) << failed.err;
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

}  // namespace
}  // namespace uq
