// Bad input to `uq logits|eval|generate`: one "error:" line naming the
// culprit, a non-zero exit status, and no output file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "support/test_support.hpp"

namespace uq {
namespace {

using test::bundled_model;
using test::run_uq;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A copy of the bundled model whose config.json `edit` changes.
class BrokenModel {
 public:
  template <class Edit>
  explicit BrokenModel(Edit edit) {
    for (const char* name : {"model.safetensors", "tokenizer.json"}) {
      std::filesystem::create_symlink(bundled_model() / name, dir_ / name);
    }
    std::ifstream in(bundled_model() / "config.json");
    auto config = nlohmann::json::parse(in);
    edit(config);
    std::ofstream(dir_ / "config.json") << config.dump(2);
  }
  std::string path() const { return dir_.path().string(); }
  std::filesystem::path operator/(const std::string& name) const { return dir_ / name; }

 private:
  test::TempDir dir_;
};

void expect_one_error_line(const test::CommandResult& result, const std::string& culprit) {
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.err, StartsWith("error: "));
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  EXPECT_THAT(result.err, HasSubstr(culprit));
}

TEST(ModelCliErrors, ConfigWithoutRequiredField) {
  BrokenModel model([](nlohmann::json& config) { config.erase("num_hidden_layers"); });
  const auto output = model / "out.safetensors";
  const auto result = run_uq({"logits", model.path(), "--ids", "1,2", "-o", output.string()});
  expect_one_error_line(result, "missing required field 'num_hidden_layers'");
  EXPECT_THAT(result.err, HasSubstr("config.json"));
  EXPECT_FALSE(std::filesystem::exists(output));
}

TEST(ModelCliErrors, UnknownModelType) {
  BrokenModel model([](nlohmann::json& config) { config["model_type"] = "falcon"; });
  const auto result = run_uq({"generate", model.path(), "-p", "Hi"});
  expect_one_error_line(result, "unsupported model_type 'falcon'");
  EXPECT_THAT(result.err, HasSubstr("llama, mistral, qwen2"));
}

TEST(ModelCliErrors, UnsupportedRopeType) {
  BrokenModel model([](nlohmann::json& config) {
    config["rope_parameters"] = {
        {"rope_type", "dynamic"}, {"rope_theta", 10000.0}, {"factor", 2.0}};
  });
  expect_one_error_line(run_uq({"generate", model.path(), "-p", "Hi"}),
                        "unsupported rope type 'dynamic'");
}

TEST(ModelCliErrors, MissingTokenizer) {
  BrokenModel model([](nlohmann::json&) {});
  std::filesystem::remove(model / "tokenizer.json");
  expect_one_error_line(
      run_uq({"logits", model.path(), "--ids", "1", "-o", (model / "out.safetensors").string()}),
      "tokenizer.json");
}

TEST(ModelCliErrors, MissingModelDirectory) {
  expect_one_error_line(run_uq({"generate", "/nonexistent/model", "-p", "Hi"}),
                        "/nonexistent/model");
}

TEST(ModelCliErrors, BadOptions) {
  const std::string model = bundled_model().string();
  test::TempDir dir;
  const auto output = dir / "out.safetensors";
  expect_one_error_line(run_uq({"logits", model, "--ids", "1,x,3", "-o", output.string()}),
                        "--ids");
  expect_one_error_line(run_uq({"logits", model, "--ids", "1,99999", "-o", output.string()}),
                        "token id 99999");
  EXPECT_FALSE(std::filesystem::exists(output));
  expect_one_error_line(run_uq({"generate", model, "-p", "Hi", "--device", "cuda"}),
                        "--device cuda");
  expect_one_error_line(run_uq({"generate", model, "-p", "Hi", "--top-p", "0"}), "--top-p");
  expect_one_error_line(run_uq({"generate", model, "-p", "Hi", "-n", "2000"}),
                        "max_position_embeddings");
}

TEST(ModelCliErrors, EvalDataProblems) {
  const std::string model = bundled_model().string();
  test::TempDir dir;
  std::ofstream(dir / "empty.txt");
  std::ofstream(dir / "short.txt") << "In the beginning God created the heaven and the earth.";
  expect_one_error_line(run_uq({"eval", model, "--data", (dir / "empty.txt").string()}), "empty");
  expect_one_error_line(run_uq({"eval", model, "--data", (dir / "short.txt").string()}),
                        "fewer than one window");
  expect_one_error_line(run_uq({"eval", model, "--data", (dir / "absent.txt").string()}),
                        "absent.txt");
  expect_one_error_line(
      run_uq({"eval", model, "--data", (dir / "short.txt").string(), "--ctx", "4096"}),
      "max_position_embeddings");
}

}  // namespace
}  // namespace uq
