#pragma once
// Activation rows quantized to int8 per block of 32 values, as llama.cpp's
// Q8_0: d = max|x| / 127, q = round(x / d) (ties to even). The integer-dot
// GEMV multiplies these with the weight codes; each block of 32 is stored in
// the order in which that GEMV unpacks 32 codes of a `bits`-wide row, so the
// kernel needs no shuffles to line codes and activations up.
#include <cstdint>
#include <vector>

namespace uq::cpu {

inline constexpr int kActivationBlock = 32;

struct Int8Activations {
  std::int64_t rows = 0;
  std::int64_t in = 0;
  std::vector<std::int8_t> q;  // [rows, in], blocks permuted by activation_lane
  std::vector<float> d;        // [rows, in / 32]: the step of each block
  std::vector<float> dq_sum;   // [rows, in / 32]: d · Σq of each block
};

// Where code `index` (0..31) of a block sits once a `bits`-wide block has been
// unpacked into 32 byte lanes (identity for widths without a special unpack).
int activation_lane(int bits, int index);

// Quantizes x [rows, in] (in a multiple of 32) for a weight of `bits` bits.
Int8Activations quantize_activations(const float* x, std::int64_t rows, std::int64_t in, int bits);

}  // namespace uq::cpu
