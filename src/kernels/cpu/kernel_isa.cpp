#include "kernels/cpu/affine_matrix.hpp"

#include "core/cpu_features.hpp"

namespace uq::cpu {

KernelIsa best_kernel_isa() {
  static const KernelIsa isa =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c()
          ? KernelIsa::Avx2
          : KernelIsa::Scalar;
  return isa;
}

}  // namespace uq::cpu
