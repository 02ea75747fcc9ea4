#pragma once
// Sum and max over the 32 lanes of a warp (butterfly shuffles: every lane gets the result), the
// reductions the decoder, format and training kernels share.
#include <cuda_runtime.h>

namespace uq::cuda {

__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = 16; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  return value;
}

__device__ __forceinline__ float warp_max(float value) {
  for (int offset = 16; offset > 0; offset /= 2) {
    value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  }
  return value;
}

}  // namespace uq::cuda
