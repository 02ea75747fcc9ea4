#pragma once
// optimum-quanto's activation quantization, per tensor with one scalar scale
// (quantize_activation, Calibration, absmax_scale). `qtype` is the code type:
// I8 (qint8, codes clamp(round(x / scale), -128, 127)), F8_E4M3 (qfloat8 /
// qfloat8_e4m3fn) or F8_E5M2 (qfloat8_e5m2, codes fp8(clamp(x / scale, ±fmax))).
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/dtype.hpp"

namespace uq {

// quanto's qtype name ("qint8", "qfloat8", "qfloat8_e4m3fn", "qfloat8_e5m2")
// -> code dtype; nullopt for "none". Throws uq::Error naming `option` otherwise.
std::optional<DType> activation_qtype(std::string_view name, std::string_view option);
// The name quanto's quantization_map.json gives `qtype` ("qint8", "qfloat8_e4m3fn", ...).
std::string activation_qtype_name(DType qtype);

// Largest code magnitude: 127, 448 or 57344 (quanto's dtype_info(...).max).
float activation_qmax(DType qtype);

// Replaces each of `values` by its quantized-dequantized value code * scale
// (what quanto's ActivationQBytesTensor stands for); zeros when scale is 0.
void quantize_dequantize_activation(float* values, std::size_t count, DType qtype, float scale);

// absmax(values) / qmax rounded to `scale_dtype`: quanto's absmax_scale.
float activation_absmax_scale(const float* values, std::size_t count, DType qtype,
                              DType scale_dtype);

// quanto's _updated_scale with momentum 0.9, each product and the sum rounded
// to `scale_dtype` as torch computes them: a scale still at its initial 1
// takes `observed`, otherwise 0.9 * scale + 0.1 * observed.
float updated_activation_scale(float scale, float observed, DType scale_dtype);

}  // namespace uq
