// Which devices `uq bench --device D` measures on, and the rows and skipped entries it gives
// each model there. Runs anywhere: where this machine has no usable GPU, "all" is the CPU alone
// and "cuda" is refused up front, naming the option.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "api/compare_backends.hpp"
#include "core/error.hpp"
#include "model/decoder.hpp"
#include "model/device_placement.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

std::vector<std::string> usable_devices() {
  if (cuda_available()) return {"cpu", "cuda"};
  return {"cpu"};
}

std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(BenchDevices, EachOptionNamesItsDevices) {
  EXPECT_EQ(comparison_devices("cpu"), std::vector<std::string>{"cpu"});
  EXPECT_EQ(comparison_devices("auto"), std::vector<std::string>{"auto"});
  EXPECT_EQ(comparison_devices("all"), usable_devices());
  if (cuda_available()) {
    EXPECT_EQ(comparison_devices("cuda"), std::vector<std::string>{"cuda"});
  } else {
    const std::string message = error_of([] { comparison_devices("cuda"); });
    EXPECT_NE(message.find("--device cuda"), std::string::npos) << message;
  }
  for (const char* bad : {"gpu", "", "ALL", "cpu,cuda"}) {
    const std::string message = error_of([&] { comparison_devices(bad); });
    EXPECT_NE(message.find("--device"), std::string::npos) << bad << ": " << message;
  }
}

TEST(BenchDevices, UnsupportedReasonOnlyForCudaWhereItCannotRun) {
  const Model& model = *test::bundled().model;
  EXPECT_FALSE(device_unsupported_reason(model, "cpu"));
  EXPECT_FALSE(device_unsupported_reason(model, "auto"));
  const auto reason = device_unsupported_reason(model, "cuda");
  // The bundled model is bf16, which has a CUDA kernel: only a missing GPU or build stops it.
  EXPECT_EQ(reason.has_value(), !cuda_available()) << reason.value_or("");
  if (reason) {
    EXPECT_NE(reason->find("CUDA"), std::string::npos) << *reason;
  }
  const std::string message = error_of([&] { (void)device_unsupported_reason(model, "tpu"); });
  EXPECT_NE(message.find("unknown device 'tpu'"), std::string::npos) << message;
  if (!cuda_available()) {
    EXPECT_EQ(cuda_memory_used_bytes(), 0);
  }
}

// Every (model, device) pair is a measured row or a skipped entry with its reason; rows of one
// model follow the devices' order and share the device-independent fields.
TEST(BenchDevices, AllGivesOneRowPerModelAndDevice) {
  CompareOptions options;
  options.data = test::source_path("data/val.txt");
  options.eval_windows = 1;
  options.ctx = 64;
  options.decode_tokens = 4;
  options.backends = {"mlx", "bnb"};
  options.device = "all";
  const BackendComparison comparison = compare_backends(test::bundled().model, {1, 16}, 4, options);
  const auto devices = usable_devices();
  EXPECT_EQ(comparison.devices, devices);
  EXPECT_EQ(comparison.rows.size() + comparison.skipped.size(), 3 * devices.size());
  for (const auto& skip : comparison.skipped) {
    // Only the GPU can refuse a model at 4 bits: a format without a CUDA kernel.
    EXPECT_EQ(skip.device, "cuda") << skip.backend << ": " << skip.reason;
    EXPECT_NE(skip.reason.find("CUDA"), std::string::npos) << skip.reason;
  }
  ASSERT_GE(comparison.rows.size(), 3u);
  std::vector<std::string> cpu_backends;
  for (const auto& row : comparison.rows) {
    SCOPED_TRACE(row.backend + " on " + row.device);
    EXPECT_TRUE(row.device == "cpu" || row.device == "cuda");
    if (row.device == "cpu") cpu_backends.push_back(row.backend);
    EXPECT_GT(row.prompt_tokens_per_second, 0.0);
    EXPECT_GT(row.decode_tokens_per_second, 0.0);
    EXPECT_GT(row.peak_memory_mib, 0.0);
    // A cpu row's rise above its weights is part of the process's peak resident set.
    if (row.device == "cpu") {
      EXPECT_GE(row.process_peak_mib, row.peak_memory_mib - row.weights_mib);
    }
    EXPECT_GT(row.perplexity, 1.0);
  }
  EXPECT_EQ(cpu_backends, (std::vector<std::string>{"float", "mlx", "bnb"}));
  // float and mlx have CUDA kernels: with a GPU each has a cuda row right after its cpu row,
  // with the same perplexity to 0.1% and the same sizes.
  if (devices.size() == 2) {
    for (std::size_t i = 0; i + 1 < comparison.rows.size(); ++i) {
      const auto& cpu = comparison.rows[i];
      const auto& gpu = comparison.rows[i + 1];
      if (cpu.device != "cpu" || gpu.device != "cuda" || cpu.backend != gpu.backend) continue;
      EXPECT_NEAR(gpu.perplexity, cpu.perplexity, 1e-3 * cpu.perplexity) << cpu.backend;
      EXPECT_EQ(gpu.disk_mib, cpu.disk_mib);
      EXPECT_EQ(gpu.quantize_seconds, cpu.quantize_seconds);
    }
  }
}

TEST(BenchDevices, CudaWithoutAGpuIsRefusedBeforeMeasuring) {
  if (cuda_available()) GTEST_SKIP() << "a GPU is present: tests/cuda covers --device cuda";
  const auto result = test::run_uq({"bench", test::bundled_model().string(), "--device", "cuda",
                                    "--data", test::source_path("data/val.txt").string()});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(result.err.rfind("error: option --device cuda", 0), 0u) << result.err;
  EXPECT_EQ(result.out, "");
}

}  // namespace
}  // namespace uq
