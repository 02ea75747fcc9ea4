#pragma once
// optimum-quanto's qint4/qint2 weights: affine per group (MaxOptimizer +
// quantize_affine), and quanto's packing of the codes.
//
// Group size: 128, else the first of 96, 64, 32 dividing in_features; the
// whole row (per output channel) when in_features <= 128 or none divides.
// Groups are consecutive runs of a row: the weight is viewed as R = out*in/g
// rows of g codes. Per group, every operation rounded to the weight dtype:
//   scale = (max - min) / (2^bits - 1), shift = -min
//   q = clamp(round_half_even((w + shift) / scale), 0, 2^bits - 1), w ≈ q*scale - shift
// (a constant group has scale 0 and codes 0).
//
// Packing (PackedTensor): a [R, g] uint8 code matrix becomes [ceil(R/k), g]
// bytes with k = 8/bits codes per byte; code row r goes to byte row
// r mod ceil(R/k) at bit shift bits*(r div ceil(R/k)). For 4 bits:
// byte[r, c] = q[r, c] | q[r + R/2, c] << 4.
//
// At run time the weight is an AffineWeight (w = scale*q + bias with
// bias = -shift, exact), so the affine kernels multiply it.
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "core/dtype.hpp"

namespace uq {

class AffineWeight;

// quanto's group size for a row of `in_features` (in_features itself: per channel).
std::int64_t quanto_group_size(std::int64_t in_features);

// Packs a [rows, cols] matrix of `bits`-bit codes (2 or 4) the quanto way.
std::vector<std::uint8_t> quanto_pack(std::span<const std::uint8_t> codes, std::int64_t rows,
                                      std::int64_t cols, int bits);
// The inverse: [rows, cols] codes from the packed [ceil(rows*bits/8), cols] bytes.
std::vector<std::uint8_t> quanto_unpack(std::span<const std::uint8_t> packed, std::int64_t rows,
                                        std::int64_t cols, int bits);

// Quantizes `data` ([out, in] of float dtype `dtype`) as quanto does, with
// scales and shifts in `dtype` (F32/F16/BF16). nullptr with `note` set when
// the group (the row, per channel) is not a multiple of 32, which the affine
// kernels need. Throws uq::Error naming `tensor` for NaN/Inf or bad bits.
std::unique_ptr<AffineWeight> quanto_affine_quantize(const void* data, DType dtype,
                                                     std::int64_t out, std::int64_t in, int bits,
                                                     std::string_view tensor, std::string& note);

// Builds the run-time weight from quanto's arrays: codes [out, in] (unpacked),
// scale and shift [out * in / group] as bytes of `param_dtype`.
std::unique_ptr<AffineWeight> affine_from_quanto(
    std::int64_t out, std::int64_t in, int bits, std::int64_t group_size,
    std::span<const std::uint8_t> codes, DType param_dtype, std::span<const std::byte> scale,
    std::span<const std::byte> shift, std::string_view tensor);

// The codes [out, in] of an affine weight, unpacked (one per byte).
std::vector<std::uint8_t> affine_codes(const AffineWeight& weight);
// quanto's shift (= -bias) of an affine weight, as bytes of its param dtype.
std::vector<std::byte> quanto_shift_bytes(const AffineWeight& weight);

}  // namespace uq
