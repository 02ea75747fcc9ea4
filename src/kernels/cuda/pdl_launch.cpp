#include "kernels/cuda/pdl_launch.hpp"

#include "core/environment_switch.hpp"

namespace uq::cuda {
namespace {

EnvironmentSwitch& enabled_switch() {
  static EnvironmentSwitch on("UQ_CUDA_PDL", true);
  return on;
}

}  // namespace

bool programmatic_launch_enabled() {
  return enabled_switch().on();
}

void set_programmatic_launch_enabled(bool enabled) {
  enabled_switch().set(enabled);
}

}  // namespace uq::cuda
