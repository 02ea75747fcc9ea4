// `uq info [--json]`: devices, backends and memory of this build on this machine.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "api/backend_manager.hpp"
#include "commands.hpp"
#include "core/thread_pool.hpp"

namespace uq::cli {
namespace {

std::string join(const std::vector<int>& values) {
  std::string text;
  for (int value : values) text += (text.empty() ? "" : ",") + std::to_string(value);
  return text.empty() ? "-" : text;
}

nlohmann::json info_json(const BackendManager& manager, const MemoryInfo& memory) {
  const CpuInfo& cpu = manager.cpu();
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& gpu : manager.gpus()) {
    gpus.push_back({{"index", gpu.index},
                    {"name", gpu.name},
                    {"compute_capability",
                     std::to_string(gpu.compute_major) + "." + std::to_string(gpu.compute_minor)},
                    {"memory_gb", gpu.memory_gb},
                    {"multiprocessors", gpu.multiprocessors}});
  }
  nlohmann::json backends = nlohmann::json::array();
  for (const auto& backend : manager.backends()) {
    backends.push_back({{"name", backend.name},
                        {"format", backend.format},
                        {"layout", backend.layout},
                        {"bits", backend.bits},
                        {"group_sizes", backend.group_sizes},
                        {"calibration", backend.calibration},
                        {"lora", backend.lora},
                        {"devices", backend.devices},
                        {"cuda_bits", backend.cuda_bits}});
  }
  nlohmann::json gpu_memory = nlohmann::json::array();
  for (const auto& gpu : memory.gpus) {
    gpu_memory.push_back(
        {{"index", gpu.index}, {"used_gb", gpu.used_gb}, {"total_gb", gpu.total_gb}});
  }
  return {{"version", "0.1.0"},
          {"cpu",
           {{"model", cpu.model},
            {"cores", cpu.cores},
            {"hardware_threads", cpu.threads},
            {"threads", num_threads()},
            {"simd", cpu.simd},
            {"avx2", cpu.avx2},
            {"fma", cpu.fma},
            {"f16c", cpu.f16c},
            {"avx512f", cpu.avx512f}}},
          {"gpus", gpus},
          {"backends", backends},
          {"memory",
           {{"total_gb", memory.total_gb},
            {"used_gb", memory.used_gb},
            {"available_gb", memory.available_gb},
            {"process_rss_gb", memory.process_rss_gb},
            {"process_peak_gb", memory.process_peak_gb},
            {"gpus", gpu_memory}}}};
}

void print_info(const BackendManager& manager, const MemoryInfo& memory) {
  const CpuInfo& cpu = manager.cpu();
  std::printf("unified_quantization 0.1.0\n\n");
  std::printf("cpu     %s\n        %d cores, %d hardware threads (using %d), SIMD %s%s\n",
              cpu.model.c_str(), cpu.cores, cpu.threads, num_threads(), cpu.simd.c_str(),
              cpu.f16c ? " F16C" : "");
  if (manager.gpus().empty()) std::printf("gpus    none (or built without CUDA)\n");
  for (const auto& gpu : manager.gpus()) {
    std::printf("gpu %d   %s, compute %d.%d, %d SMs, %.1f GiB\n", gpu.index, gpu.name.c_str(),
                gpu.compute_major, gpu.compute_minor, gpu.multiprocessors, gpu.memory_gb);
  }
  int groups_width = 6;  // bnb's block sizes run long: the column takes the widest entry
  for (const auto& backend : manager.backends()) {
    groups_width = std::max(groups_width, static_cast<int>(join(backend.group_sizes).size()));
  }
  std::printf("\n%-8s %-16s %-*s %-11s %-5s %-22s %s\n", "backend", "bits", groups_width, "groups",
              "calibration", "lora", "devices", "format / layout");
  for (const auto& backend : manager.backends()) {
    std::string devices;
    for (const auto& device : backend.devices) {
      devices += (devices.empty() ? "" : ",") + device;
      if (device == "cuda") devices += "(" + join(backend.cuda_bits) + ")";
    }
    std::printf("%-8s %-16s %-*s %-11s %-5s %-22s %s / %s\n", backend.name.c_str(),
                join(backend.bits).c_str(), groups_width, join(backend.group_sizes).c_str(),
                backend.calibration ? "yes" : "no", backend.lora ? "yes" : "no", devices.c_str(),
                backend.format.c_str(), backend.layout.c_str());
  }
  std::printf(
      "\nmemory  %.2f GiB total, %.2f used, %.2f available; this process %.3f GiB"
      " (peak %.3f)\n",
      memory.total_gb, memory.used_gb, memory.available_gb, memory.process_rss_gb,
      memory.process_peak_gb);
  for (const auto& gpu : memory.gpus) {
    std::printf("gpu %d   %.2f of %.2f GiB used\n", gpu.index, gpu.used_gb, gpu.total_gb);
  }
}

}  // namespace

void register_info(CLI::App& app) {
  auto* command = app.add_subcommand("info", "Show devices, backends and memory");
  static bool as_json = false;
  command->add_flag("--json", as_json, "Print one JSON object on stdout");
  command->callback([] {
    const BackendManager& manager = BackendManager::get_instance();
    const MemoryInfo memory = manager.get_memory_info();
    if (as_json) {
      std::printf("%s\n", info_json(manager, memory).dump().c_str());
    } else {
      print_info(manager, memory);
    }
  });
}

}  // namespace uq::cli
