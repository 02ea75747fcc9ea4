// GPTQ on the GPU (kernels/cuda/gptq_cuda.hpp, gptq_blocks_cuda.hpp) against the CPU's
// GPTQ (calibration/gptq.cpp): one matrix on a random correlated Hessian (reconstruction
// error at most 2% above the CPU's, most codes equal, the same bytes twice), the refusals, and
// `uq quantize --method gptq --device cuda` of the bundled model at 3 and 2 bits g64 whose
// val.txt perplexity is within 1% of the CPU GPTQ's (docs/ACCURACY.md) with identical bytes on
// two runs and the per-layer summary in --json.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "calibration/gptq.hpp"
#include "calibration/hessian.hpp"
#include "core/error.hpp"
#include "kernels/cuda/cublas_library.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/gptq_cuda.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

using ::testing::HasSubstr;

class CudaGptqTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
  }
};

struct Problem {
  std::int64_t out = 96, in = 256;
  std::vector<float> weights;
  std::vector<double> hessian;
};

// Inputs with correlated columns (a random mixing of independent ones) and a few dead ones.
Problem random_problem(std::uint32_t seed) {
  Problem problem;
  std::mt19937 generator(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  problem.weights.resize(static_cast<std::size_t>(problem.out * problem.in));
  for (float& w : problem.weights) w = 0.02f * normal(generator);
  const std::int64_t rows = 2048;
  std::vector<float> base(static_cast<std::size_t>(rows * problem.in));
  for (float& x : base) x = normal(generator);
  std::vector<float> x(base.size());
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < problem.in; ++c) {
      const auto at = static_cast<std::size_t>(r * problem.in + c);
      x[at] =
          c % 50 == 7
              ? 0.0f
              : base[at] +
                    0.8f * base[static_cast<std::size_t>(r * problem.in + (c + 1) % problem.in)];
    }
  }
  HessianAccumulator accumulator(problem.in);
  accumulator.add(x.data(), rows);
  problem.hessian = accumulator.hessian();
  return problem;
}

struct GpuRun {
  QuantizedMatrix matrix{0, 1, 1};
  double error = 0.0;
  std::vector<float> dequantized;
};

GpuRun run_on_gpu(const Problem& problem, const QuantGrid& grid, const GptqOptions& options) {
  cuda::Stream stream;
  cuda::CublasHandle cublas;
  UQ_CUDA_CHECK(uq::cuda::cublas_library().set_stream(cublas.get(), stream.get()));
  cuda::DeviceBuffer<float> weights(problem.weights.size());
  weights.upload(problem.weights);
  cuda::DeviceBuffer<double> hessian(problem.hessian.size());
  hessian.upload(problem.hessian);
  cuda::DeviceBuffer<float> dequantized(problem.weights.size());
  dequantized.fill_bytes(0xff);            // NaN: every element must be written
  UQ_CUDA_CHECK(cudaDeviceSynchronize());  // uploads (legacy stream) before the work stream
  cuda::GptqDevice device(stream.get(), cublas.get());
  auto result = device.quantize(weights.data(), problem.out, problem.in, hessian.data(), grid,
                                options, dequantized.data(), "test.weight");
  GpuRun run{std::move(result.matrix), result.reconstruction_error, {}};
  run.dequantized.resize(problem.weights.size());
  dequantized.download(run.dequantized);
  return run;
}

class CudaGptqBits : public CudaGptqTest, public ::testing::WithParamInterface<int> {};

// 3 bits: plain GPTQ; 2 bits: GPTQ passes around the host refits.
TEST_P(CudaGptqBits, MatchesTheCpuGptq) {
  const int bits = GetParam();
  const Problem problem = random_problem(11 + static_cast<std::uint32_t>(bits));
  std::string note;
  const auto grid = make_grid("mlx", bits, 64, problem.in, DType::BF16, note);
  ASSERT_TRUE(grid) << note;
  const GptqOptions options;
  const QuantizedMatrix cpu = gptq_quantize(problem.weights.data(), problem.out, problem.in,
                                            problem.hessian, *grid, options);
  const auto cpu_values = cpu.dequantize();
  const double cpu_error = relative_output_error(problem.weights.data(), cpu_values.data(),
                                                 problem.out, problem.in, problem.hessian);
  const GpuRun gpu = run_on_gpu(problem, *grid, options);
  const auto gpu_values = gpu.matrix.dequantize();
  EXPECT_EQ(gpu.dequantized, gpu_values);  // the device's Ŵ is the returned codes' matrix
  const double gpu_error = relative_output_error(problem.weights.data(), gpu_values.data(),
                                                 problem.out, problem.in, problem.hessian);
  EXPECT_NEAR(gpu.error, gpu_error, 1e-4 * gpu_error);  // the device's own error measure
  EXPECT_GT(cpu_error, 0.0);
  // As good as the CPU's (float order differs, so not the same bytes).
  EXPECT_LT(gpu_error, 1.02 * cpu_error) << "gpu " << gpu_error << " cpu " << cpu_error;
  std::printf("%d-bit: relative output error gpu %.6g cpu %.6g\n", bits, gpu_error, cpu_error);
  std::size_t same = 0;
  for (std::size_t i = 0; i < cpu.codes.size(); ++i) same += cpu.codes[i] == gpu.matrix.codes[i];
  EXPECT_GT(static_cast<double>(same), 0.8 * static_cast<double>(cpu.codes.size()));

  const GpuRun again = run_on_gpu(problem, *grid, options);
  EXPECT_EQ(again.matrix.codes, gpu.matrix.codes);
  EXPECT_EQ(again.dequantized, gpu.dequantized);
  EXPECT_EQ(again.error, gpu.error);
}

INSTANTIATE_TEST_SUITE_P(Bits, CudaGptqBits, ::testing::Values(3, 2));

TEST_F(CudaGptqTest, RefusesWhatTheGpuCannotRun) {
  const Problem problem = random_problem(5);
  std::string note;
  const auto symmetric = make_grid("custom", 4, 64, problem.in, DType::BF16, note);
  EXPECT_THAT(cuda::gptq_cuda_unsupported_reason(*symmetric, {}), HasSubstr("symmetric"));
  try {
    run_on_gpu(problem, *symmetric, {});
    FAIL() << "a symmetric grid ran";
  } catch (const Error& error) {
    EXPECT_THAT(error.what(), HasSubstr("test.weight"));
  }
  const auto affine = make_grid("mlx", 4, 64, problem.in, DType::BF16, note);
  GptqOptions act_order;
  act_order.act_order = true;
  EXPECT_THAT(cuda::gptq_cuda_unsupported_reason(*affine, act_order), HasSubstr("act-order"));
}

std::vector<std::string> quantize_args(int bits, const std::string& out, const char* device) {
  return {"quantize",
          test::bundled_model().string(),
          "-o",
          out,
          "--bits",
          std::to_string(bits),
          "--group-size",
          "64",
          "--layer-bits",
          "embed=16",
          "--layer-bits",
          "lm_head=16",
          "--method",
          "gptq",
          "--calibration-data",
          test::source_path("data/train.txt").string(),
          "--device",
          device,
          "--json",
          "--quiet"};
}

// The CPU GPTQ's val.txt perplexity, docs/ACCURACY.md (same command with the CPU).
double cpu_reference(int bits) {
  return bits == 3 ? 54.3433 : 57.5985;
}

class CudaGptqCli : public CudaGptqTest, public ::testing::WithParamInterface<int> {};

TEST_P(CudaGptqCli, PerplexityWithinOnePercentOfTheCpusAndSameBytesTwice) {
  const int bits = GetParam();
  test::TempDir dir;
  const auto first = test::run_uq(quantize_args(bits, (dir / "a").string(), "cuda"));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const auto second = test::run_uq(quantize_args(bits, (dir / "b").string(), "cuda"));
  ASSERT_EQ(second.exit_code, 0) << second.err;
  test::expect_same_files(dir / "a", dir / "b");

  const auto summary = nlohmann::json::parse(first.out);
  EXPECT_EQ(summary["calibration_device"], "cuda");
  EXPECT_TRUE(summary["not_calibrated"].empty());
  int calibrated = 0;
  for (const auto& layer : summary["layers"]) {
    if (layer["path"].get<std::string>().find("model.layers.") != 0) continue;
    ++calibrated;
    EXPECT_EQ(layer["method"], "gptq");
    EXPECT_EQ(layer["error_measure"], "output");
    const double error = layer["reconstruction_error"].get<double>();
    EXPECT_GT(error, 0.0) << layer["path"];
    EXPECT_LT(error, bits == 3 ? 0.1 : 0.4) << layer["path"];
  }
  EXPECT_EQ(calibrated, 4 * 7);

  const auto eval = test::run_uq({"eval", (dir / "a").string(), "--data",
                                  test::source_path("data/val.txt").string(), "--device", "cuda",
                                  "--json", "--quiet"});
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  const double ppl = nlohmann::json::parse(eval.out)["ppl"].get<double>();
  std::printf("gptq b%d g64 on the GPU: val ppl %.4f (CPU %.4f)\n", bits, ppl, cpu_reference(bits));
  EXPECT_LT(std::fabs(ppl - cpu_reference(bits)), 0.01 * cpu_reference(bits));
}

INSTANTIATE_TEST_SUITE_P(Bits, CudaGptqCli, ::testing::Values(3, 2));

TEST(CudaGptqOption, DeviceCudaRefusesOtherMethods) {
  test::TempDir dir;
  auto args = quantize_args(3, (dir / "a").string(), "cuda");
  args[13] = "hqq";  // after --method
  const auto result = test::run_uq(args);
  EXPECT_NE(result.exit_code, 0);
  // Without a GPU (or CUDA) the device option itself is refused first.
  EXPECT_THAT(result.err, ::testing::AnyOf(HasSubstr("only gptq"), HasSubstr("--device cuda")));
}

}  // namespace
}  // namespace uq
