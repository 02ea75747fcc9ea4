#pragma once
// Activation rows quantized to int8 per block of 32 values, as llama.cpp's
// Q8_0: d = max|x| / 127, q = round(x / d) (ties to even). The integer-dot
// GEMV multiplies these with the weight codes; each block of 32 is stored in
// the order in which that GEMV unpacks 32 codes of a `bits`-wide row, so the
// kernel needs no shuffles to line codes and activations up; for 4-bit
// weights with groups of 64k, pairs of blocks are interleaved so one 32-byte
// load of codes feeds two blocks.
#include <cstdint>
#include <vector>

namespace uq::cpu {

inline constexpr int kActivationBlock = 32;

struct Int8Activations {
  std::int64_t rows = 0;
  std::int64_t in = 0;
  bool paired = false;         // 4-bit pair layout (see activation_position)
  std::vector<std::int8_t> q;  // [rows, in], permuted by activation_position
  std::vector<float> d;        // [rows, in / 32]: the step of each block
  std::vector<float> dq_sum;   // [rows, in / 32]: d · Σq of each block
};

// Whether activations for this weight use the 4-bit pair layout.
bool paired_activation_layout(int bits, int group_size);

// Where element `index` of a row sits in Int8Activations::q: the byte lane
// that receives its weight code when the kernel unpacks codes of `bits` bits
// (identity for widths without a special unpack).
std::int64_t activation_position(int bits, int group_size, std::int64_t index);

// Quantizes x [rows, in] (in a multiple of group_size, itself a multiple of
// 32) for a weight of `bits` bits and `group_size`.
Int8Activations quantize_activations(const float* x, std::int64_t rows, std::int64_t in, int bits,
                                     int group_size);

}  // namespace uq::cpu
