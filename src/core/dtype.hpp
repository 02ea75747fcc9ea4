#pragma once
// Element types of stored tensors and the scalar conversions between them.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace uq {

enum class DType : std::uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, U32, BOOL, F8_E4M3, F8_E5M2 };

std::size_t dtype_size(DType dtype);
// The safetensors spelling: "F32", "BF16", "F8_E4M3", ...
std::string_view dtype_name(DType dtype);
std::optional<DType> parse_dtype(std::string_view name);
bool is_float(DType dtype);

inline float bf16_to_f32(std::uint16_t bits) {
  std::uint32_t wide = static_cast<std::uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}

// Round to nearest, ties to even; NaN stays a (quiet) NaN.
inline std::uint16_t f32_to_bf16(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>(bits >> 16);
}

float f16_to_f32(std::uint16_t bits);
std::uint16_t f32_to_f16(float value);  // round to nearest even, overflow to inf
float fp8_e4m3_to_f32(std::uint8_t bits);
std::uint8_t f32_to_fp8_e4m3(float value);  // saturating to ±448 (e4m3fn has no inf)
float fp8_e5m2_to_f32(std::uint8_t bits);
std::uint8_t f32_to_fp8_e5m2(float value);

// Converts `count` float elements (F64/F32/F16/BF16/F8_*) to float32.
void convert_to_f32(DType source, const void* data, std::size_t count, float* out);
// Converts float32 to a float dtype (F64/F32/F16/BF16/F8_*).
void convert_from_f32(const float* data, std::size_t count, DType target, void* out);
// Rounds a float32 through `dtype` and back (the value a stored scale really has).
float round_to_dtype(float value, DType dtype);

}  // namespace uq
