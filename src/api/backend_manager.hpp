#pragma once
// BackendManager: what this build can do on this machine (devices, backends
// and what each supports) and how much memory is in use. `uq info` prints it;
// compare_backends reads memory through it.
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace uq {

struct CpuInfo {
  std::string model;  // "model name" of /proc/cpuinfo
  int cores = 0;      // physical cores
  int threads = 0;    // hardware threads
  std::string simd;   // best vector level: "AVX-512", "AVX2+FMA", "AVX", "SSE4.2", "none"
  bool avx2 = false, fma = false, f16c = false, avx512f = false;
};

struct GpuInfo {
  int index = 0;
  std::string name;
  int compute_major = 0, compute_minor = 0;
  double memory_gb = 0.0;
  int multiprocessors = 0;
};

struct BackendCapabilities {
  std::string name, format, layout;
  std::vector<int> bits;
  std::vector<int> group_sizes;  // empty: not configurable
  bool calibration = false;      // calibrated methods (gptq/awq) usable with it
  bool lora = false;             // LoRA fine-tuning on top of it
  // Where its models run: "cpu", plus "cuda" when this machine has a GPU and the model it writes
  // at some of its bits has a CUDA kernel for every weight (those bits in cuda_bits).
  std::vector<std::string> devices;
  std::vector<int> cuda_bits;
};

struct GpuMemory {
  int index = 0;
  double used_gb = 0.0, total_gb = 0.0;
};

// Every size in GiB (2^30 bytes), as the names keep the customary "gb".
struct MemoryInfo {
  double total_gb = 0.0;         // MemTotal of /proc/meminfo
  double available_gb = 0.0;     // MemAvailable
  double used_gb = 0.0;          // total - available
  double process_rss_gb = 0.0;   // VmRSS of /proc/self/status
  double process_peak_gb = 0.0;  // VmHWM: the process's peak resident set
  std::vector<GpuMemory> gpus;   // from the driver (cudaMemGetInfo) when built with CUDA
};

class BackendManager {
 public:
  // The one instance; built on first use, safe to call from any thread.
  static BackendManager& get_instance();

  const CpuInfo& cpu() const { return cpu_; }
  const std::vector<GpuInfo>& gpus() const { return gpus_; }
  const std::vector<BackendCapabilities>& backends() const { return backends_; }
  // Read afresh on each call. Throws uq::Error naming the /proc file it could not read.
  MemoryInfo get_memory_info() const;

 private:
  BackendManager();

  CpuInfo cpu_;
  std::vector<GpuInfo> gpus_;
  std::vector<BackendCapabilities> backends_;
  mutable std::mutex driver_mutex_;  // serializes driver queries
};

// Process memory in bytes, from /proc/self/status.
std::int64_t process_rss_bytes();
std::int64_t process_peak_bytes();
// Restarts the peak (VmHWM) at the current resident set, so that the next
// process_peak_bytes() is the peak of what follows; false where the kernel refuses.
bool reset_process_peak();

}  // namespace uq
