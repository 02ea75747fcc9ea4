#pragma once
// Device decoders: decode<F>(w, row, chunk, v) writes elements [8 chunk, 8 chunk + 8) of row
// `row` of W as float32, with the same arithmetic as the format's CPU dequantize_rows
// (src/quant/*_weight.cpp, src/quant/ggml_blocks.cpp). Elements past `in` in the last chunk of a
// row may be garbage (callers mask them); the uploads pad every array so those reads stay in
// bounds.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/format_view.hpp"

namespace uq::cuda {

__device__ __forceinline__ unsigned byte_at(const std::uint8_t* p, std::int64_t i) {
  return __ldg(p + i);
}

__device__ __forceinline__ float f16_at(const std::uint8_t* p) {  // 2-byte aligned
  return __half2float(__ushort_as_half(__ldg(reinterpret_cast<const unsigned short*>(p))));
}

// 8 consecutive bytes from any address: one 8-byte load where aligned.
__device__ __forceinline__ void load8(const std::uint8_t* p, unsigned (&b)[8]) {
  if ((reinterpret_cast<std::uintptr_t>(p) & 7) == 0) {
    const uint2 word = __ldg(reinterpret_cast<const uint2*>(p));
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      b[j] = (word.x >> (8 * j)) & 0xFFu;
      b[j + 4] = (word.y >> (8 * j)) & 0xFFu;
    }
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j) b[j] = __ldg(p + j);
  }
}

// The per-element parameter of elements [first, first + 8) where one parameter covers `size`
// consecutive elements: at most two distinct values when size >= 8.
// Index is 32-bit wherever it can be: 64-bit division is a long software sequence.
template <class Index, class Load>
__device__ __forceinline__ void per_group(Index first, int size, Load load, float (&out)[8]) {
  if (size >= 8) {
    const Index group = first / static_cast<Index>(size);
    const Index boundary = (group + 1) * static_cast<Index>(size);
    const float a = load(group);
    const float b = boundary < first + 8 ? load(group + 1) : a;
#pragma unroll
    for (int j = 0; j < 8; ++j) out[j] = first + j < boundary ? a : b;
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j) out[j] = load((first + j) / static_cast<Index>(size));
  }
}

template <DeviceFormat F>
__device__ __forceinline__ void decode(const FormatView& w, int row, int chunk, float (&v)[8]);

template <>
__device__ __forceinline__ void decode<DeviceFormat::affine>(const FormatView& w, int row,
                                                             int chunk, float (&v)[8]) {
  // 8 codes of `bits` bits are exactly `bits` bytes of the row's stream, from byte chunk * bits.
  const std::uint8_t* base = w.codes + row * w.row_bytes;
  const int start = chunk * w.bits;
  const auto* words = reinterpret_cast<const std::uint32_t*>(base) + start / 4;
  const int shift = (start % 4) * 8;
  const std::uint64_t low = __ldg(words) | (static_cast<std::uint64_t>(__ldg(words + 1)) << 32);
  const std::uint64_t stream =
      shift == 0 ? low
                 : (low >> shift) | (static_cast<std::uint64_t>(__ldg(words + 2)) << (64 - shift));
  const unsigned mask = (1u << w.bits) - 1u;
  const std::int64_t offset = static_cast<std::int64_t>(row) * w.groups;
  const float* scales = w.scales + offset;
  const float* biases = w.biases + offset;
  float scale[8], bias[8];
  const auto first = static_cast<unsigned>(chunk) * 8u;
  if (w.group_size % 8 == 0) {  // one group for the whole chunk
    const unsigned group = first / static_cast<unsigned>(w.group_size);
    const float s = __ldg(scales + group);
    const float b = __ldg(biases + group);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      scale[j] = s;
      bias[j] = b;
    }
  } else {
    per_group(
        first, w.group_size, [&](unsigned g) { return __ldg(scales + g); }, scale);
    per_group(
        first, w.group_size, [&](unsigned g) { return __ldg(biases + g); }, bias);
  }
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const auto q = static_cast<unsigned>(stream >> (j * w.bits)) & mask;
    v[j] = scale[j] * static_cast<float>(q) + bias[j];
  }
}

template <>
__device__ __forceinline__ void decode<DeviceFormat::symmetric8>(const FormatView& w, int row,
                                                                 int chunk, float (&v)[8]) {
  unsigned b[8];
  load8(w.codes + row * w.row_bytes + chunk * 8, b);
  const float scale = __ldg(w.scales + row);
#pragma unroll
  for (int j = 0; j < 8; ++j) v[j] = scale * static_cast<float>(static_cast<std::int8_t>(b[j]));
}

template <>
__device__ __forceinline__ void decode<DeviceFormat::symmetric4>(const FormatView& w, int row,
                                                                 int chunk, float (&v)[8]) {
  const std::uint8_t* p = w.codes + row * w.row_bytes + chunk * 4;
  const float scale = __ldg(w.scales + row);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const unsigned b = __ldg(p + k);
    v[2 * k] = scale * static_cast<float>(static_cast<int>(b & 0x0Fu) - 8);
    v[2 * k + 1] = scale * static_cast<float>(static_cast<int>(b >> 4) - 8);
  }
}

template <>
__device__ __forceinline__ void decode<DeviceFormat::float8>(const FormatView& w, int row,
                                                             int chunk, float (&v)[8]) {
  unsigned b[8];
  load8(w.codes + row * w.row_bytes + chunk * 8, b);
  const float scale = __ldg(w.scales + row);
#pragma unroll
  for (int j = 0; j < 8; ++j) v[j] = __ldg(w.table + b[j]) * scale;
}

template <>
__device__ __forceinline__ void decode<DeviceFormat::bnb4>(const FormatView& w, int row, int chunk,
                                                           float (&v)[8]) {
  // Element f of the flattened matrix is in byte f / 2, the high nibble when f is even.
  const std::int64_t first = static_cast<std::int64_t>(row) * w.in + chunk * 8;
  const std::uint8_t* p = w.codes + first / 2;
  unsigned b[5];
#pragma unroll
  for (int k = 0; k < 5; ++k) b[k] = __ldg(p + k);
  float absmax[8];
  if (w.flat32) {
    per_group(
        static_cast<unsigned>(first), w.group_size,
        [&](unsigned block) { return __ldg(w.scales + block); }, absmax);
  } else {
    per_group(
        first, w.group_size, [&](std::int64_t block) { return __ldg(w.scales + block); }, absmax);
  }
  const int odd = static_cast<int>(first & 1);
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int position = odd + j;  // nibble index from the high nibble of p[0]
    const unsigned byte = b[position / 2];
    const unsigned code = position % 2 == 0 ? byte >> 4 : byte & 0x0Fu;
    v[j] = __ldg(w.table + code) * absmax[j];
  }
}

template <>
__device__ __forceinline__ void decode<DeviceFormat::ggml_f32>(const FormatView& w, int row,
                                                               int chunk, float (&v)[8]) {
  const auto* p = reinterpret_cast<const float*>(w.codes + row * w.row_bytes) + chunk * 8;
#pragma unroll
  for (int j = 0; j < 8; ++j) v[j] = __ldg(p + j);
}

template <>
__device__ __forceinline__ void decode<DeviceFormat::ggml_f16>(const FormatView& w, int row,
                                                               int chunk, float (&v)[8]) {
  const std::uint8_t* p = w.codes + row * w.row_bytes + chunk * 16;
#pragma unroll
  for (int j = 0; j < 8; ++j) v[j] = f16_at(p + 2 * j);
}

template <>
__device__ __forceinline__ void decode<DeviceFormat::ggml_bf16>(const FormatView& w, int row,
                                                                int chunk, float (&v)[8]) {
  const auto* p = reinterpret_cast<const unsigned short*>(w.codes + row * w.row_bytes) + chunk * 8;
#pragma unroll
  for (int j = 0; j < 8; ++j) v[j] = __bfloat162float(__ushort_as_bfloat16(__ldg(p + j)));
}

// The 32-element formats: block chunk / 4 of the row, elements [8 (chunk % 4), +8) of it.
template <>
__device__ __forceinline__ void decode<DeviceFormat::ggml_q8_0>(const FormatView& w, int row,
                                                                int chunk, float (&v)[8]) {
  const std::uint8_t* block = w.codes + row * w.row_bytes + (chunk / 4) * 34;
  const float d = f16_at(block);
  const std::uint8_t* qs = block + 2 + (chunk % 4) * 8;
#pragma unroll
  for (int j = 0; j < 8; ++j)
    v[j] = static_cast<float>(static_cast<std::int8_t>(__ldg(qs + j))) * d;
}

template <>
__device__ __forceinline__ void decode<DeviceFormat::ggml_q4_0>(const FormatView& w, int row,
                                                                int chunk, float (&v)[8]) {
  // Element e < 16: low nibble of qs[e]; e >= 16: high nibble of qs[e - 16].
  const std::uint8_t* block = w.codes + row * w.row_bytes + (chunk / 4) * 18;
  const float d = f16_at(block);
  const int within = (chunk % 4) * 8;
  const std::uint8_t* qs = block + 2 + within % 16;
  const int shift = within < 16 ? 0 : 4;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    v[j] = static_cast<float>(static_cast<int>((__ldg(qs + j) >> shift) & 0x0Fu) - 8) * d;
  }
}

template <>
__device__ __forceinline__ void decode<DeviceFormat::ggml_q4_1>(const FormatView& w, int row,
                                                                int chunk, float (&v)[8]) {
  const std::uint8_t* block = w.codes + row * w.row_bytes + (chunk / 4) * 20;
  const float d = f16_at(block);
  const float m = f16_at(block + 2);
  const int within = (chunk % 4) * 8;
  const std::uint8_t* qs = block + 4 + within % 16;
  const int shift = within < 16 ? 0 : 4;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    v[j] = static_cast<float>((__ldg(qs + j) >> shift) & 0x0Fu) * d + m;
  }
}

template <>
__device__ __forceinline__ void decode<DeviceFormat::ggml_q5_0>(const FormatView& w, int row,
                                                                int chunk, float (&v)[8]) {
  const std::uint8_t* block = w.codes + row * w.row_bytes + (chunk / 4) * 22;
  const float d = f16_at(block);
  const std::uint32_t high = byte_at(block, 2) | (byte_at(block, 3) << 8) |
                             (byte_at(block, 4) << 16) | (byte_at(block, 5) << 24);
  const int within = (chunk % 4) * 8;
  const std::uint8_t* qs = block + 6 + within % 16;
  const int shift = within < 16 ? 0 : 4;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int e = within + j;
    const int q = static_cast<int>(((__ldg(qs + j) >> shift) & 0x0Fu) | (((high >> e) & 1u) << 4));
    v[j] = static_cast<float>(q - 16) * d;
  }
}

// Q4_K sub-block j's 6-bit scale and min from the 12 packed bytes (ggml's get_scale_min_k4).
__device__ __forceinline__ void q4k_scale_min(int j, const std::uint8_t* q, unsigned& scale,
                                              unsigned& min) {
  if (j < 4) {
    scale = byte_at(q, j) & 63u;
    min = byte_at(q, j + 4) & 63u;
  } else {
    scale = (byte_at(q, j + 4) & 0x0Fu) | ((byte_at(q, j - 4) >> 6) << 4);
    min = (byte_at(q, j + 4) >> 4) | ((byte_at(q, j) >> 6) << 4);
  }
}

template <>
__device__ __forceinline__ void decode<DeviceFormat::ggml_q4_k>(const FormatView& w, int row,
                                                                int chunk, float (&v)[8]) {
  // 256 elements: four 64s; the first 32 of each in the low nibbles of 32 bytes, the next 32 in
  // the high nibbles; sub-block (32 elements) scale and min.
  const std::uint8_t* block = w.codes + row * w.row_bytes + (chunk / 32) * 144;
  const int e = (chunk % 32) * 8;
  const int quarter = e / 64;
  const int in_quarter = e % 64;
  unsigned sc = 0, m = 0;
  q4k_scale_min(2 * quarter + (in_quarter >= 32 ? 1 : 0), block + 4, sc, m);
  const float d = f16_at(block) * static_cast<float>(sc);
  const float min = f16_at(block + 2) * static_cast<float>(m);
  const std::uint8_t* qs = block + 16 + 32 * quarter + in_quarter % 32;
  const int shift = in_quarter < 32 ? 0 : 4;
#pragma unroll
  for (int j = 0; j < 8; ++j) v[j] = d * static_cast<float>((__ldg(qs + j) >> shift) & 0x0Fu) - min;
}

template <>
__device__ __forceinline__ void decode<DeviceFormat::ggml_q6_k>(const FormatView& w, int row,
                                                                int chunk, float (&v)[8]) {
  // ql[128] low 4 bits, qh[64] high 2 bits, int8 scales[16] (one per 16), f16 d at 208. In each
  // half of 128, element 32 k + l (k < 4) takes ql[l + 32 (k % 2)] (low nibble for k < 2),
  // bits 2k of qh[l] and scale l / 16 + 2 k.
  const std::uint8_t* block = w.codes + row * w.row_bytes + (chunk / 32) * 210;
  const int e = (chunk % 32) * 8;
  const int half = e / 128;
  const int k = (e % 128) / 32;
  const int l = e % 32;
  const float scale =
      f16_at(block + 208) *
      static_cast<float>(static_cast<std::int8_t>(byte_at(block, 192 + half * 8 + l / 16 + 2 * k)));
  const std::uint8_t* ql = block + half * 64 + l + (k % 2) * 32;
  const std::uint8_t* qh = block + 128 + half * 32 + l;
  const int low_shift = k < 2 ? 0 : 4;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int q = static_cast<int>(((__ldg(ql + j) >> low_shift) & 0x0Fu) |
                                   (((__ldg(qh + j) >> (2 * k)) & 3u) << 4)) -
                  32;
    v[j] = scale * static_cast<float>(q);
  }
}

}  // namespace uq::cuda
