// `uq quantize --method gptq|awq|hqq` on the bundled model: deterministic
// output, perplexity on a slice of val.txt below round-to-nearest's, the
// per-layer summary, and bad calibration options. A slice of train.txt with
// short windows keeps each run to a few seconds.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.hpp"
#include "model/device_placement.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

using test::read_text;
using test::run_uq;
using test::TempDir;

// The first 300 kB of train.txt (calibration never sees val.txt).
std::string calibration_slice(const TempDir& dir) {
  const std::string text = read_text(test::source_path("data/train.txt"));
  const auto path = dir / "train_slice.txt";
  std::ofstream(path, std::ios::binary) << text.substr(0, 300000);
  return path.string();
}

std::vector<std::string> quantize_args(const std::string& method, int bits, const std::string& data,
                                       const std::string& out, const char* samples = nullptr) {
  // AWQ's scale search runs the block 80 times per window: fewer windows.
  if (samples == nullptr) samples = method == "gptq" ? "64" : "16";
  std::vector<std::string> args{"quantize",     test::bundled_model().string(),
                                "-o",           out,
                                "--bits",       std::to_string(bits),
                                "--group-size", "64",
                                "--layer-bits", "embed=16",
                                "--layer-bits", "lm_head=16",
                                "--method",     method,
                                "--json",       "--quiet"};
  if (method == "gptq" || method == "awq") {
    for (const std::string arg : {"--calibration-data", data.c_str(), "--calibration-samples",
                                  samples, "--calibration-ctx", "128", "--seed", "3"}) {
      args.push_back(arg);
    }
  }
  return args;
}

// Perplexity on the first 40 kB of val.txt: a full `uq eval` takes too long for a test.
double val_ppl(const std::string& dir) {
  static const TempDir slice_dir;
  static const std::string slice = [] {
    const auto path = slice_dir / "val_slice.txt";
    std::ofstream(path, std::ios::binary)
        << read_text(test::source_path("data/val.txt")).substr(0, 40000);
    return path.string();
  }();
  const auto result = run_uq({"eval", dir, "--data", slice, "--json", "--quiet"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return nlohmann::json::parse(result.out)["ppl"].get<double>();
}

nlohmann::json quantize(const std::vector<std::string>& args) {
  const auto result = run_uq(args);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return nlohmann::json::parse(result.out);
}

// At 2 bits GPTQ also refits each row's (scale, bias) to its codes
// (calibration/group_refit.hpp), which this exercises.
TEST(CalibrationCli, GptqIsDeterministicAndBeatsRoundToNearest) {
  TempDir dir;
  const auto data = calibration_slice(dir);
  const auto first = quantize(quantize_args("gptq", 2, data, (dir / "a").string()));
  quantize(quantize_args("gptq", 2, data, (dir / "b").string()));
  EXPECT_EQ(read_text(dir / "a" / "model.safetensors"), read_text(dir / "b" / "model.safetensors"));

  EXPECT_EQ(first["method"], "gptq");
  // --device auto: GPTQ runs on the GPU where one is usable (tests/cuda/test_cuda_gptq.cpp).
  EXPECT_EQ(first["calibration_device"], cuda_available() ? "cuda" : "cpu");
  EXPECT_TRUE(first["not_calibrated"].empty());
  int calibrated = 0;
  for (const auto& layer : first["layers"]) {
    const std::string path = layer["path"];
    if (path.find("model.layers.") == 0) {
      EXPECT_EQ(layer["method"], "gptq") << path;
      EXPECT_EQ(layer["scheme"], "affine b2 g64") << path;
      EXPECT_EQ(layer["error_measure"], "output") << path;
      const double error = layer["reconstruction_error"];
      EXPECT_GT(error, 0.0) << path;
      EXPECT_LT(error, 0.1) << path;  // measured 0.004-0.053
      ++calibrated;
    } else {
      EXPECT_EQ(layer["bits"], 0) << path;  // embed / lm_head kept float
    }
  }
  EXPECT_EQ(calibrated, 28);

  quantize(quantize_args("rtn", 2, data, (dir / "rtn").string()));
  const double rtn = val_ppl((dir / "rtn").string());
  const double gptq = val_ppl((dir / "a").string());
  // On the val slice: RTN 65.51, GPTQ (64 windows of 128 tokens) 61.46.
  EXPECT_NEAR(rtn, 65.51, 0.01);
  EXPECT_LT(gptq, rtn - 3.0);
}

TEST(CalibrationCli, AwqAndHqqQuantizeEveryDecoderLinear) {
  TempDir dir;
  const auto data = calibration_slice(dir);
  for (const std::string method : {"awq", "hqq"}) {
    const auto out = (dir / method).string();
    const auto summary = quantize(quantize_args(method, 3, data, out));
    for (const auto& layer : summary["layers"]) {
      const std::string path = layer["path"];
      if (path.find("model.layers.") != 0) continue;
      EXPECT_EQ(layer["method"], method) << path;
      EXPECT_EQ(layer["error_measure"], method == "hqq" ? "weight" : "output") << path;
    }
    // On the val slice: RTN 57.26; measured AWQ 56.86, HQQ 57.06 (HQQ needs no data and
    // lowers the weight error, not the perplexity, so it only has to stay close).
    EXPECT_LT(val_ppl(out), method == "awq" ? 57.1 : 57.4) << method;
  }
}

TEST(CalibrationCli, QuantoAndCustomFormatsTakeGptq) {
  TempDir dir;
  const auto data = calibration_slice(dir);
  for (const auto& [backend, bits] :
       std::vector<std::pair<std::string, int>>{{"quanto", 2}, {"custom", 4}}) {
    auto args = quantize_args("gptq", bits, data, (dir / backend).string(), "16");
    args.insert(args.end(), {"--backend", backend});
    const auto summary = quantize(args);
    EXPECT_TRUE(summary["not_calibrated"].empty()) << backend;
    EXPECT_TRUE(std::isfinite(val_ppl((dir / backend).string()))) << backend;
  }
}

// The codes GPTQ chose are stored in mlx-lm's own layout: mlx-lm loads the
// directory and computes the logits we compute.
TEST(CalibrationCli, MlxLmLoadsAGptqDirectoryWithTheSameLogits) {
  if (!test::python_available()) GTEST_SKIP() << "oracle venv not installed";
  TempDir dir;
  const auto out = (dir / "gptq").string();
  quantize(quantize_args("gptq", 3, calibration_slice(dir), out, "8"));
  const std::string ids = "1183,259,2430,424,3130,259,892,271,259,727,14";
  const auto oracle = test::run_oracle(
      "mlx_lm_oracle.py", {"logits", out, (dir / "mlx.safetensors").string(), "--ids", ids});
  ASSERT_EQ(oracle.exit_code, 0) << oracle.err;
  const auto ours =
      run_uq({"logits", out, "--ids", ids, "-o", (dir / "ours.safetensors").string()});
  ASSERT_EQ(ours.exit_code, 0) << ours.err;
  const auto expected = SafetensorsFile::open(dir / "mlx.safetensors")->tensor("logits").to_f32();
  const auto actual = SafetensorsFile::open(dir / "ours.safetensors")->tensor("logits").to_f32();
  ASSERT_EQ(expected.size(), actual.size());
  double difference = 0.0, norm = 0.0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    difference += std::pow(static_cast<double>(actual[i]) - expected[i], 2);
    norm += std::pow(static_cast<double>(expected[i]), 2);
  }
  // Both run float32 over the same stored codes, scales and biases.
  EXPECT_LT(std::sqrt(difference / norm), 1e-5);
}

TEST(CalibrationCli, RefusesUnusableCalibrationOptions) {
  TempDir dir;
  const auto model = test::bundled_model().string();
  const auto out = (dir / "out").string();
  auto result = run_uq({"quantize", model, "-o", out, "--method", "gptq"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("calibration_data"), std::string::npos) << result.err;
  result = run_uq({"quantize", model, "-o", out, "--method", "awq", "--calibration-data",
                   (dir / "missing.txt").string()});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("missing.txt"), std::string::npos) << result.err;
  result = run_uq({"quantize", model, "-o", out, "--method", "hqq", "--backend", "custom"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("hqq"), std::string::npos) << result.err;
  result = run_uq({"quantize", model, "-o", out, "--method", "gptq", "--backend", "bnb",
                   "--calibration-data", test::source_path("data/train.txt").string()});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("bnb"), std::string::npos) << result.err;
  result = run_uq({"quantize", model, "-o", out, "--method", "gptq", "--calibration-ctx", "4096",
                   "--calibration-data", test::source_path("data/val.txt").string()});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("calibration_ctx"), std::string::npos) << result.err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace uq
