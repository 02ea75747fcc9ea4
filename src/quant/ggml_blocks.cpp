#include "quant/ggml_blocks.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstring>
#include <string>

#include "core/dtype.hpp"
#include "core/error.hpp"

namespace uq {
namespace {

constexpr std::int64_t kQK = 32;    // elements per block of the 32-element formats
constexpr std::int64_t kQKK = 256;  // elements per K-quant super-block
// Below this a group of weights counts as all zero (ggml's GROUP_MAX_EPS).
constexpr float kGroupMaxEps = 1e-15f;

struct TypeInfo {
  GgmlType type;
  std::string_view name;
  std::int64_t block_size;
  std::size_t type_size;
};

constexpr std::array<TypeInfo, 9> kTypes{{
    {GgmlType::F32, "F32", 1, 4},
    {GgmlType::F16, "F16", 1, 2},
    {GgmlType::Q4_0, "Q4_0", kQK, 2 + 16},
    {GgmlType::Q4_1, "Q4_1", kQK, 2 + 2 + 16},
    {GgmlType::Q5_0, "Q5_0", kQK, 2 + 4 + 16},
    {GgmlType::Q8_0, "Q8_0", kQK, 2 + 32},
    {GgmlType::Q4_K, "Q4_K", kQKK, 2 + 2 + 12 + 128},
    {GgmlType::Q6_K, "Q6_K", kQKK, 128 + 64 + 16 + 2},
    {GgmlType::BF16, "BF16", 1, 2},
}};

const TypeInfo& info(GgmlType type) {
  for (const auto& entry : kTypes) {
    if (entry.type == type) return entry;
  }
  fail("ggml type code ", static_cast<std::uint32_t>(type), " is not supported");
}

std::uint16_t load_u16(const std::byte* p) {
  std::uint16_t value;
  std::memcpy(&value, p, sizeof value);
  return value;
}
void store_u16(std::byte* p, std::uint16_t value) {
  std::memcpy(p, &value, sizeof value);
}
float load_f16(const std::byte* p) {
  return f16_to_f32(load_u16(p));
}
void store_f16(std::byte* p, float value) {
  store_u16(p, f32_to_f16(value));
}
std::uint8_t byte_at(const std::byte* p, std::size_t i) {
  return static_cast<std::uint8_t>(p[i]);
}

// Round to nearest, ties to even, as ggml's nearest_int (valid for |x| < 2^22).
int nearest_int(float value) {
  const float shifted = value + 12582912.f;
  std::int32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  return (bits & 0x007fffff) - 0x00400000;
}

// ---- 32-element formats -------------------------------------------------

// 1/d, or 0 where d is 0 or so small that 1/d overflows: x·inf would give inf
// or NaN, whose conversion to an integer code is undefined. Such a d is 0 once
// stored as f16, so the block's codes do not matter.
float reciprocal_or_zero(float d) {
  if (d == 0.0f) return 0.0f;
  const float inverse = 1.0f / d;
  return std::isfinite(inverse) ? inverse : 0.0f;
}

// The element of largest magnitude, with its sign (the first one on ties).
float signed_absmax(const float* x, std::int64_t n) {
  float amax = 0.0f, max = 0.0f;
  for (std::int64_t j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void quantize_q4_0(const float* x, std::byte* block) {
  const float d = signed_absmax(x, kQK) / -8;
  const float id = reciprocal_or_zero(d);
  store_f16(block, d);
  for (int j = 0; j < 16; ++j) {
    const int low = std::min(15, static_cast<int>(static_cast<std::int8_t>(x[j] * id + 8.5f)));
    const int high =
        std::min(15, static_cast<int>(static_cast<std::int8_t>(x[j + 16] * id + 8.5f)));
    block[2 + j] = static_cast<std::byte>(low | (high << 4));
  }
}

void dequantize_q4_0(const std::byte* block, float* y) {
  const float d = load_f16(block);
  for (int j = 0; j < 16; ++j) {
    const std::uint8_t q = byte_at(block, 2 + static_cast<std::size_t>(j));
    y[j] = static_cast<float>((q & 0x0F) - 8) * d;
    y[j + 16] = static_cast<float>((q >> 4) - 8) * d;
  }
}

void quantize_q4_1(const float* x, std::byte* block) {
  float min = x[0], max = x[0];
  for (std::int64_t j = 1; j < kQK; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
  const float d = (max - min) / 15;
  const float id = reciprocal_or_zero(d);
  store_f16(block, d);
  store_f16(block + 2, min);
  for (int j = 0; j < 16; ++j) {
    const int low = std::min(15, static_cast<int>((x[j] - min) * id + 0.5f));
    const int high = std::min(15, static_cast<int>((x[j + 16] - min) * id + 0.5f));
    block[4 + j] = static_cast<std::byte>(low | (high << 4));
  }
}

void dequantize_q4_1(const std::byte* block, float* y) {
  const float d = load_f16(block);
  const float m = load_f16(block + 2);
  for (int j = 0; j < 16; ++j) {
    const std::uint8_t q = byte_at(block, 4 + static_cast<std::size_t>(j));
    y[j] = static_cast<float>(q & 0x0F) * d + m;
    y[j + 16] = static_cast<float>(q >> 4) * d + m;
  }
}

void quantize_q5_0(const float* x, std::byte* block) {
  const float d = signed_absmax(x, kQK) / -16;
  const float id = reciprocal_or_zero(d);
  store_f16(block, d);
  std::uint32_t high_bits = 0;
  for (int j = 0; j < 16; ++j) {
    const int q0 = std::min(31, static_cast<int>(static_cast<std::int8_t>(x[j] * id + 16.5f)));
    const int q1 = std::min(31, static_cast<int>(static_cast<std::int8_t>(x[j + 16] * id + 16.5f)));
    block[6 + j] = static_cast<std::byte>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
    high_bits |= static_cast<std::uint32_t>((q0 >> 4) & 1) << j;
    high_bits |= static_cast<std::uint32_t>((q1 >> 4) & 1) << (j + 16);
  }
  std::memcpy(block + 2, &high_bits, sizeof high_bits);
}

void dequantize_q5_0(const std::byte* block, float* y) {
  const float d = load_f16(block);
  std::uint32_t high_bits;
  std::memcpy(&high_bits, block + 2, sizeof high_bits);
  for (int j = 0; j < 16; ++j) {
    const std::uint8_t q = byte_at(block, 6 + static_cast<std::size_t>(j));
    const int q0 = (q & 0x0F) | static_cast<int>(((high_bits >> j) & 1u) << 4);
    const int q1 = (q >> 4) | static_cast<int>(((high_bits >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(q0 - 16) * d;
    y[j + 16] = static_cast<float>(q1 - 16) * d;
  }
}

void quantize_q8_0(const float* x, std::byte* block) {
  float amax = 0.0f;
  for (std::int64_t j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127;
  const float id = reciprocal_or_zero(d);
  store_f16(block, d);
  for (int j = 0; j < 32; ++j) {
    block[2 + j] = static_cast<std::byte>(static_cast<std::int8_t>(std::round(x[j] * id)));
  }
}

void dequantize_q8_0(const std::byte* block, float* y) {
  const float d = load_f16(block);
  for (int j = 0; j < 32; ++j) {
    y[j] = static_cast<float>(static_cast<std::int8_t>(block[2 + j])) * d;
  }
}

// ---- Q4_K: 8 sub-blocks of 32 with 6-bit scales and mins -----------------
// Layout: f16 d, f16 dmin, scales[12], qs[128].

// Fits x ≈ scale * L + min (L in 0..nmax, min <= 0) minimising the weighted
// squared error: a first guess from the range, then a search over nearby
// inverse scales with the least-squares scale and min for each. Returns the
// scale; *negated_min receives -min. (ggml's make_qkx2_quants.)
float fit_scale_and_min(int n, int nmax, const float* x, const float* weights, std::uint8_t* levels,
                        float* negated_min, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    min = std::min(min, x[i]);
    max = std::max(max, x[i]);
    sum_w += weights[i];
    sum_x += weights[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(levels, levels + n, std::uint8_t{0});
    *negated_min = -min;
    return 0.0f;
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
    levels[i] = static_cast<std::uint8_t>(l);
    const float diff = scale * static_cast<float>(l) + min - x[i];
    best_error += weights[i] * diff * diff;
  }
  std::array<std::uint8_t, 32> trial{};
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * static_cast<float>(step) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
      trial[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(l);
      const auto lf = static_cast<float>(l);
      sum_l += weights[i] * lf;
      sum_l2 += weights[i] * lf * lf;
      sum_xl += weights[i] * lf * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det <= 0) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float error = 0;
    for (int i = 0; i < n; ++i) {
      const float diff =
          this_scale * static_cast<float>(trial[static_cast<std::size_t>(i)]) + this_min - x[i];
      error += weights[i] * diff * diff;
    }
    if (error < best_error) {
      std::copy(trial.begin(), trial.begin() + n, levels);
      best_error = error;
      scale = this_scale;
      min = this_min;
    }
  }
  *negated_min = -min;
  return scale;
}

// The 6-bit scale and min of sub-block j from the packed 12 bytes.
void q4k_scale_min(int j, const std::byte* scales, std::uint8_t* scale, std::uint8_t* min) {
  const auto q = [&](int i) { return byte_at(scales, static_cast<std::size_t>(i)); };
  if (j < 4) {
    *scale = q(j) & 63;
    *min = q(j + 4) & 63;
  } else {
    *scale = static_cast<std::uint8_t>((q(j + 4) & 0x0F) | ((q(j - 4) >> 6) << 4));
    *min = static_cast<std::uint8_t>((q(j + 4) >> 4) | ((q(j) >> 6) << 4));
  }
}

void quantize_q4_k(const float* x, std::byte* block) {
  std::array<std::uint8_t, 256> levels{};
  std::array<float, 32> weights{};
  std::array<float, 8> scales{}, mins{};
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* sub = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += sub[l] * sub[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[static_cast<std::size_t>(l)] = av_x + std::fabs(sub[l]);
    const auto js = static_cast<std::size_t>(j);
    scales[js] = fit_scale_and_min(32, 15, sub, weights.data(), levels.data() + 32 * j, &mins[js],
                                   -1.f, 0.1f, 20);
    max_scale = std::max(max_scale, scales[js]);
    max_min = std::max(max_min, mins[js]);
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  std::array<std::uint8_t, 12> packed{};
  for (std::size_t j = 0; j < 8; ++j) {
    const auto ls =
        std::min<std::uint8_t>(63, static_cast<std::uint8_t>(nearest_int(inv_scale * scales[j])));
    const auto lm =
        std::min<std::uint8_t>(63, static_cast<std::uint8_t>(nearest_int(inv_min * mins[j])));
    if (j < 4) {
      packed[j] = ls;
      packed[j + 4] = lm;
    } else {
      packed[j + 4] = static_cast<std::uint8_t>((ls & 0x0F) | ((lm & 0x0F) << 4));
      packed[j - 4] = static_cast<std::uint8_t>(packed[j - 4] | ((ls >> 4) << 6));
      packed[j] = static_cast<std::uint8_t>(packed[j] | ((lm >> 4) << 6));
    }
  }
  store_f16(block, max_scale / 63.f);
  store_f16(block + 2, max_min / 63.f);
  std::memcpy(block + 4, packed.data(), packed.size());
  // Levels again against the scales as stored (rounded to 6 bits and f16).
  for (int j = 0; j < 8; ++j) {
    std::uint8_t sc = 0, m = 0;
    q4k_scale_min(j, block + 4, &sc, &m);
    const float d = load_f16(block) * sc;
    if (d == 0.0f) continue;
    const float dm = load_f16(block + 2) * m;
    for (int i = 0; i < 32; ++i) {
      levels[static_cast<std::size_t>(32 * j + i)] =
          static_cast<std::uint8_t>(std::clamp(nearest_int((x[32 * j + i] + dm) / d), 0, 15));
    }
  }
  // Each 64 elements share 32 bytes: the first 32 in low nibbles, the next in high.
  std::byte* qs = block + 16;
  for (std::size_t j = 0; j < 256; j += 64) {
    for (std::size_t l = 0; l < 32; ++l) {
      qs[l] = static_cast<std::byte>(levels[j + l] | (levels[j + l + 32] << 4));
    }
    qs += 32;
  }
}

void dequantize_q4_k(const std::byte* block, float* y) {
  const float d = load_f16(block);
  const float dmin = load_f16(block + 2);
  const std::byte* qs = block + 16;
  for (int j = 0; j < 256; j += 64) {
    std::uint8_t sc = 0, m = 0;
    q4k_scale_min(j / 32, block + 4, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    q4k_scale_min(j / 32 + 1, block + 4, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    for (std::size_t l = 0; l < 32; ++l) {
      *y++ = d1 * static_cast<float>(byte_at(qs, l) & 0x0F) - m1;
    }
    for (std::size_t l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(byte_at(qs, l) >> 4) - m2;
    qs += 32;
  }
}

// ---- Q6_K: 16 sub-blocks of 16 with 8-bit scales --------------------------
// Layout: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], f16 d.

// Symmetric levels in -nmax..nmax-1 for n values, the scale chosen among
// nearby inverse scales to minimise the x²-weighted squared error; levels
// are stored offset by nmax. (ggml's make_qx_quants with rmse_type 1.)
float fit_symmetric_scale(int n, int nmax, const float* x, std::int8_t* levels) {
  const float max = signed_absmax(x, n);
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(levels, levels + n, std::int8_t{0});
    return 0.0f;
  }
  const auto level = [&](float iscale, int i) {
    return std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
  };
  float iscale = static_cast<float>(-nmax) / max;
  float sum_lx = 0, sum_l2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = level(iscale, i);
    levels[i] = static_cast<std::int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sum_lx += w * x[i] * static_cast<float>(l);
    sum_l2 += w * static_cast<float>(l * l);
  }
  float scale = sum_l2 != 0.0f ? sum_lx / sum_l2 : 0.0f;
  float best = scale * sum_lx;
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / max;
    sum_lx = sum_l2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = level(iscale, i);
      const float w = x[i] * x[i];
      sum_lx += w * x[i] * static_cast<float>(l);
      sum_l2 += w * static_cast<float>(l * l);
    }
    if (sum_l2 > 0 && sum_lx * sum_lx > best * sum_l2) {
      for (int i = 0; i < n; ++i) levels[i] = static_cast<std::int8_t>(level(iscale, i) + nmax);
      scale = sum_lx / sum_l2;
      best = scale * sum_lx;
    }
  }
  return scale;
}

void quantize_q6_k(const float* x, std::byte* block) {
  std::array<std::int8_t, 256> levels{};
  std::array<float, 16> scales{};
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < 16; ++ib) {
    const float scale = fit_symmetric_scale(16, 32, x + 16 * ib, levels.data() + 16 * ib);
    scales[static_cast<std::size_t>(ib)] = scale;
    if (std::fabs(scale) > max_abs_scale) {
      max_abs_scale = std::fabs(scale);
      max_scale = scale;
    }
  }
  std::memset(block, 0, ggml_type_size(GgmlType::Q6_K));
  if (max_abs_scale < kGroupMaxEps) return;  // all zero: d = 0
  std::byte* ql = block;
  std::byte* qh = block + 128;
  std::byte* block_scales = block + 192;
  const float iscale = -128.f / max_scale;
  store_f16(block + 208, 1 / iscale);
  for (std::size_t ib = 0; ib < 16; ++ib) {
    block_scales[ib] = static_cast<std::byte>(
        static_cast<std::int8_t>(std::min(127, nearest_int(iscale * scales[ib]))));
  }
  for (int j = 0; j < 16; ++j) {
    const float d =
        load_f16(block + 208) * static_cast<float>(static_cast<std::int8_t>(block_scales[j]));
    if (d == 0.0f) continue;
    for (int i = 0; i < 16; ++i) {
      const int l = std::clamp(nearest_int(x[16 * j + i] / d), -32, 31);
      levels[static_cast<std::size_t>(16 * j + i)] = static_cast<std::int8_t>(l + 32);
    }
  }
  // Each 128 elements: 4 runs of 32 share ql[64] (low nibbles) and qh[32] (2 bits each).
  for (std::size_t j = 0; j < 256; j += 128) {
    const auto level = [&](std::size_t i) { return static_cast<std::uint8_t>(levels[j + i]); };
    for (std::size_t l = 0; l < 32; ++l) {
      ql[l] = static_cast<std::byte>((level(l) & 0x0F) | ((level(l + 64) & 0x0F) << 4));
      ql[l + 32] = static_cast<std::byte>((level(l + 32) & 0x0F) | ((level(l + 96) & 0x0F) << 4));
      qh[l] = static_cast<std::byte>((level(l) >> 4) | ((level(l + 32) >> 4) << 2) |
                                     ((level(l + 64) >> 4) << 4) | ((level(l + 96) >> 4) << 6));
    }
    ql += 64;
    qh += 32;
  }
}

void dequantize_q6_k(const std::byte* block, float* y) {
  const float d = load_f16(block + 208);
  const std::byte* ql = block;
  const std::byte* qh = block + 128;
  const std::byte* scales = block + 192;
  for (int n = 0; n < 256; n += 128) {
    std::array<float, 8> scale{};  // d * sub-block scale, as ggml multiplies
    for (std::size_t i = 0; i < 8; ++i) {
      scale[i] = d * static_cast<float>(static_cast<std::int8_t>(scales[i]));
    }
    // Elements l, l+32, l+64, l+96 share qh[l]; sub-block scales change every 16.
    for (std::size_t half = 0; half < 2; ++half) {
      for (std::size_t l = 16 * half; l < 16 * half + 16; ++l) {
        const int high = byte_at(qh, l);
        const int q1 = ((byte_at(ql, l) & 0x0F) | (((high >> 0) & 3) << 4)) - 32;
        const int q2 = ((byte_at(ql, l + 32) & 0x0F) | (((high >> 2) & 3) << 4)) - 32;
        const int q3 = ((byte_at(ql, l) >> 4) | (((high >> 4) & 3) << 4)) - 32;
        const int q4 = ((byte_at(ql, l + 32) >> 4) | (((high >> 6) & 3) << 4)) - 32;
        y[l] = scale[half] * static_cast<float>(q1);
        y[l + 32] = scale[half + 2] * static_cast<float>(q2);
        y[l + 64] = scale[half + 4] * static_cast<float>(q3);
        y[l + 96] = scale[half + 6] * static_cast<float>(q4);
      }
    }
    y += 128;
    ql += 64;
    qh += 32;
    scales += 8;
  }
}

// Eight independent partial sums (n a multiple of 8): the compiler keeps
// them in one vector register without reassociating a single sum.
float dot_lanes(const float* a, const float* b, std::int64_t n) {
  std::array<float, 8> lanes{};
  for (std::int64_t i = 0; i < n; i += 8) {
    for (std::size_t k = 0; k < 8; ++k)
      lanes[k] += a[i + static_cast<std::int64_t>(k)] * b[i + static_cast<std::int64_t>(k)];
  }
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
         ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// sum over blocks of dot(dequantized block, x): each block is unpacked into
// registers/L1 by the inlined Dequantize, never the whole row.
template <void (*Dequantize)(const std::byte*, float*), std::int64_t Block>
float dot_blocks(GgmlType type, const std::byte* blocks, const float* x, std::int64_t count) {
  const std::size_t block_bytes = ggml_type_size(type);
  alignas(32) std::array<float, Block> values{};
  float sum = 0.0f;
  for (std::int64_t done = 0; done < count; done += Block) {
    Dequantize(blocks, values.data());
    blocks += block_bytes;
    sum += dot_lanes(values.data(), x + done, Block);
  }
  return sum;
}

using BlockQuantizer = void (*)(const float*, std::byte*);
using BlockDequantizer = void (*)(const std::byte*, float*);

BlockQuantizer block_quantizer(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0:
      return quantize_q4_0;
    case GgmlType::Q4_1:
      return quantize_q4_1;
    case GgmlType::Q5_0:
      return quantize_q5_0;
    case GgmlType::Q8_0:
      return quantize_q8_0;
    case GgmlType::Q4_K:
      return quantize_q4_k;
    case GgmlType::Q6_K:
      return quantize_q6_k;
    default:
      return nullptr;
  }
}

BlockDequantizer block_dequantizer(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0:
      return dequantize_q4_0;
    case GgmlType::Q4_1:
      return dequantize_q4_1;
    case GgmlType::Q5_0:
      return dequantize_q5_0;
    case GgmlType::Q8_0:
      return dequantize_q8_0;
    case GgmlType::Q4_K:
      return dequantize_q4_k;
    case GgmlType::Q6_K:
      return dequantize_q6_k;
    default:
      return nullptr;
  }
}

DType element_dtype(GgmlType type) {
  switch (type) {
    case GgmlType::F16:
      return DType::F16;
    case GgmlType::BF16:
      return DType::BF16;
    default:
      return DType::F32;
  }
}

void check_whole_blocks(GgmlType type, std::int64_t count) {
  if (count < 0 || count % ggml_block_size(type) != 0) {
    fail("ggml type ", ggml_type_name(type), ": ", count,
         " elements is not a whole number of blocks of ", ggml_block_size(type));
  }
}

}  // namespace

std::optional<GgmlType> ggml_type_from_code(std::uint32_t code) {
  for (const auto& entry : kTypes) {
    if (static_cast<std::uint32_t>(entry.type) == code) return entry.type;
  }
  return std::nullopt;
}

std::optional<GgmlType> parse_ggml_type(std::string_view name) {
  std::string upper(name);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const auto& entry : kTypes) {
    if (entry.name == upper) return entry.type;
  }
  return std::nullopt;
}

std::string_view ggml_type_name(GgmlType type) {
  return info(type).name;
}
std::optional<DType> ggml_element_dtype(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
      return DType::F32;
    case GgmlType::F16:
      return DType::F16;
    case GgmlType::BF16:
      return DType::BF16;
    default:
      return std::nullopt;
  }
}
std::int64_t ggml_block_size(GgmlType type) {
  return info(type).block_size;
}
std::size_t ggml_type_size(GgmlType type) {
  return info(type).type_size;
}

std::size_t ggml_row_bytes(GgmlType type, std::int64_t elements) {
  check_whole_blocks(type, elements);
  return static_cast<std::size_t>(elements / ggml_block_size(type)) * ggml_type_size(type);
}

void ggml_quantize_row(GgmlType type, const float* x, std::int64_t count, std::byte* out) {
  check_whole_blocks(type, count);
  if (const auto quantize = block_quantizer(type)) {
    const std::int64_t block = ggml_block_size(type);
    const std::size_t size = ggml_type_size(type);
    for (std::int64_t b = 0; b < count / block; ++b) {
      quantize(x + b * block, out + static_cast<std::size_t>(b) * size);
    }
    return;
  }
  convert_from_f32(x, static_cast<std::size_t>(count), element_dtype(type), out);
}

void ggml_dequantize_row(GgmlType type, const std::byte* blocks, std::int64_t count, float* out) {
  check_whole_blocks(type, count);
  if (const auto dequantize = block_dequantizer(type)) {
    const std::int64_t block = ggml_block_size(type);
    const std::size_t size = ggml_type_size(type);
    for (std::int64_t b = 0; b < count / block; ++b) {
      dequantize(blocks + static_cast<std::size_t>(b) * size, out + b * block);
    }
    return;
  }
  convert_to_f32(element_dtype(type), blocks, static_cast<std::size_t>(count), out);
}

float ggml_dot_row(GgmlType type, const std::byte* blocks, const float* x, std::int64_t count) {
  check_whole_blocks(type, count);
  switch (type) {
    case GgmlType::Q4_0:
      return dot_blocks<dequantize_q4_0, kQK>(type, blocks, x, count);
    case GgmlType::Q4_1:
      return dot_blocks<dequantize_q4_1, kQK>(type, blocks, x, count);
    case GgmlType::Q5_0:
      return dot_blocks<dequantize_q5_0, kQK>(type, blocks, x, count);
    case GgmlType::Q8_0:
      return dot_blocks<dequantize_q8_0, kQK>(type, blocks, x, count);
    case GgmlType::Q4_K:
      return dot_blocks<dequantize_q4_k, kQKK>(type, blocks, x, count);
    case GgmlType::Q6_K:
      return dot_blocks<dequantize_q6_k, kQKK>(type, blocks, x, count);
    default:
      break;
  }
  // Element types: a chunk at a time in float.
  constexpr std::int64_t kChunk = 256;
  alignas(32) std::array<float, kChunk> values{};
  const std::size_t element_bytes = ggml_type_size(type);
  float sum = 0.0f;
  for (std::int64_t done = 0; done < count; done += kChunk) {
    const std::int64_t n = std::min(kChunk, count - done);
    convert_to_f32(element_dtype(type), blocks + static_cast<std::size_t>(done) * element_bytes,
                   static_cast<std::size_t>(n), values.data());
    for (std::int64_t i = 0; i < n; ++i) sum += values[static_cast<std::size_t>(i)] * x[done + i];
  }
  return sum;
}

}  // namespace uq
