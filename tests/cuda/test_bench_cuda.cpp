// The backend comparison on the GPU (`uq bench MODEL --device cuda|all`) and BackendManager's
// GPU side: rows measured on the device agree with the CPU's (perplexity within 0.1%, float
// against itself cosine 1), a backend with no CUDA kernel is a skipped entry naming the layer,
// the chart has the cuda series, the driver's used memory follows a large device allocation,
// and `uq info` lists the GPU as the device reports it. Skipped without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/backend.hpp"
#include "api/backend_manager.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/device_buffer.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

class BenchCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
  }
};

nlohmann::json bench(const std::string& device, const std::vector<std::string>& extra) {
  std::vector<std::string> args{"bench",           test::bundled_model().string(),
                                "--json",          "--quiet",
                                "--device",        device,
                                "--input-shape",   "1,128",
                                "--eval-windows",  "2",
                                "--decode-tokens", "16",
                                "--data",          test::source_path("data/val.txt").string()};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto result = test::run_uq(args);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return nlohmann::json::parse(result.out);
}

void expect_measured(const nlohmann::json& row) {
  SCOPED_TRACE(row.dump());
  for (const char* key : {"disk_mib", "bits_per_weight", "weights_mib", "peak_memory_mib",
                          "process_peak_mib", "prompt_tokens_per_second",
                          "decode_tokens_per_second", "perplexity", "cosine_similarity"}) {
    const double value = row[key];
    EXPECT_TRUE(std::isfinite(value) && value > 0.0) << key << " = " << value;
  }
  const double kl = row["kl_divergence"];
  EXPECT_TRUE(std::isfinite(kl) && kl >= 0.0);
  EXPECT_LT(row["perplexity"].get<double>(), 4096.0);
  if (row["device"] == "cuda") {
    // The driver's rise holds at least the uploaded weights (every matrix, in its own format).
    EXPECT_GE(row["peak_memory_mib"].get<double>(), row["weights_mib"].get<double>());
  }
}

const nlohmann::json* find_row(const nlohmann::json& rows, const std::string& backend,
                               const std::string& device) {
  for (const auto& row : rows) {
    if (row["backend"] == backend && row["device"] == device) return &row;
  }
  return nullptr;
}

TEST_F(BenchCuda, EveryRowOnTheGpuOrSkippedWithTheReason) {
  const auto report = bench("cuda", {});
  EXPECT_EQ(report["devices"], nlohmann::json({"cuda"}));
  const auto& rows = report["rows"];
  for (const auto& row : rows) {
    EXPECT_EQ(row["device"], "cuda");
    expect_measured(row);
  }
  const auto* float_row = find_row(rows, "float", "cuda");
  ASSERT_NE(float_row, nullptr) << report.dump(2);
  ASSERT_NE(find_row(rows, "mlx", "cuda"), nullptr) << report.dump(2);
  // The GPU's float logits against the CPU's: the same function to ~1e-5.
  EXPECT_NEAR((*float_row)["cosine_similarity"].get<double>(), 1.0, 1e-6);
  EXPECT_LT((*float_row)["kl_divergence"].get<double>(), 1e-6);
  EXPECT_EQ((*float_row)["quantize_seconds"].get<double>(), 0.0);
  // Every backend that writes 4 bits has a cuda row or says why not (no kernel for its format),
  // as BackendManager's probe of its formats (on a synthetic model) says.
  const auto& capabilities = BackendManager::get_instance().backends();
  for (const auto& backend : backends()) {
    const auto& bits = backend->spec().bits;
    if (std::find(bits.begin(), bits.end(), 4) == bits.end()) continue;
    const std::string& name = backend->spec().name;
    const bool measured = find_row(rows, name, "cuda") != nullptr;
    const auto listed = std::find_if(capabilities.begin(), capabilities.end(),
                                     [&](const auto& c) { return c.name == name; });
    ASSERT_NE(listed, capabilities.end()) << name;
    const auto& cuda_bits = listed->cuda_bits;
    EXPECT_EQ(measured, std::find(cuda_bits.begin(), cuda_bits.end(), 4) != cuda_bits.end())
        << name;
    const auto skip = std::find_if(report["skipped"].begin(), report["skipped"].end(),
                                   [&](const auto& s) { return s["backend"] == name; });
    EXPECT_NE(measured, skip != report["skipped"].end()) << name;
    if (!measured && skip != report["skipped"].end()) {
      EXPECT_EQ((*skip)["device"], "cuda");
      const std::string reason = (*skip)["reason"];
      EXPECT_NE(reason.find("CUDA"), std::string::npos) << name << ": " << reason;
      EXPECT_NE(reason.find("module '"), std::string::npos) << name << ": " << reason;
    }
  }
}

TEST_F(BenchCuda, AllMatchesTheCpuRowsAndChartsTheCudaSeries) {
  test::TempDir dir;
  const auto chart = dir / "chart.svg";
  const auto report = bench("all", {"--backends", "mlx", "--plot", chart.string()});
  EXPECT_EQ(report["devices"], nlohmann::json({"cpu", "cuda"}));
  const auto& rows = report["rows"];
  ASSERT_EQ(rows.size(), 4u) << report.dump(2);
  const std::vector<std::pair<std::string, std::string>> order = {
      {"float", "cpu"}, {"float", "cuda"}, {"mlx", "cpu"}, {"mlx", "cuda"}};
  for (std::size_t i = 0; i < order.size(); ++i) {
    EXPECT_EQ(rows[i]["backend"], order[i].first);
    EXPECT_EQ(rows[i]["device"], order[i].second);
    expect_measured(rows[i]);
  }
  for (const std::size_t cpu : {0u, 2u}) {
    const auto& on_cpu = rows[cpu];
    const auto& on_gpu = rows[cpu + 1];
    SCOPED_TRACE(on_cpu["backend"].get<std::string>());
    const double ppl = on_cpu["perplexity"];
    EXPECT_NEAR(on_gpu["perplexity"].get<double>(), ppl, 1e-3 * ppl);
    EXPECT_NEAR(on_gpu["cosine_similarity"].get<double>(),
                on_cpu["cosine_similarity"].get<double>(), 1e-4);
    // Quantized once, on the CPU: both rows share the device-independent fields.
    for (const char* key : {"quantize_seconds", "disk_mib", "bits_per_weight", "weights_mib"}) {
      EXPECT_EQ(on_gpu[key], on_cpu[key]) << key;
    }
  }
  EXPECT_NEAR(rows[1]["cosine_similarity"].get<double>(), 1.0, 1e-6);

  std::ifstream in(chart);
  const std::string svg{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  for (const char* series : {"float (cpu)", "float (cuda)", "mlx (cpu)", "mlx (cuda)"}) {
    EXPECT_NE(svg.find(std::string("data-series=\"") + series + "\""), std::string::npos) << series;
  }
}

TEST_F(BenchCuda, BackendsListTheBitsTheirModelsRunOnTheGpu) {
  for (const auto& listed : BackendManager::get_instance().backends()) {
    SCOPED_TRACE(listed.name);
    const std::vector<std::string> cpu_only{"cpu"}, both{"cpu", "cuda"};
    EXPECT_EQ(listed.devices, listed.cuda_bits.empty() ? cpu_only : both);
    for (int bits : listed.cuda_bits) {
      EXPECT_NE(std::find(listed.bits.begin(), listed.bits.end(), bits), listed.bits.end());
    }
    // Every mlx width runs on the GPU: 2-6 and 8 on the tuned affine kernels, 1 and 7 on the
    // generic format GEMV (docs/DEVICES.md).
    if (listed.name == "mlx") {
      EXPECT_EQ(listed.cuda_bits, (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8}));
    }
  }
}

TEST_F(BenchCuda, DriverUsedMemoryFollowsADeviceAllocation) {
  const auto& manager = BackendManager::get_instance();
  ASSERT_EQ(manager.gpus().size(), static_cast<std::size_t>(cuda::cuda_device_count()));
  const double before = manager.get_memory_info().gpus.at(0).used_gb;
  {
    const cuda::DeviceBuffer<unsigned char> block(std::size_t{1} << 30);
    const MemoryInfo during = manager.get_memory_info();
    const double grown = during.gpus.at(0).used_gb - before;
    // 1 GiB, rounded up to the driver's pages; nothing else allocates meanwhile in this process.
    EXPECT_GE(grown, 0.999) << "used " << before << " -> " << during.gpus.at(0).used_gb;
    EXPECT_LT(grown, 1.05);
    const auto props = cuda::device_properties(0);
    EXPECT_NEAR(during.gpus.at(0).total_gb, static_cast<double>(props.global_memory_bytes) / kGiB,
                0.05 * static_cast<double>(props.global_memory_bytes) / kGiB);
  }
  EXPECT_LT(manager.get_memory_info().gpus.at(0).used_gb, before + 0.05);
}

TEST_F(BenchCuda, InfoListsEachGpuAsTheDeviceReportsIt) {
  const auto result = test::run_uq({"info", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto info = nlohmann::json::parse(result.out);
  ASSERT_EQ(info["gpus"].size(), static_cast<std::size_t>(cuda::cuda_device_count()));
  const auto text = test::run_uq({"info"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  for (int device = 0; device < cuda::cuda_device_count(); ++device) {
    const auto props = cuda::device_properties(device);
    const auto& gpu = info["gpus"][static_cast<std::size_t>(device)];
    EXPECT_EQ(gpu["name"], props.name);
    EXPECT_EQ(gpu["compute_capability"],
              std::to_string(props.compute_major) + "." + std::to_string(props.compute_minor));
    EXPECT_EQ(gpu["multiprocessors"], props.multiprocessors);
    EXPECT_NEAR(gpu["memory_gb"].get<double>(),
                static_cast<double>(props.global_memory_bytes) / kGiB, 1e-6);
    const auto& memory = info["memory"]["gpus"][static_cast<std::size_t>(device)];
    EXPECT_GT(memory["used_gb"].get<double>(), 0.0);
    EXPECT_LE(memory["used_gb"].get<double>(), memory["total_gb"].get<double>());
    char line[256];
    std::snprintf(line, sizeof line, "gpu %d   %s, compute %d.%d, %d SMs", device,
                  props.name.c_str(), props.compute_major, props.compute_minor,
                  props.multiprocessors);
    EXPECT_NE(text.out.find(line), std::string::npos) << text.out;
  }
}

}  // namespace
}  // namespace uq
