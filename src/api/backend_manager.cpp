#include "api/backend_manager.hpp"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "api/backend.hpp"
#include "api/config.hpp"
#include "core/cpu_features.hpp"
#include "core/error.hpp"

#ifdef UQ_HAVE_CUDA
#include <cuda_runtime.h>

#include "api/quantize.hpp"
#include "core/progress.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_model.hpp"
#include "kernels/cuda/device.hpp"
#include "model/decoder.hpp"
#include "model/synthetic_model.hpp"
#endif

namespace uq {
namespace {

constexpr double kBytesPerGb = 1024.0 * 1024.0 * 1024.0;

// "Key:   123 kB" lines of a /proc file → bytes of `key`, or -1 when absent.
std::int64_t proc_kib_field(const char* file, const std::string& key) {
  std::ifstream in(file);
  if (!in) fail("cannot read '", file, "'");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) != 0 || line.size() <= key.size() ||
        line[key.size()] != ':') {
      continue;
    }
    std::istringstream value(line.substr(key.size() + 1));
    std::int64_t kib = 0;
    if (!(value >> kib)) fail("'", file, "': unreadable value of ", key);
    return kib * 1024;
  }
  return -1;
}

std::int64_t required_kib_field(const char* file, const std::string& key) {
  const std::int64_t bytes = proc_kib_field(file, key);
  if (bytes < 0) fail("'", file, "' has no ", key, " line");
  return bytes;
}

CpuInfo detect_cpu() {
  CpuInfo cpu;
  cpu.threads = static_cast<int>(std::thread::hardware_concurrency());
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  std::set<std::pair<std::string, std::string>> physical_cores;  // (physical id, core id)
  std::string physical_id;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name" && cpu.model.empty()) cpu.model = value;
    if (key == "physical id") physical_id = value;
    if (key == "core id") physical_cores.emplace(physical_id, value);
  }
  if (cpu.model.empty()) cpu.model = "unknown";
  // Containers may hide the topology lines; then every hardware thread counts.
  cpu.cores = physical_cores.empty() ? cpu.threads : static_cast<int>(physical_cores.size());
  __builtin_cpu_init();
  cpu.avx2 = __builtin_cpu_supports("avx2");
  cpu.fma = __builtin_cpu_supports("fma");
  cpu.avx512f = __builtin_cpu_supports("avx512f");
  cpu.f16c = cpu_has_f16c();
  if (cpu.avx512f) {
    cpu.simd = "AVX-512";
  } else if (cpu.avx2 && cpu.fma) {
    cpu.simd = "AVX2+FMA";
  } else if (__builtin_cpu_supports("avx")) {
    cpu.simd = "AVX";
  } else if (__builtin_cpu_supports("sse4.2")) {
    cpu.simd = "SSE4.2";
  } else {
    cpu.simd = "none";
  }
  return cpu;
}

std::vector<GpuInfo> detect_gpus() {
  std::vector<GpuInfo> gpus;
#ifdef UQ_HAVE_CUDA
  for (int device = 0; device < cuda::cuda_device_count(); ++device) {
    const cuda::DeviceProperties props = cuda::device_properties(device);
    gpus.push_back({device, props.name, props.compute_major, props.compute_minor,
                    static_cast<double>(props.global_memory_bytes) / kBytesPerGb,
                    props.multiprocessors});
  }
#endif
  return gpus;
}

#ifdef UQ_HAVE_CUDA
// The bits at which `spec`'s quantized models run on the GPU: each of its bits is tried on a
// one-layer model of the tiny preset's shape (random bf16 weights, quantized in milliseconds)
// and the result asked of cuda::cuda_unsupported_reason, which reads the weight formats only.
std::vector<int> probe_cuda_bits(const BackendSpec& spec, Progress& progress) {
  SyntheticModelOptions synthetic;
  synthetic.layers = 1;
  static const std::shared_ptr<const Model> model = make_synthetic_model(synthetic);
  std::vector<int> bits;
  for (int candidate : spec.bits) {
    UnifiedQuantizationConfig config;
    config.backend = spec.name;
    config.bits = candidate;
    if (!spec.group_sizes.empty() && std::find(spec.group_sizes.begin(), spec.group_sizes.end(),
                                               config.group_size) == spec.group_sizes.end()) {
      config.group_size = spec.group_sizes.front();
    }
    try {
      const auto quantized = quantize_model(model, config).first;
      if (!cuda::cuda_unsupported_reason(*quantized)) bits.push_back(candidate);
    } catch (const Error&) {
      // A combination the backend refuses runs nowhere: not listed.
    }
    progress.advance(1, spec.name);
  }
  return bits;
}
#endif

// Whether the configuration check accepts a calibrated method (gptq) with this backend: the
// rule lives in validate() alone.
bool accepts_calibration(const std::string& backend) {
  UnifiedQuantizationConfig config;
  config.backend = backend;
  config.method = "gptq";
  config.calibration_data = "calibration.txt";  // validate() does not open it
  try {
    validate(config);
    return true;
  } catch (const Error&) {
    return false;
  }
}

std::vector<BackendCapabilities> describe_backends([[maybe_unused]] bool have_gpu) {
  std::vector<BackendCapabilities> list;
  for (const auto& backend : uq::backends()) {
    const BackendSpec& spec = backend->spec();
    // LoRA trains on any Weight type.
    list.push_back({spec.name,
                    spec.format,
                    spec.layout,
                    spec.bits,
                    spec.group_sizes,
                    accepts_calibration(spec.name),
                    true,
                    {"cpu"},
                    {}});
  }
#ifdef UQ_HAVE_CUDA
  if (have_gpu) {
    std::int64_t probes = 0;
    for (const auto& capabilities : list) probes += std::ssize(capabilities.bits);
    // The quantizations inside this bar stay silent.
    Progress progress("probing CUDA kernels", probes);
    for (std::size_t i = 0; i < list.size(); ++i) {
      list[i].cuda_bits = probe_cuda_bits(uq::backends()[i]->spec(), progress);
      if (!list[i].cuda_bits.empty()) list[i].devices.emplace_back("cuda");
    }
  }
#endif
  return list;
}

}  // namespace

BackendManager& BackendManager::get_instance() {
  static BackendManager instance;  // C++ guarantees one thread-safe initialization
  return instance;
}

BackendManager::BackendManager()
    : cpu_(detect_cpu()), gpus_(detect_gpus()), backends_(describe_backends(!gpus_.empty())) {}

MemoryInfo BackendManager::get_memory_info() const {
  MemoryInfo info;
#ifdef UQ_HAVE_CUDA
  // The driver first: its first call creates a context (~100 MB of this
  // process), which the /proc numbers read below must already include.
  if (!gpus_.empty()) {
    const std::lock_guard lock(driver_mutex_);
    int previous = 0;
    UQ_CUDA_CHECK(cudaGetDevice(&previous));
    for (const GpuInfo& gpu : gpus_) {
      UQ_CUDA_CHECK(cudaSetDevice(gpu.index));
      std::size_t free_bytes = 0, total_bytes = 0;
      UQ_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
      info.gpus.push_back({gpu.index, static_cast<double>(total_bytes - free_bytes) / kBytesPerGb,
                           static_cast<double>(total_bytes) / kBytesPerGb});
    }
    UQ_CUDA_CHECK(cudaSetDevice(previous));
  }
#endif
  const auto total = required_kib_field("/proc/meminfo", "MemTotal");
  const auto available = required_kib_field("/proc/meminfo", "MemAvailable");
  info.total_gb = static_cast<double>(total) / kBytesPerGb;
  info.available_gb = static_cast<double>(available) / kBytesPerGb;
  info.used_gb = static_cast<double>(total - available) / kBytesPerGb;
  info.process_rss_gb = static_cast<double>(process_rss_bytes()) / kBytesPerGb;
  info.process_peak_gb = static_cast<double>(process_peak_bytes()) / kBytesPerGb;
  return info;
}

std::int64_t process_rss_bytes() {
  return required_kib_field("/proc/self/status", "VmRSS");
}

std::int64_t process_peak_bytes() {
  return required_kib_field("/proc/self/status", "VmHWM");
}

bool reset_process_peak() {
  // Linux: writing 5 to clear_refs resets the peak resident set size.
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";
  clear_refs.flush();
  return static_cast<bool>(clear_refs);
}

}  // namespace uq
