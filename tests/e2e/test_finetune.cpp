// QLoRA through the `uq` command: finetune on a 4-bit mlx model lowers the
// validation perplexity, an interrupted and resumed run ends bitwise where an
// uninterrupted one does, peft and mlx-lm read our adapters (and we read
// peft's) with the same logits, --fuse exports, and bad input is refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "io/safetensors.hpp"
#include "model/device_placement.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

using test::read_json;
using test::run_uq;
using test::TempDir;

// Enough ids that the logits run the exact (float activation) GEMM paths.
const std::string kIds = "1183,259,2430,424,3130,259,892,271,259,727,14,88";

// Tiny excerpts of the fine-tuning texts keep the runs to a second or two.
std::string excerpt(const std::string& file, std::size_t bytes, const std::filesystem::path& to) {
  const std::string text = test::read_text(test::source_path("data/" + file));
  std::string cut = text.substr(0, bytes);
  while (!cut.empty() && (static_cast<unsigned char>(cut.back()) & 0xC0) == 0x80) cut.pop_back();
  if (!cut.empty() && static_cast<unsigned char>(cut.back()) >= 0xC0) cut.pop_back();
  std::ofstream(to, std::ios::binary) << cut;
  return to.string();
}

std::vector<float> read_logits(const std::filesystem::path& file) {
  return SafetensorsFile::open(file)->tensor("logits").to_f32();
}

double max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
  return worst;
}

// One quantized model and one short fine-tune shared by the tests.
class Finetune : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const auto quantized = run_uq({"quantize", test::bundled_model().string(), "-o", q4(), "--bits",
                                   "4", "--group-size", "64", "--backend", "mlx"});
    ASSERT_EQ(quantized.exit_code, 0) << quantized.err;
    train_ = excerpt("finetune_train.txt", 24000, *dir_ / "train.txt");
    val_ = excerpt("finetune_val.txt", 12000, *dir_ / "val.txt");
    full_ = run_uq(finetune_args("full", {"--val", val_}));
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string q4() { return (*dir_ / "q4").string(); }
  static std::string path(const std::string& name) { return (*dir_ / name).string(); }
  static std::vector<std::string> finetune_args(const std::string& out,
                                                std::vector<std::string> extra,
                                                const std::string& steps = "8") {
    std::vector<std::string> args = {"finetune",
                                     q4(),
                                     "--data",
                                     train_,
                                     "-o",
                                     path(out),
                                     "--steps",
                                     steps,
                                     "--batch",
                                     "2",
                                     "--ctx",
                                     "64",
                                     "--lr",
                                     "3e-3",
                                     "--lora-rank",
                                     "8",
                                     "--lora-alpha",
                                     "16",
                                     "--threads",
                                     "1",
                                     "--json",
                                     "--checkpoint-every",
                                     "4"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  static TempDir* dir_;
  static std::string train_, val_;
  static test::CommandResult full_;
};

TempDir* Finetune::dir_ = nullptr;
std::string Finetune::train_, Finetune::val_;
test::CommandResult Finetune::full_;

TEST_F(Finetune, LowersValidationPerplexityAndWritesAPeftAdapter) {
  ASSERT_EQ(full_.exit_code, 0) << full_.err;
  const auto report = nlohmann::json::parse(full_.out);
  EXPECT_EQ(report["steps"], 8);
  EXPECT_TRUE(report["finished"].get<bool>());
  const double before = report["val_ppl_before"], after = report["val_ppl"];
  EXPECT_GT(before, 100.0);  // ≈135 on the whole file; this excerpt is similar
  EXPECT_LT(after, 0.9 * before) << "before " << before << " after " << after;
  EXPECT_NE(full_.err.find("step 8/8 loss"), std::string::npos) << full_.err;
  EXPECT_NE(full_.err.find("tokens/s ETA"), std::string::npos) << full_.err;
  const auto config = read_json(*dir_ / "full" / "adapter_config.json");
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_EQ(config["r"], 8);
  // `uq eval --adapter` measures the same perplexity as the trainer's validation.
  const auto eval =
      run_uq({"eval", q4(), "--data", val_, "--ctx", "64", "--adapter", path("full"), "--json"});
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  EXPECT_NEAR(nlohmann::json::parse(eval.out)["ppl"].get<double>(), after, 1e-9 * after);
  const auto generated =
      run_uq({"generate", q4(), "--adapter", path("full"), "-p", "And the LORD said", "-n", "8"});
  ASSERT_EQ(generated.exit_code, 0) << generated.err;
  EXPECT_NE(generated.out.find("And the LORD said"), std::string::npos) << generated.out;
}

TEST_F(Finetune, ResumedRunEndsBitwiseWhereTheUninterruptedOneDoes) {
  ASSERT_EQ(full_.exit_code, 0) << full_.err;
  const auto first = run_uq(finetune_args("resumed", {"--stop-after", "5"}));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_FALSE(nlohmann::json::parse(first.out)["finished"].get<bool>());
  EXPECT_FALSE(std::filesystem::exists(*dir_ / "resumed" / "adapter_config.json"));
  const auto second = run_uq(finetune_args("resumed", {"--resume"}));
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.err.find("resumed from"), std::string::npos);
  EXPECT_EQ(test::read_text(*dir_ / "resumed" / "adapter_model.safetensors"),
            test::read_text(*dir_ / "full" / "adapter_model.safetensors"));
  // A resume with other settings is refused, naming the setting.
  const auto mismatched = run_uq(finetune_args("resumed", {"--resume", "--batch", "3"}));
  EXPECT_NE(mismatched.exit_code, 0);
  EXPECT_NE(mismatched.err.find("batch"), std::string::npos) << mismatched.err;
}

// peft loads our adapter onto the dequantized base and gives our logits; we
// load an adapter peft made and give its logits.
TEST_F(Finetune, PeftAndWeReadEachOthersAdaptersWithTheSameLogits) {
  if (!test::python_available()) GTEST_SKIP() << "oracle venv not installed";
  ASSERT_EQ(full_.exit_code, 0) << full_.err;
  const auto peft = test::run_oracle(
      "peft_oracle.py", {q4(), "--ids", kIds, "--load", path("full"), path("peft.safetensors"),
                         "--create", path("peft_made"), path("peft_made.safetensors")});
  ASSERT_EQ(peft.exit_code, 0) << peft.err;
  const auto ours = run_uq(
      {"logits", q4(), "--adapter", path("full"), "--ids", kIds, "-o", path("ours.safetensors")});
  ASSERT_EQ(ours.exit_code, 0) << ours.err;
  const auto base = run_uq({"logits", q4(), "--ids", kIds, "-o", path("base.safetensors")});
  ASSERT_EQ(base.exit_code, 0) << base.err;
  const auto our_logits = read_logits(path("ours.safetensors"));
  EXPECT_LT(max_abs_difference(our_logits, read_logits(path("peft.safetensors"))), 2e-4);
  // The adapter matters: it moves the logits far more than the tolerance.
  EXPECT_GT(max_abs_difference(our_logits, read_logits(path("base.safetensors"))), 0.05);

  const auto theirs = run_uq({"logits", q4(), "--adapter", path("peft_made"), "--ids", kIds, "-o",
                              path("ours_peft_made.safetensors")});
  ASSERT_EQ(theirs.exit_code, 0) << theirs.err;
  EXPECT_LT(max_abs_difference(read_logits(path("ours_peft_made.safetensors")),
                               read_logits(path("peft_made.safetensors"))),
            2e-4);
}

TEST_F(Finetune, MlxLmLoadsOurAdapterInItsLayoutWithOurLogits) {
  if (!test::python_available()) GTEST_SKIP() << "oracle venv not installed";
  const auto trained = run_uq(finetune_args("mlx_adapter", {"--adapter-format", "mlx"}, "2"));
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const auto config = read_json(*dir_ / "mlx_adapter" / "adapter_config.json");
  EXPECT_EQ(config["lora_parameters"]["scale"], 2.0);
  const auto ours = run_uq({"logits", q4(), "--adapter", path("mlx_adapter"), "--ids", kIds, "-o",
                            path("ours_mlx.safetensors")});
  ASSERT_EQ(ours.exit_code, 0) << ours.err;
  const auto theirs =
      test::run_oracle("mlx_lm_oracle.py", {"logits", q4(), path("mlx_lm.safetensors"), "--ids",
                                            kIds, "--adapter", path("mlx_adapter")});
  ASSERT_EQ(theirs.exit_code, 0) << theirs.err;
  EXPECT_LT(max_abs_difference(read_logits(path("ours_mlx.safetensors")),
                               read_logits(path("mlx_lm.safetensors"))),
            2e-4);
}

// --check-tensors scans the adapter file --adapter reads, not mlx-lm's numbered checkpoints
// beside it (same tensor names), and names that file when a value is NaN.
TEST_F(Finetune, CheckTensorsScansTheAdapterFileThatIsRead) {
  const auto trained = run_uq(finetune_args("checked", {"--adapter-format", "mlx"}, "2"));
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const std::filesystem::path weights = *dir_ / "checked" / "adapters.safetensors";
  std::filesystem::copy_file(weights, *dir_ / "checked" / "0000002_adapters.safetensors");
  const auto logits = [&] {
    return run_uq({"logits", q4(), "--adapter", path("checked"), "--ids", kIds, "-o",
                   path("checked.safetensors"), "--check-tensors"});
  };
  auto result = logits();
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("check-tensors: " + weights.string() + ": "), std::string::npos)
      << result.err;

  // The first tensor's first value (F32) a NaN.
  std::string bytes = test::read_text(weights);
  std::uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(bytes[i]);
  const std::string nan("\x00\x00\xc0\x7f", 4);
  bytes.replace(8 + length, nan.size(), nan);
  std::ofstream(weights, std::ios::binary | std::ios::trunc) << bytes;
  result = logits();
  EXPECT_EQ(result.exit_code, 1);
  // After the model's "check-tensors: ... all finite" line.
  EXPECT_NE(result.err.find("\nerror: " + weights.string() + ": tensor '"), std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("' holds nan at element 0"), std::string::npos) << result.err;
}

TEST_F(Finetune, FusedExportKeepsTheAdaptedModel) {
  ASSERT_EQ(full_.exit_code, 0) << full_.err;
  // The trainer's final validation = `uq eval --adapter` (checked above).
  const double adapted_ppl = nlohmann::json::parse(full_.out)["val_ppl"];

  const auto fused =
      run_uq({"export", q4(), "--adapter", path("full"), "--fuse", "-o", path("fused"), "--json"});
  ASSERT_EQ(fused.exit_code, 0) << fused.err;
  EXPECT_GT(nlohmann::json::parse(fused.out)["adapter_effect_retained"].get<double>(), 0.9999);
  const auto fused_eval = run_uq({"eval", path("fused"), "--data", val_, "--ctx", "64", "--json"});
  ASSERT_EQ(fused_eval.exit_code, 0) << fused_eval.err;
  EXPECT_NEAR(nlohmann::json::parse(fused_eval.out)["ppl"].get<double>(), adapted_ppl,
              1e-4 * adapted_ppl);

  // Re-quantized to 4 bits the adapter's small change mostly falls between
  // quantization levels; the report says how much survived.
  const auto requantized = run_uq({"export", q4(), "--adapter", path("full"), "--fuse", "-o",
                                   path("fused_q4"), "--bits", "4", "--json"});
  ASSERT_EQ(requantized.exit_code, 0) << requantized.err;
  const auto report = nlohmann::json::parse(requantized.out);
  const double retained = report["adapter_effect_retained"];
  EXPECT_LT(retained, 0.9);
  EXPECT_GT(report["adapter_delta_cosine"].get<double>(), 0.0);
  const auto loaded =
      run_uq({"logits", path("fused_q4"), "--ids", kIds, "-o", path("fused_q4.safetensors")});
  EXPECT_EQ(loaded.exit_code, 0) << loaded.err;
}

TEST_F(Finetune, BadInputIsRefusedNamingTheCulprit) {
  const auto expect_error = [](const std::vector<std::string>& args, const std::string& needle) {
    const auto result = run_uq(args);
    EXPECT_NE(result.exit_code, 0) << needle;
    EXPECT_NE(result.err.find("error: "), std::string::npos) << result.err;
    EXPECT_NE(result.err.find(needle), std::string::npos) << result.err;
  };
  expect_error(finetune_args("bad", {"--lora-rank", "0"}), "rank");
  expect_error(finetune_args("bad", {"--steps", "0"}), "--steps");
  expect_error(finetune_args("bad", {"--ctx", "1"}), "--ctx");
  expect_error(finetune_args("bad", {"--target", "no_such_proj"}), "no_such_proj");
  expect_error(finetune_args("bad", {"--adapter-format", "gguf"}), "--adapter-format");
  expect_error(finetune_args("bad", {"--device", "tpu"}), "--device");
  if (!cuda_available()) expect_error(finetune_args("bad", {"--device", "cuda"}), "--device cuda");
  expect_error({"finetune", q4(), "--data", path("missing.txt"), "-o", path("bad")}, "--data");
  expect_error({"eval", q4(), "--data", val_, "--adapter", path("no_adapter")}, "--adapter");
  expect_error({"export", q4(), "--fuse", "-o", path("bad_export")}, "--adapter");
  EXPECT_FALSE(std::filesystem::exists(*dir_ / "bad" / "adapter_config.json"));
}

}  // namespace
}  // namespace uq
