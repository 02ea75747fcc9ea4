// docs/MIGRATION.md stays true: its C++ blocks are the code of
// examples/migration.cpp (built and run here), and each `uq` line of its bash
// blocks runs successfully on the bundled model.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "support/test_support.hpp"

namespace uq {
namespace {

namespace fs = std::filesystem;

// The bodies of the ```<language> fenced blocks of `markdown`.
std::vector<std::string> fenced_blocks(const std::string& markdown, const std::string& language) {
  std::vector<std::string> blocks;
  std::istringstream lines(markdown);
  std::string line, block;
  bool inside = false;
  while (std::getline(lines, line)) {
    if (!inside && line == "```" + language) {
      inside = true;
      block.clear();
    } else if (inside && line == "```") {
      inside = false;
      blocks.push_back(block);
    } else if (inside) {
      block += line + "\n";
    }
  }
  return blocks;
}

std::string migration_doc() {
  return test::read_text(test::source_path("docs/MIGRATION.md"));
}

TEST(MigrationDoc, CppBlocksAreTheExampleProgramsCode) {
  const std::string example = test::read_text(test::source_path("examples/migration.cpp"));
  const auto blocks = fenced_blocks(migration_doc(), "cpp");
  ASSERT_EQ(blocks.size(), 5u);
  for (const auto& block : blocks) {
    EXPECT_NE(example.find(block), std::string::npos) << "not in examples/migration.cpp:\n"
                                                      << block;
  }
}

TEST(MigrationDoc, ExampleProgramRuns) {
  test::TempDir out;
  const auto result = test::run_command({std::string(UQ_BINARY_DIR) + "/example_migration",
                                         test::bundled_model().string(), out.path().string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("cosine similarity 0.9"), std::string::npos) << result.out;
  for (const char* dir : {"int8", "nf4", "quanto", "mlx"}) {
    EXPECT_TRUE(fs::exists(out / dir / "config.json")) << dir;
  }
}

TEST(MigrationDoc, EveryCommandRuns) {
  test::TempDir work;
  fs::create_directory_symlink(test::source_path("models"), work / "models");
  fs::create_directory_symlink(test::source_path("data"), work / "data");
  std::vector<std::string> commands;
  for (const auto& block : fenced_blocks(migration_doc(), "bash")) {
    std::istringstream lines(block);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind("uq ", 0) == 0) commands.push_back(line.substr(3));
    }
  }
  ASSERT_GE(commands.size(), 10u);
  for (const auto& command : commands) {
    const auto result =
        test::run_command({"bash", "-c", "cd \"$1\" && \"$0\" " + command + " --quiet", UQ_CLI,
                           work.path().string()});
    EXPECT_EQ(result.exit_code, 0) << "uq " << command << "\n" << result.err;
  }
}

}  // namespace
}  // namespace uq
