#include "kernels/cpu/int8_activations.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace uq::cpu {

bool paired_activation_layout(int bits, int group_size) {
  return bits == 4 && group_size % (2 * kActivationBlock) == 0;
}

std::int64_t activation_position(int bits, int group_size, std::int64_t index) {
  const std::int64_t k = index % kActivationBlock;
  const std::int64_t block_start = index - k;
  if (paired_activation_layout(bits, group_size)) {
    // 32 bytes of codes = blocks b, b+1: low nibbles give [b even | b+1 even],
    // high nibbles [b odd | b+1 odd].
    const std::int64_t pair_start = index - index % (2 * kActivationBlock);
    const std::int64_t second = (index - pair_start) / kActivationBlock;
    return pair_start + k % 2 * 32 + second * 16 + k / 2;
  }
  switch (bits) {
    case 2:  // byte j holds codes 4j..4j+3; lane 8i + j receives code 4j + i
      return block_start + 8 * (k % 4) + k / 4;
    case 4:  // low nibbles (even codes) fill lanes 0..15, high nibbles 16..31
      return block_start + k % 2 * 16 + k / 2;
    default:
      return index;
  }
}

Int8Activations quantize_activations(const float* x, std::int64_t rows, std::int64_t in, int bits,
                                     int group_size) {
  const std::int64_t blocks = in / kActivationBlock;
  Int8Activations a{rows,
                    in,
                    paired_activation_layout(bits, group_size),
                    std::vector<std::int8_t>(static_cast<std::size_t>(rows * in)),
                    std::vector<float>(static_cast<std::size_t>(rows * blocks)),
                    std::vector<float>(static_cast<std::size_t>(rows * blocks))};
  std::vector<std::int64_t> position(static_cast<std::size_t>(in));
  for (std::int64_t i = 0; i < in; ++i) {
    position[static_cast<std::size_t>(i)] = activation_position(bits, group_size, i);
  }
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t b = 0; b < blocks; ++b) {
      const float* src = x + r * in + b * kActivationBlock;
      std::int8_t* dst = a.q.data() + r * in;
      const std::int64_t* lane = position.data() + b * kActivationBlock;
      float amax = 0.0f;
      bool finite = true;
      for (int i = 0; i < kActivationBlock; ++i) {
        finite = finite && std::isfinite(src[i]);
        amax = std::max(amax, std::abs(src[i]));
      }
      if (!finite) {
        // NaN/Inf inputs (from NaN weights upstream) have no int8 code: the
        // block's scale becomes NaN so that its outputs are NaN, as in float.
        for (int i = 0; i < kActivationBlock; ++i) dst[lane[i]] = 0;
        a.d[static_cast<std::size_t>(r * blocks + b)] = std::numeric_limits<float>::quiet_NaN();
        a.dq_sum[static_cast<std::size_t>(r * blocks + b)] =
            std::numeric_limits<float>::quiet_NaN();
        continue;
      }
      const float d = amax / 127.0f;
      const float inverse = d > 0.0f ? 1.0f / d : 0.0f;
      // A subnormal d overflows 1/d to inf, and 0·inf is NaN (found by
      // fuzz_quantized_layout): such blocks divide instead.
      const bool divide = !std::isfinite(inverse);
      int sum = 0;
      for (int i = 0; i < kActivationBlock; ++i) {
        // x·(1/d) may exceed 127 by an ulp; the clamp keeps it a valid int8.
        const float scaled = divide ? src[i] / d : src[i] * inverse;
        const float q = std::clamp(std::nearbyint(scaled), -127.0f, 127.0f);
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
