#include "kernels/cpu/int8_activations.hpp"

#include <algorithm>
#include <cmath>

namespace uq::cpu {

int activation_lane(int bits, int index) {
  switch (bits) {
    case 2:  // byte k holds codes 4k..4k+3; lane 8j + k receives code 4k + j
      return 8 * (index % 4) + index / 4;
    case 4:  // low nibbles (even codes) fill lanes 0..15, high nibbles 16..31
      return index % 2 * 16 + index / 2;
    default:
      return index;
  }
}

Int8Activations quantize_activations(const float* x, std::int64_t rows, std::int64_t in, int bits) {
  const std::int64_t blocks = in / kActivationBlock;
  Int8Activations a{rows, in, std::vector<std::int8_t>(static_cast<std::size_t>(rows * in)),
                    std::vector<float>(static_cast<std::size_t>(rows * blocks)),
                    std::vector<float>(static_cast<std::size_t>(rows * blocks))};
  int lane[kActivationBlock];
  for (int i = 0; i < kActivationBlock; ++i) lane[i] = activation_lane(bits, i);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t b = 0; b < blocks; ++b) {
      const float* src = x + r * in + b * kActivationBlock;
      std::int8_t* dst = a.q.data() + r * in + b * kActivationBlock;
      float amax = 0.0f;
      for (int i = 0; i < kActivationBlock; ++i) amax = std::max(amax, std::abs(src[i]));
      const float d = amax / 127.0f;
      const float inverse = d > 0.0f ? 1.0f / d : 0.0f;
      int sum = 0;
      for (int i = 0; i < kActivationBlock; ++i) {
        // x·(1/d) may exceed 127 by an ulp; the clamp keeps it a valid int8.
        const float q = std::clamp(std::nearbyint(src[i] * inverse), -127.0f, 127.0f);
        dst[lane[i]] = static_cast<std::int8_t>(q);
        sum += static_cast<int>(q);
      }
      a.d[static_cast<std::size_t>(r * blocks + b)] = d;
      a.dq_sum[static_cast<std::size_t>(r * blocks + b)] = d * static_cast<float>(sum);
    }
  }
  return a;
}

}  // namespace uq::cpu
