#include "quant/quanto_activations.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace uq {

std::optional<DType> activation_qtype(std::string_view name, std::string_view option) {
  if (name == "none") return std::nullopt;
  if (name == "qint8") return DType::I8;
  if (name == "qfloat8" || name == "qfloat8_e4m3fn") return DType::F8_E4M3;
  if (name == "qfloat8_e5m2") return DType::F8_E5M2;
  fail(option, ": unknown activation qtype '", name,
       "' (known: none, qint8, qfloat8, qfloat8_e4m3fn, qfloat8_e5m2)");
}

std::string activation_qtype_name(DType qtype) {
  if (qtype == DType::I8) return "qint8";
  if (qtype == DType::F8_E4M3) return "qfloat8_e4m3fn";
  if (qtype == DType::F8_E5M2) return "qfloat8_e5m2";
  fail("activation_qtype_name: ", dtype_name(qtype), " is not an activation qtype");
}

float activation_qmax(DType qtype) {
  if (qtype == DType::I8) return 127.0f;
  if (qtype == DType::F8_E4M3) return 448.0f;
  if (qtype == DType::F8_E5M2) return 57344.0f;
  fail("activation_qmax: ", dtype_name(qtype), " is not an activation qtype");
}

void quantize_dequantize_activation(float* values, std::size_t count, DType qtype, float scale) {
  if (scale == 0.0f) {  // all inputs seen so far were 0: nothing to represent
    std::fill(values, values + count, 0.0f);
    return;
  }
  if (qtype == DType::I8) {
    for (std::size_t i = 0; i < count; ++i) {
      values[i] = std::clamp(std::nearbyint(values[i] / scale), -128.0f, 127.0f) * scale;
    }
    return;
  }
  const float fmax = activation_qmax(qtype);
  for (std::size_t i = 0; i < count; ++i) {
    values[i] = round_to_dtype(std::clamp(values[i] / scale, -fmax, fmax), qtype) * scale;
  }
}

float activation_absmax_scale(const float* values, std::size_t count, DType qtype,
                              DType scale_dtype) {
  float absmax = 0.0f;
  for (std::size_t i = 0; i < count; ++i) absmax = std::max(absmax, std::fabs(values[i]));
  return round_to_dtype(absmax / activation_qmax(qtype), scale_dtype);
}

float updated_activation_scale(float scale, float observed, DType scale_dtype) {
  if (scale == 1.0f) return observed;
  // torch evaluates the Python doubles 0.9 and 1.0 - 0.9 as float32 scalars.
  constexpr auto momentum = static_cast<float>(0.9);
  constexpr auto complement = static_cast<float>(1.0 - 0.9);
  return round_to_dtype(round_to_dtype(momentum * scale, scale_dtype) +
                            round_to_dtype(observed * complement, scale_dtype),
                        scale_dtype);
}

}  // namespace uq
