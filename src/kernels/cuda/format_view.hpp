#pragma once
// What a format kernel needs to decode rows of one quantized matrix W [out, in] on the device,
// passed to kernels by value. Every format is decoded 8 consecutive elements of a row at a time
// (format_decoders.cuh); the GEMV, the tile dequantizer and the gather share that decoder.
// The codes array is 16-byte aligned (the GEMV stages it with 16-byte copies).
#include <cstdint>

namespace uq::cuda {

enum class DeviceFormat : std::int32_t {
  affine,      // MLX bit stream per row (any bits 1-8), f32 scale and bias per group
  symmetric8,  // int8 per element, f32 scale per row (also LLM.int8 gathers: scale = SCB / 127)
  symmetric4,  // element 2k low nibble, 2k+1 high nibble, stored q + 8; f32 scale per row
  float8,      // one e4m3 or e5m2 byte per element, f32 scale per row
  bnb4,        // nibbles over the flattened matrix, high first; 16-entry table, absmax per block
  ggml_f32,
  ggml_f16,
  ggml_bf16,
  ggml_q8_0,
  ggml_q4_0,
  ggml_q4_1,
  ggml_q5_0,
  ggml_q4_k,
  ggml_q6_k,
};

struct FormatView {
  DeviceFormat format = DeviceFormat::affine;
  const std::uint8_t* codes = nullptr;  // row r starts at codes + r * row_bytes (bnb4: flat)
  const float* scales = nullptr;        // affine [out, groups]; symmetric/float8 [out]; bnb4 absmax
  const float* biases = nullptr;        // affine [out, groups]
  const float* table = nullptr;         // bnb4: 16 values
  std::int64_t row_bytes = 0;
  int out = 0;
  int in = 0;
  int bits = 0;              // affine
  int group_size = 0;        // affine: elements per scale; bnb4: elements per absmax block
  int groups = 0;            // affine: groups per row
  bool flat32 = true;        // bnb4: out * in < 2^31, flat indices fit 32-bit arithmetic
  bool float8_e5m2 = false;  // float8: e5m2 codes, else e4m3
};

}  // namespace uq::cuda
