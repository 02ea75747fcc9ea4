#include "kernels/cuda/device.hpp"

#include <map>
#include <mutex>
#include <utility>

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

namespace {

// An attribute of the current device (cudaGetDevice), queried once per device and attribute.
int current_device_attribute(cudaDeviceAttr attribute) {
  int device = 0;
  UQ_CUDA_CHECK(cudaGetDevice(&device));
  static std::mutex mutex;
  static std::map<std::pair<int, int>, int> values;
  const std::lock_guard lock(mutex);
  const std::pair key{device, static_cast<int>(attribute)};
  const auto known = values.find(key);
  if (known != values.end()) return known->second;
  int value = 0;
  UQ_CUDA_CHECK(cudaDeviceGetAttribute(&value, attribute, device));
  values.emplace(key, value);
  return value;
}

}  // namespace

int current_device_multiprocessors() {
  return current_device_attribute(cudaDevAttrMultiProcessorCount);
}

std::size_t current_device_shared_memory_optin() {
  return static_cast<std::size_t>(
      current_device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin));
}

}  // namespace uq::cuda
