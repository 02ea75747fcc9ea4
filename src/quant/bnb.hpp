#pragma once
// bitsandbytes numerics, matching bitsandbytes 0.50 on the CPU code for code:
//  - 4-bit blockwise (NF4, FP4): blocks of `blocksize` over the flattened
//    row-major tensor, fp32 absmax per block, x * (1/absmax) clamped to
//    [-1, 1], then the nearest of the 16 codes with ties to the lower value;
//    two codes per byte, the first element in the HIGH nibble.
//  - double quantization ("nested"): offset = mean(absmax); absmax - offset
//    quantized with the signed 8-bit dynamic map in blocks of 256 (fp32
//    absmax per block; value / absmax, nearest code by distance, ties low).
//    bitsandbytes 0.50.2's CPU search is not always the nearest code (its
//    bucketed BinSearch misses for |value| below ~0.002 of the block absmax
//    and on a few midpoints); ours is the exact nearest.
//  - LLM.int8 weights: int8 per row, round(w * (127 / row absmax)) half to
//    even, SCB = the fp32 row absmax.
#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace uq::bnb {

enum class FourBitType { NF4, FP4 };

std::string_view four_bit_type_name(FourBitType type);  // "nf4" | "fp4"
// The 16 normalized codes indexed by the stored nibble (bnb's quant_map).
const std::array<float, 16>& four_bit_code(FourBitType type);
// bitsandbytes' create_dynamic_map(signed=True): 256 sorted codes in [-1, 1].
const std::array<float, 256>& dynamic_map();

// Quantizes n floats: packed gets (n + 1) / 2 bytes, absmax ceil(n / blocksize) floats.
void quantize_4bit(const float* data, std::int64_t n, int blocksize, FourBitType type,
                   std::uint8_t* packed, float* absmax);

// Double quantization of a vector of absmax values.
struct NestedAbsmax {
  std::vector<std::uint8_t> codes;  // one per absmax value
  std::vector<float> absmax;        // one per nested block
  float offset = 0.0f;
  int blocksize = 256;
};
NestedAbsmax quantize_nested(std::span<const float> absmax, int nested_blocksize = 256);
// code[codes[i]] * absmax[i / blocksize] + offset, in float32 as bitsandbytes does.
std::vector<float> dequantize_nested(std::span<const std::uint8_t> codes,
                                     std::span<const float> nested_absmax,
                                     std::span<const float> code, float offset, int blocksize);

// LLM.int8 weight rows: q [rows, cols] int8 and scb [rows] (row absmax).
void quantize_int8_rows(const float* data, std::int64_t rows, std::int64_t cols, std::int8_t* q,
                        float* scb);

}  // namespace uq::bnb
