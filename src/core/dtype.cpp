#include "core/dtype.hpp"

#include <array>
#include <bit>
#include <cmath>
#include <limits>

#include "core/error.hpp"

namespace uq {
namespace {

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  std::size_t size;
  bool floating;
};

constexpr std::array<DTypeInfo, 13> kDTypes{{
    {DType::F64, "F64", 8, true},
    {DType::F32, "F32", 4, true},
    {DType::F16, "F16", 2, true},
    {DType::BF16, "BF16", 2, true},
    {DType::I64, "I64", 8, false},
    {DType::I32, "I32", 4, false},
    {DType::I16, "I16", 2, false},
    {DType::I8, "I8", 1, false},
    {DType::U8, "U8", 1, false},
    {DType::U32, "U32", 4, false},
    {DType::BOOL, "BOOL", 1, false},
    {DType::F8_E4M3, "F8_E4M3", 1, true},
    {DType::F8_E5M2, "F8_E5M2", 1, true},
}};

const DTypeInfo& info(DType dtype) {
  return kDTypes[static_cast<std::size_t>(dtype)];
}

// Decodes a small float with `exp_bits` exponent and `man_bits` mantissa bits
// (IEEE-style subnormals; `has_inf` false means the all-ones exponent is finite
// except for the all-ones mantissa, which is NaN: the e4m3fn convention).
float decode_minifloat(std::uint32_t bits, int exp_bits, int man_bits, bool has_inf) {
  const std::uint32_t sign = bits >> (exp_bits + man_bits);
  const std::uint32_t exponent = (bits >> man_bits) & ((1u << exp_bits) - 1u);
  const std::uint32_t mantissa = bits & ((1u << man_bits) - 1u);
  const int bias = (1 << (exp_bits - 1)) - 1;
  const std::uint32_t max_exponent = (1u << exp_bits) - 1u;
  float magnitude;
  if (exponent == max_exponent && has_inf) {
    magnitude = mantissa == 0 ? INFINITY : NAN;
  } else if (exponent == max_exponent && !has_inf && mantissa == (1u << man_bits) - 1u) {
    magnitude = NAN;
  } else if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), 1 - bias - man_bits);
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | (1u << man_bits)),
                           static_cast<int>(exponent) - bias - man_bits);
  }
  return sign ? -magnitude : magnitude;
}

// Encodes float32 to a small float, round to nearest even. Values beyond the
// largest finite value become inf (has_inf) or saturate to the largest finite.
std::uint32_t encode_minifloat(float value, int exp_bits, int man_bits, bool has_inf) {
  const std::uint32_t sign_bit = 1u << (exp_bits + man_bits);
  const std::uint32_t sign = std::signbit(value) ? sign_bit : 0u;
  const int bias = (1 << (exp_bits - 1)) - 1;
  const std::uint32_t max_exponent = (1u << exp_bits) - 1u;
  if (std::isnan(value)) return sign | (max_exponent << man_bits) | ((1u << man_bits) - 1u);
  // Largest finite: with inf, exponent max-1 and full mantissa; e4m3fn: exponent
  // max with mantissa all ones but one.
  const std::uint32_t max_finite_code =
      has_inf ? (((max_exponent - 1u) << man_bits) | ((1u << man_bits) - 1u))
              : ((max_exponent << man_bits) | ((1u << man_bits) - 2u));
  const float max_finite = decode_minifloat(max_finite_code, exp_bits, man_bits, has_inf);
  float magnitude = std::fabs(value);
  if (magnitude == 0.0f) return sign;
  if (std::isinf(magnitude) || magnitude > max_finite) {
    // Round-to-nearest can still land on max_finite if within half an ulp.
    const float ulp = std::ldexp(
        1.0f, static_cast<int>(has_inf ? max_exponent - 1u : max_exponent) - bias - man_bits);
    if (!std::isinf(magnitude) && magnitude < max_finite + ulp / 2) return sign | max_finite_code;
    return has_inf ? (sign | (max_exponent << man_bits)) : (sign | max_finite_code);
  }
  int exponent;
  std::frexp(magnitude, &exponent);  // magnitude = m * 2^exponent, m in [0.5, 1)
  int unbiased = exponent - 1;
  const int min_normal = 1 - bias;
  if (unbiased < min_normal) unbiased = min_normal;  // subnormal spacing
  const float quantum = std::ldexp(1.0f, unbiased - man_bits);
  const float steps = std::nearbyint(magnitude / quantum);  // ties to even (default mode)
  std::uint32_t code_magnitude;
  const auto step_count = static_cast<std::uint32_t>(steps);
  if (unbiased == min_normal && step_count < (1u << man_bits)) {
    code_magnitude = step_count;  // subnormal (or zero)
  } else {
    // step_count in [2^m, 2^(m+1)]; overflow of the mantissa bumps the exponent.
    std::uint32_t biased = static_cast<std::uint32_t>(unbiased + bias);
    std::uint32_t mantissa = step_count - (1u << man_bits);
    if (step_count == (2u << man_bits)) {
      biased += 1;
      mantissa = 0;
    }
    code_magnitude = (biased << man_bits) | mantissa;
  }
  if (code_magnitude > max_finite_code) code_magnitude = max_finite_code;
  return sign | code_magnitude;
}

}  // namespace

std::size_t dtype_size(DType dtype) {
  return info(dtype).size;
}
std::string_view dtype_name(DType dtype) {
  return info(dtype).name;
}
bool is_float(DType dtype) {
  return info(dtype).floating;
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& entry : kDTypes) {
    if (entry.name == name) return entry.dtype;
  }
  return std::nullopt;
}

float f16_to_f32(std::uint16_t bits) {
  return decode_minifloat(bits, 5, 10, true);
}
std::uint16_t f32_to_f16(float value) {
  return static_cast<std::uint16_t>(encode_minifloat(value, 5, 10, true));
}
float fp8_e4m3_to_f32(std::uint8_t bits) {
  return decode_minifloat(bits, 4, 3, false);
}
std::uint8_t f32_to_fp8_e4m3(float value) {
  return static_cast<std::uint8_t>(encode_minifloat(value, 4, 3, false));
}
float fp8_e5m2_to_f32(std::uint8_t bits) {
  return decode_minifloat(bits, 5, 2, true);
}
std::uint8_t f32_to_fp8_e5m2(float value) {
  return static_cast<std::uint8_t>(encode_minifloat(value, 5, 2, true));
}

void convert_to_f32(DType source, const void* data, std::size_t count, float* out) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  switch (source) {
    case DType::F32:
      // memcpy with a null pointer is undefined even for 0 bytes (empty vectors).
      if (count > 0) std::memcpy(out, data, count * sizeof(float));
      return;
    case DType::F64:
      for (std::size_t i = 0; i < count; ++i) {
        double value;
        std::memcpy(&value, bytes + 8 * i, sizeof value);
        // Beyond float's range the conversion is undefined: such values become infinite.
        constexpr float kInf = std::numeric_limits<float>::infinity();
        out[i] = std::isnan(value) || std::fabs(value) <= std::numeric_limits<float>::max()
                     ? static_cast<float>(value)
                     : (value > 0 ? kInf : -kInf);
      }
      return;
    case DType::BF16:
    case DType::F16: {
      const bool is_bf16 = source == DType::BF16;
      for (std::size_t i = 0; i < count; ++i) {
        std::uint16_t half;
        std::memcpy(&half, bytes + 2 * i, sizeof half);
        out[i] = is_bf16 ? bf16_to_f32(half) : f16_to_f32(half);
      }
      return;
    }
    case DType::F8_E4M3:
      for (std::size_t i = 0; i < count; ++i) out[i] = fp8_e4m3_to_f32(bytes[i]);
      return;
    case DType::F8_E5M2:
      for (std::size_t i = 0; i < count; ++i) out[i] = fp8_e5m2_to_f32(bytes[i]);
      return;
    default:
      fail("cannot convert dtype ", dtype_name(source), " to float32");
  }
}

void convert_from_f32(const float* data, std::size_t count, DType target, void* out) {
  auto* bytes = static_cast<unsigned char*>(out);
  switch (target) {
    case DType::F32:
      if (count > 0) std::memcpy(out, data, count * sizeof(float));
      return;
    case DType::F64:
      for (std::size_t i = 0; i < count; ++i) {
        const double value = data[i];
        std::memcpy(bytes + 8 * i, &value, sizeof value);
      }
      return;
    case DType::BF16:
    case DType::F16: {
      const bool is_bf16 = target == DType::BF16;
      for (std::size_t i = 0; i < count; ++i) {
        const std::uint16_t half = is_bf16 ? f32_to_bf16(data[i]) : f32_to_f16(data[i]);
        std::memcpy(bytes + 2 * i, &half, sizeof half);
      }
      return;
    }
    case DType::F8_E4M3:
      for (std::size_t i = 0; i < count; ++i) bytes[i] = f32_to_fp8_e4m3(data[i]);
      return;
    case DType::F8_E5M2:
      for (std::size_t i = 0; i < count; ++i) bytes[i] = f32_to_fp8_e5m2(data[i]);
      return;
    default:
      fail("cannot convert float32 to dtype ", dtype_name(target));
  }
}

float round_to_dtype(float value, DType dtype) {
  switch (dtype) {
    case DType::F32:
      return value;
    case DType::BF16:
      return bf16_to_f32(f32_to_bf16(value));
    case DType::F16:
      return f16_to_f32(f32_to_f16(value));
    case DType::F64:
      return value;
    case DType::F8_E4M3:
      return fp8_e4m3_to_f32(f32_to_fp8_e4m3(value));
    case DType::F8_E5M2:
      return fp8_e5m2_to_f32(f32_to_fp8_e5m2(value));
    default:
      fail("round_to_dtype: ", dtype_name(dtype), " is not a float dtype");
  }
}

}  // namespace uq
