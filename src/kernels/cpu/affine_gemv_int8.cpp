#include "kernels/cpu/affine_gemv_int8.hpp"

#include "core/environment_switch.hpp"
#include "core/thread_pool.hpp"
#include "kernels/cpu/affine_kernels.hpp"

namespace uq::cpu {
namespace {

EnvironmentSwitch& exact_gemv_switch() {
  static EnvironmentSwitch on("UQ_EXACT_GEMV", false);
  return on;
}

}  // namespace

DotIsa best_dot_isa() {
  static const DotIsa isa =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni")
          ? DotIsa::Avx512Vnni
          : DotIsa::Avx2;
  return isa;
}

bool int8_gemv_supports(const AffineMatrix& w) {
  return best_kernel_isa() == KernelIsa::Avx2 && (w.bits == 2 || w.bits == 4 || w.bits == 8) &&
         w.group_size % kActivationBlock == 0;
}

void affine_gemv_int8(const AffineMatrix& w, const float* x, std::int64_t rows, float* y,
                      DotIsa isa) {
  const auto activations = quantize_activations(x, rows, w.in, w.bits, w.group_size);
  const auto xsum = detail::group_sums(w, x, rows);
  auto* kernel =
      isa == DotIsa::Avx512Vnni ? &detail::gemv_int8_rows_vnni : &detail::gemv_int8_rows_avx2;
  parallel_for(0, w.out, items_per_task(w.in * rows), [&](std::int64_t first, std::int64_t last) {
    kernel(w, activations, xsum.data(), first, last, y);
  });
}

bool exact_gemv() {
  return exact_gemv_switch().on();
}

void set_exact_gemv(bool exact) {
  exact_gemv_switch().set(exact);
}

}  // namespace uq::cpu
