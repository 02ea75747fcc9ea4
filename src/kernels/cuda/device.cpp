#include "kernels/cuda/device.hpp"

#include <map>
#include <mutex>

#include "core/error.hpp"
#include "kernels/cuda/cuda_check.hpp"

namespace uq::cuda {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver / no device: not an error for the caller
    return 0;
  }
  return count;
}

DeviceProperties device_properties(int device) {
  const int count = cuda_device_count();
  if (device < 0 || device >= count)
    fail("cuda: device ", device, " does not exist (", count, " CUDA devices)");
  cudaDeviceProp prop{};
  UQ_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  DeviceProperties out;
  out.name = prop.name;
  out.compute_major = prop.major;
  out.compute_minor = prop.minor;
  out.multiprocessors = prop.multiProcessorCount;
  out.global_memory_bytes = prop.totalGlobalMem;
  out.l2_cache_bytes = static_cast<std::size_t>(prop.l2CacheSize);
  out.shared_memory_per_block_optin = prop.sharedMemPerBlockOptin;
  out.memory_bus_bits = prop.memoryBusWidth;
  return out;
}

int current_device_multiprocessors() {
  int device = 0;
  UQ_CUDA_CHECK(cudaGetDevice(&device));
  static std::mutex mutex;
  static std::map<int, int> counts;
  const std::lock_guard lock(mutex);
  const auto known = counts.find(device);
  if (known != counts.end()) return known->second;
  int count = 0;
  UQ_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  counts.emplace(device, count);
  return count;
}

}  // namespace uq::cuda
