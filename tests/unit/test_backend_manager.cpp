// BackendManager: devices and backends as this build and machine have them,
// memory figures checked against /proc read independently, and the peak
// following a large allocation.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "api/backend.hpp"
#include "api/backend_manager.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// The "Key: N kB" value of a /proc file, in GiB, parsed here independently.
double proc_gib(const char* file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream fields(line.substr(key.size() + 1));
      double kib = 0;
      fields >> kib;
      return kib * 1024.0 / kGiB;
    }
  }
  ADD_FAILURE() << file << " has no " << key;
  return 0;
}

TEST(BackendManager, OneInstanceAcrossThreads) {
  std::vector<const BackendManager*> seen(8, nullptr);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    threads.emplace_back([&seen, i] { seen[i] = &BackendManager::get_instance(); });
  }
  for (auto& thread : threads) thread.join();
  for (const auto* manager : seen) EXPECT_EQ(manager, &BackendManager::get_instance());
}

TEST(BackendManager, CpuAsThisMachineHasIt) {
  const CpuInfo& cpu = BackendManager::get_instance().cpu();
  EXPECT_EQ(cpu.threads, static_cast<int>(std::thread::hardware_concurrency()));
  EXPECT_GE(cpu.cores, 1);
  EXPECT_LE(cpu.cores, cpu.threads);
  EXPECT_FALSE(cpu.model.empty());
  EXPECT_NE(cpu.model, "unknown");
  // The library is compiled with -mavx2 -mfma -mf16c, so any machine running it has them.
  EXPECT_TRUE(cpu.avx2 && cpu.fma && cpu.f16c);
  EXPECT_EQ(cpu.simd, cpu.avx512f ? "AVX-512" : "AVX2+FMA");
}

TEST(BackendManager, ListsEveryRegisteredBackendWithItsSpec) {
  const auto& listed = BackendManager::get_instance().backends();
  ASSERT_EQ(listed.size(), backends().size());
  for (std::size_t i = 0; i < listed.size(); ++i) {
    const BackendSpec& spec = backends()[i]->spec();
    EXPECT_EQ(listed[i].name, spec.name);
    EXPECT_EQ(listed[i].bits, spec.bits);
    EXPECT_EQ(listed[i].group_sizes, spec.group_sizes);
    // GPTQ/AWQ need a group-wise integer grid: every backend but bnb's codebooks.
    EXPECT_EQ(listed[i].calibration, spec.name != "bnb") << spec.name;
    // With a GPU, tests/cuda/test_bench_cuda checks the cuda entries against uq bench.
    if (BackendManager::get_instance().gpus().empty()) {
      EXPECT_EQ(listed[i].devices, std::vector<std::string>{"cpu"});
      EXPECT_TRUE(listed[i].cuda_bits.empty());
    } else {
      EXPECT_EQ(listed[i].devices.front(), "cpu");
    }
  }
}

TEST(BackendManager, MemoryAgreesWithProcWithinFivePercent) {
  const MemoryInfo info = BackendManager::get_instance().get_memory_info();
  const double total = proc_gib("/proc/meminfo", "MemTotal");
  const double available = proc_gib("/proc/meminfo", "MemAvailable");
  const double rss = proc_gib("/proc/self/status", "VmRSS");
  const double peak = proc_gib("/proc/self/status", "VmHWM");
  EXPECT_NEAR(info.total_gb, total, 0.05 * total);
  EXPECT_NEAR(info.available_gb, available, 0.05 * available);
  EXPECT_NEAR(info.used_gb, total - available, 0.05 * (total - available));
  EXPECT_NEAR(info.process_rss_gb, rss, 0.05 * rss);
  EXPECT_NEAR(info.process_peak_gb, peak, 0.05 * peak);
  EXPECT_GT(info.total_gb, 0.1);
  EXPECT_LE(info.process_rss_gb, info.process_peak_gb + 1e-6);
  EXPECT_EQ(info.gpus.size(), BackendManager::get_instance().gpus().size());
  for (const auto& gpu : info.gpus) {
    EXPECT_GT(gpu.total_gb, 0.0);
    EXPECT_LE(gpu.used_gb, gpu.total_gb);
  }
}

// Each GPU's used/total against nvidia-smi, which asks the driver independently.
TEST(BackendManager, GpuMemoryAgreesWithNvidiaSmi) {
  const auto& manager = BackendManager::get_instance();
  if (manager.gpus().empty()) GTEST_SKIP() << "no CUDA GPU in this build or machine";
  const MemoryInfo info = manager.get_memory_info();  // creates this process's CUDA context first
  const auto smi = test::run_command({"nvidia-smi", "--query-gpu=index,memory.used,memory.total",
                                      "--format=csv,noheader,nounits"});
  ASSERT_EQ(smi.exit_code, 0) << smi.err;
  std::istringstream lines(smi.out);
  std::string line;
  std::size_t checked = 0;
  while (std::getline(lines, line)) {
    int index = 0;
    double used_mib = 0, total_mib = 0;
    char comma = 0;
    std::istringstream fields(line);
    ASSERT_TRUE(fields >> index >> comma >> used_mib >> comma >> total_mib) << line;
    ASSERT_LT(static_cast<std::size_t>(index), info.gpus.size());
    const GpuMemory& gpu = info.gpus[static_cast<std::size_t>(index)];
    const double total = total_mib / 1024.0;
    EXPECT_NEAR(gpu.total_gb, total, 0.05 * total) << line;
    // Within 5% of the card: the driver's reserved memory counts as used for one, not the other.
    EXPECT_NEAR(gpu.used_gb, used_mib / 1024.0, 0.05 * total) << line;
    EXPECT_NEAR(manager.gpus()[static_cast<std::size_t>(index)].memory_gb, total, 0.05 * total);
    ++checked;
  }
  EXPECT_EQ(checked, info.gpus.size());
}

TEST(BackendManager, PeakGrowsWithA512MiBAllocation) {
  const auto& manager = BackendManager::get_instance();
  const double before = manager.get_memory_info().process_peak_gb;
  constexpr std::size_t kBytes = std::size_t{512} << 20;
  {
    const auto block = std::make_unique<char[]>(kBytes);
    std::memset(block.get(), 1, kBytes);  // touch every page so that it is resident
    const MemoryInfo during = manager.get_memory_info();
    EXPECT_GE(during.process_rss_gb, 0.5 * 0.95);
    EXPECT_GE(during.process_peak_gb - before, 0.5 * 0.95);
    volatile char sink = block[kBytes - 1];
    (void)sink;
  }
  // Freed: the resident set falls back, the peak remembers.
  const MemoryInfo after = manager.get_memory_info();
  EXPECT_LT(after.process_rss_gb, after.process_peak_gb - 0.4);
  if (!reset_process_peak()) GTEST_SKIP() << "this kernel cannot reset the peak (clear_refs)";
  EXPECT_LT(manager.get_memory_info().process_peak_gb, after.process_peak_gb - 0.4);
}

TEST(BackendManager, InfoCommandPrintsTheSameAsJson) {
  const auto result = test::run_uq({"info", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto info = nlohmann::json::parse(result.out);
  const auto& manager = BackendManager::get_instance();
  EXPECT_EQ(info["cpu"]["model"], manager.cpu().model);
  EXPECT_EQ(info["cpu"]["simd"], manager.cpu().simd);
  EXPECT_EQ(info["gpus"].size(), manager.gpus().size());
  ASSERT_EQ(info["backends"].size(), backends().size());
  for (std::size_t i = 0; i < backends().size(); ++i) {
    EXPECT_EQ(info["backends"][i]["name"], backends()[i]->spec().name);
    EXPECT_EQ(info["backends"][i]["bits"], backends()[i]->spec().bits);
  }
  for (const char* key :
       {"total_gb", "used_gb", "available_gb", "process_rss_gb", "process_peak_gb"}) {
    EXPECT_GT(info["memory"][key].get<double>(), 0.0) << key;
  }
  const auto text = test::run_uq({"info"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find(manager.cpu().model), std::string::npos) << text.out;
  for (const auto& backend : backends()) {
    EXPECT_NE(text.out.find(backend->spec().name), std::string::npos);
  }
}

}  // namespace
}  // namespace uq
