#pragma once
// RMSNorm as Hugging Face computes it: x * rsqrt(mean(x^2) + eps) * weight, in float32.
#include <cstdint>

namespace uq {

// Normalises each of `rows` rows of `dim` values of x into out (may alias x).
void rms_norm(const float* x, std::int64_t rows, std::int64_t dim, const float* weight, float eps,
              float* out);

}  // namespace uq
