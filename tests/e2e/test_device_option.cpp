// --device through `uq`: cpu always works; without a usable GPU, cuda is one error line and
// auto runs on the CPU with the same result; `uq bench --synthetic` measures a random model of
// a preset's shape on the CPU.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "model/device_placement.hpp"
#include "support/test_support.hpp"

namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using uq::test::run_uq;

std::vector<std::string> eval_args(const std::string& data, const std::string& device) {
  return {"eval",   uq::test::bundled_model().string(),
          "--data", data,
          "--ctx",  "128",
          "--json", "--device",
          device,   "--quiet"};
}

TEST(DeviceOption, WithoutGpuCudaIsOneErrorAndAutoIsCpu) {
  if (uq::cuda_available()) GTEST_SKIP() << "a GPU is present (tests/cuda cover it)";
  uq::test::TempDir dir;
  const std::string data = uq::test::val_text_head(dir, 6000);
  const auto refused = run_uq(eval_args(data, "cuda"));
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, StartsWith("error: option --device cuda: "));
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;

  const auto automatic = run_uq(eval_args(data, "auto"));
  const auto cpu = run_uq(eval_args(data, "cpu"));
  ASSERT_EQ(automatic.exit_code, 0) << automatic.err;
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  const auto automatic_report = nlohmann::json::parse(automatic.out);
  EXPECT_EQ(automatic_report["device"], "cpu");
  EXPECT_EQ(automatic_report["ppl"], nlohmann::json::parse(cpu.out)["ppl"]);

  const auto unknown = run_uq(eval_args(data, "tpu"));
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_THAT(unknown.err, HasSubstr("unknown device 'tpu'"));
}

TEST(DeviceOption, SyntheticBenchOnCpu) {
  const auto result =
      run_uq({"bench", "--synthetic", "tiny", "--layers", "2", "--formats", "bf16,4,3",
              "--input-shape", "1,24", "--decode-tokens", "4", "--device", "cpu", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto report = nlohmann::json::parse(result.out);
  ASSERT_EQ(report["rows"].size(), 3u);
  const double bf16_gib = report["rows"][0]["decode_weight_gib"];
  // tiny, 2 layers: lm_head 4096 x 256 + 2 x (4 x 256 x 256 / 2 ... ) in bf16, exactly.
  const double elements =
      4096.0 * 256 + 2 * (256.0 * 256 + 2 * 128.0 * 256 + 256.0 * 256 + 3 * 768.0 * 256);
  EXPECT_DOUBLE_EQ(bf16_gib, elements * 2 / double(1 << 30));
  for (const auto& row : report["rows"]) {
    EXPECT_EQ(row["device"], "cpu");
    EXPECT_GT(row["prompt_tokens_per_second"].get<double>(), 0.0);
    EXPECT_GT(row["decode_tokens_per_second"].get<double>(), 0.0);
    EXPECT_EQ(row["decode_ceiling_tokens_per_second"].get<double>(), 0.0);
  }
  EXPECT_EQ(report["rows"][1]["format"], "affine b4 g64");
  EXPECT_LT(report["rows"][2]["decode_weight_gib"].get<double>(),
            report["rows"][1]["decode_weight_gib"].get<double>());

  const auto bad = run_uq({"bench", "--synthetic", "tiny", "--formats", "bf15"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("--formats"));
  const auto neither = run_uq({"bench"});
  EXPECT_NE(neither.exit_code, 0);
  EXPECT_THAT(neither.err, HasSubstr("--synthetic"));
}

// --profile-decode times stages on the GPU only (tests/cuda/test_cuda_model runs it there): on
// the CPU, or with a context that is no positive integer, one error line naming the option.
TEST(DeviceOption, ProfileDecodeIsForTheGpu) {
  const auto on_cpu = run_uq({"bench", "--synthetic", "tiny", "--layers", "1", "--formats", "4",
                              "--device", "cpu", "--profile-decode", "16"});
  EXPECT_NE(on_cpu.exit_code, 0);
  EXPECT_THAT(on_cpu.err, StartsWith("error: option --profile-decode: "));
  for (const std::string bad : {"0", "x", "12a"}) {
    const auto result = run_uq(
        {"bench", "--synthetic", "tiny", "--device", "cpu", "--profile-decode", "512," + bad});
    EXPECT_NE(result.exit_code, 0);
    EXPECT_THAT(result.err, HasSubstr("'" + bad + "' is not a positive context length"));
  }
}

}  // namespace
