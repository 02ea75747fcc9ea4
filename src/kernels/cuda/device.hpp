#pragma once
// Which NVIDIA GPUs exist and what they are: read off the device, never hard-coded.
#include <cstddef>
#include <string>

namespace uq::cuda {

// Number of usable CUDA devices; 0 (never an error) when there is no driver or no GPU.
int cuda_device_count();

struct DeviceProperties {
  std::string name;
  int compute_major = 0;
  int compute_minor = 0;
  int multiprocessors = 0;
  std::size_t global_memory_bytes = 0;
  std::size_t l2_cache_bytes = 0;
  std::size_t shared_memory_per_block_optin = 0;
  int memory_bus_bits = 0;
};

DeviceProperties device_properties(int device);

// Streaming multiprocessors of the current device (cudaGetDevice), queried once per device:
// kernels size their grids with it on every launch.
int current_device_multiprocessors();
// Shared memory one block may opt in to on the current device (bytes), queried once per device.
std::size_t current_device_shared_memory_optin();

}  // namespace uq::cuda
