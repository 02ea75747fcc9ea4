#include "kernels/cuda/pdl_launch.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace uq::cuda {
namespace {

std::atomic<bool>& enabled_flag() {
  static std::atomic<bool> flag{[] {
    const char* value = std::getenv("UQ_CUDA_PDL");
    return value == nullptr || std::strcmp(value, "0") != 0;
  }()};
  return flag;
}

}  // namespace

bool programmatic_launch_enabled() {
  return enabled_flag().load(std::memory_order_relaxed);
}

void set_programmatic_launch_enabled(bool enabled) {
  enabled_flag().store(enabled, std::memory_order_relaxed);
}

}  // namespace uq::cuda
