#pragma once
// Device decoders: decode<F>(w, codes, row, chunk, v) writes elements [8 chunk, 8 chunk + 8) of
// row `row` of W as float32, with the same arithmetic as the format's CPU dequantize_rows
// (src/quant/*_weight.cpp, src/quant/ggml_blocks.cpp). `codes` reads W's code bytes, either from
// global memory (GlobalCodes) or from a warp's staged copy in shared memory (StagedCodes), always
// as aligned 32-bit words: unaligned byte runs (ggml blocks of 18/20/22/34/210 bytes, odd rows)
// are funnel-shifted out of them. Elements past `in` in the last chunk of a row may be garbage
// (callers mask them); the uploads pad every array so those reads stay in bounds.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/format_view.hpp"

namespace uq::cuda {

// The code bytes of one row, addressed by their offset from the row's first byte (bnb4: byte
// floor(row * in / 2)), read as aligned 32-bit words: from the uploaded array in global memory
// (GlobalRow, 4-byte aligned base) or from a warp's staged copy of a 16-byte aligned window of
// it in shared memory (StagedRow, whose 32-bit `start` may be negative: the row begins before
// the window; only offsets inside the window are read).
struct GlobalRow {
  const std::uint32_t* words;  // the whole codes array
  std::int64_t start;          // the row's first byte in it
  __device__ __forceinline__ std::uint32_t word(std::int64_t index) const {
    return __ldg(words + index);
  }
};

struct StagedRow {
  const std::uint32_t* words;  // the window
  int start;                   // the row's first byte relative to the window
  __device__ __forceinline__ std::uint32_t word(int index) const { return words[index]; }
};

// 4 bytes from row offset `offset` (any alignment), little-endian.
template <class Codes>
__device__ __forceinline__ std::uint32_t bytes4(const Codes& codes, int offset) {
  const auto byte = codes.start + offset;
  const auto index = byte >> 2;
  const auto shift = static_cast<unsigned>(byte & 3) * 8u;
  return __funnelshift_r(codes.word(index), codes.word(index + 1), shift);
}

// 8 bytes from row offset `offset` (any alignment): byte k is bits [8k, 8k + 8) of x | y << 32.
template <class Codes>
__device__ __forceinline__ uint2 bytes8(const Codes& codes, int offset) {
  const auto byte = codes.start + offset;
  const auto index = byte >> 2;
  const auto shift = static_cast<unsigned>(byte & 3) * 8u;
  const std::uint32_t w0 = codes.word(index);
  const std::uint32_t w1 = codes.word(index + 1);
  const std::uint32_t w2 = codes.word(index + 2);
  return make_uint2(__funnelshift_r(w0, w1, shift), __funnelshift_r(w1, w2, shift));
}

__device__ __forceinline__ unsigned byte_of(uint2 bytes, int k) {
  return ((k < 4 ? bytes.x : bytes.y) >> (8 * (k % 4))) & 0xFFu;
}

template <class Codes>
__device__ __forceinline__ unsigned byte_at(const Codes& codes, int offset) {
  const auto byte = codes.start + offset;
  return (codes.word(byte >> 2) >> (static_cast<unsigned>(byte & 3) * 8u)) & 0xFFu;
}

template <class Codes>
__device__ __forceinline__ float f16_at(const Codes& codes, int offset) {  // even byte
  const auto byte = codes.start + offset;
  const auto bits = (codes.word(byte >> 2) >> (static_cast<unsigned>(byte & 2) * 8u)) & 0xFFFFu;
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
}

// Integer codes become floats by placing them under the exponent of 2^23 and subtracting
// (exact for q < 2^23): a logic op and an add on the full-rate pipes, where I2F runs at a
// quarter rate and was the GEMV's bottleneck.
__device__ __forceinline__ float code_minus(unsigned q, float offset) {
  return __uint_as_float(0x4B000000u | q) - (8388608.0f + offset);
}

// Byte k (0-3) of `word` minus `offset`, exact: one byte permute and one add.
__device__ __forceinline__ float byte_minus(std::uint32_t word, int k, float offset) {
  return __uint_as_float(__byte_perm(word, 0x4B000000u, 0x7440u | static_cast<unsigned>(k))) -
         (8388608.0f + offset);
}

// Byte j (0-7) of the 8 bytes x | y << 32 minus `offset`.
__device__ __forceinline__ float byte_minus(uint2 bytes, int j, float offset) {
  return byte_minus(j < 4 ? bytes.x : bytes.y, j % 4, offset);
}

// The 8 bytes with every byte masked to its low (shift 0) or high (shift 4) nibble.
__device__ __forceinline__ uint2 nibbles(uint2 bytes, int shift) {
  return make_uint2((bytes.x >> shift) & 0x0F0F0F0Fu, (bytes.y >> shift) & 0x0F0F0F0Fu);
}

// Signed bytes biased to unsigned (x + 128), for byte_minus(..., 128).
__device__ __forceinline__ uint2 biased(uint2 bytes) {
  return make_uint2(bytes.x ^ 0x80808080u, bytes.y ^ 0x80808080u);
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

// Bytes of a row's codes before element `elements` (a multiple of 8; of 32 / 256 for the ggml
// block formats), rounded up; bnb4 counts from a byte boundary. Host and device share it: the
// GEMV sizes its staging buffers with it.
template <DeviceFormat F>
__host__ __device__ inline std::int64_t row_code_bytes(const FormatView& w, std::int64_t elements) {
  if constexpr (F == DeviceFormat::affine) {
    return elements * w.bits / 8;
  } else if constexpr (F == DeviceFormat::symmetric8 || F == DeviceFormat::float8) {
    return elements;
  } else if constexpr (F == DeviceFormat::symmetric4 || F == DeviceFormat::bnb4) {
    return (elements + 1) / 2;
  } else if constexpr (F == DeviceFormat::ggml_f32) {
    return elements * 4;
  } else if constexpr (F == DeviceFormat::ggml_f16 || F == DeviceFormat::ggml_bf16) {
    return elements * 2;
  } else if constexpr (F == DeviceFormat::ggml_q8_0) {
    return (elements + 31) / 32 * 34;
  } else if constexpr (F == DeviceFormat::ggml_q4_0) {
    return (elements + 31) / 32 * 18;
  } else if constexpr (F == DeviceFormat::ggml_q4_1) {
    return (elements + 31) / 32 * 20;
  } else if constexpr (F == DeviceFormat::ggml_q5_0) {
    return (elements + 31) / 32 * 22;
  } else if constexpr (F == DeviceFormat::ggml_q4_k) {
    return (elements + 255) / 256 * 144;
  } else {
    static_assert(F == DeviceFormat::ggml_q6_k);
    return (elements + 255) / 256 * 210;
  }
}

// Offset in the codes array of the byte holding element `element` of row `row` (element 0: the
// row's first byte, as GlobalRow / StagedRow count).
template <DeviceFormat F>
__device__ __forceinline__ std::int64_t code_byte(const FormatView& w, int row,
                                                  std::int64_t element) {
  if constexpr (F == DeviceFormat::bnb4) {
    return (static_cast<std::int64_t>(row) * w.in + element) / 2;
  } else {
    return static_cast<std::int64_t>(row) * w.row_bytes + row_code_bytes<F>(w, element);
  }
}

template <DeviceFormat F, class Codes>
__device__ __forceinline__ void decode(const FormatView& w, const Codes& codes, int row, int chunk,
                                       float (&v)[8]) {
  if constexpr (F == DeviceFormat::affine) {
    // 8 codes of `bits` bits are exactly `bits` bytes of the row's stream, from byte chunk * bits
    // (row_bytes is a multiple of 4).
    const int start = chunk * w.bits;
    const auto word = (codes.start + start) / 4;  // row starts are 4-byte aligned
    const int shift = (start % 4) * 8;
    const std::uint64_t low = codes.word(word) | (std::uint64_t{codes.word(word + 1)} << 32);
    const std::uint64_t stream =
        shift == 0 ? low : (low >> shift) | (std::uint64_t{codes.word(word + 2)} << (64 - shift));
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
      v[j] = scale[j] * code_minus(q, 0.0f) + bias[j];
    }
  } else if constexpr (F == DeviceFormat::symmetric8) {
    const uint2 b = biased(bytes8(codes, chunk * 8));
    const float scale = __ldg(w.scales + row);
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = scale * byte_minus(b, j, 128.0f);
  } else if constexpr (F == DeviceFormat::symmetric4) {
    // Byte k holds element 2k in its low nibble and 2k + 1 in its high one: nibble j is element j.
    const std::uint32_t b = bytes4(codes, chunk * 4);
    const std::uint32_t low = b & 0x0F0F0F0Fu;
    const std::uint32_t high = (b >> 4) & 0x0F0F0F0Fu;
    const float scale = __ldg(w.scales + row);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      v[2 * k] = scale * byte_minus(low, k, 8.0f);
      v[2 * k + 1] = scale * byte_minus(high, k, 8.0f);
    }
  } else if constexpr (F == DeviceFormat::float8) {
    // Exact conversions: e5m2 is the high byte of an f16; e4m3 (bias 7) shifted into the f32
    // exponent field reads as the value times 2^-120 (subnormals too), rescaled by a power of two.
    // (e4m3fn's NaN code 0x7F reads as 480; quantizers saturate at 448 and never write it.)
    const uint2 b = bytes8(codes, chunk * 8);
    const float scale = __ldg(w.scales + row);
    if (w.float8_e5m2) {
#pragma unroll
      for (int j = 0; j < 8; ++j)
        v[j] =
            __half2float(__ushort_as_half(static_cast<unsigned short>(byte_of(b, j) << 8))) * scale;
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const unsigned byte = byte_of(b, j);
        v[j] = __int_as_float(static_cast<int>(((byte & 0x80u) << 24) | ((byte & 0x7Fu) << 20))) *
               0x1p120f * scale;
      }
    }
  } else if constexpr (F == DeviceFormat::bnb4) {
    // Element f of the flattened matrix is in byte f / 2, the high nibble when f is even. Swapping
    // the nibbles of every byte puts element (f & ~1) + n at nibble n of the swapped word.
    // The row starts at byte floor(row * in / 2), on its low nibble when row * in is odd.
    const std::int64_t first = static_cast<std::int64_t>(row) * w.in + chunk * 8;
    const uint2 b = bytes8(codes, chunk * 4);
    std::uint64_t q = b.x | (std::uint64_t{b.y} << 32);
    q = ((q >> 4) & 0x0F0F0F0F0F0F0F0Full) | ((q & 0x0F0F0F0F0F0F0F0Full) << 4);
    q >>= 4 * (first & 1);
    float absmax[8];
    if (w.flat32) {
      per_group(
          static_cast<unsigned>(first), w.group_size,
          [&](unsigned block) { return __ldg(w.scales + block); }, absmax);
    } else {
      per_group(
          first, w.group_size, [&](std::int64_t block) { return __ldg(w.scales + block); }, absmax);
    }
#pragma unroll
    for (int j = 0; j < 8; ++j)
      v[j] = __ldg(w.table + static_cast<unsigned>((q >> (4 * j)) & 0x0Fu)) * absmax[j];
  } else if constexpr (F == DeviceFormat::ggml_f32) {
    const auto word = codes.start / 4 + chunk * 8;  // row starts are 4-byte aligned
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = __uint_as_float(codes.word(word + j));
  } else if constexpr (F == DeviceFormat::ggml_f16 || F == DeviceFormat::ggml_bf16) {
    const uint2 lo = bytes8(codes, chunk * 16);
    const uint2 hi = bytes8(codes, chunk * 16 + 8);
    const std::uint32_t words[4] = {lo.x, lo.y, hi.x, hi.y};
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const auto bits = static_cast<unsigned short>((words[j / 2] >> (16 * (j % 2))) & 0xFFFFu);
      if constexpr (F == DeviceFormat::ggml_f16) {
        v[j] = __half2float(__ushort_as_half(bits));
      } else {
        v[j] = __bfloat162float(__ushort_as_bfloat16(bits));
      }
    }
  } else if constexpr (F == DeviceFormat::ggml_q8_0) {
    // The 32-element formats: block chunk / 4 of the row, elements [8 (chunk % 4), +8) of it.
    const int block = (chunk / 4) * 34;
    const float d = f16_at(codes, block);
    const uint2 b = biased(bytes8(codes, block + 2 + (chunk % 4) * 8));
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = byte_minus(b, j, 128.0f) * d;
  } else if constexpr (F == DeviceFormat::ggml_q4_0 || F == DeviceFormat::ggml_q4_1) {
    // Element e < 16: low nibble of qs[e]; e >= 16: high nibble of qs[e - 16].
    constexpr int kBlockBytes = F == DeviceFormat::ggml_q4_0 ? 18 : 20;
    constexpr int kHeader = F == DeviceFormat::ggml_q4_0 ? 2 : 4;
    const int block = (chunk / 4) * kBlockBytes;
    const float d = f16_at(codes, block);
    const int within = (chunk % 4) * 8;
    const uint2 b = nibbles(bytes8(codes, block + kHeader + within % 16), within < 16 ? 0 : 4);
    if constexpr (F == DeviceFormat::ggml_q4_0) {
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = byte_minus(b, j, 8.0f) * d;
    } else {
      const float m = f16_at(codes, block + 2);
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = byte_minus(b, j, 0.0f) * d + m;
    }
  } else if constexpr (F == DeviceFormat::ggml_q5_0) {
    const int block = (chunk / 4) * 22;
    const float d = f16_at(codes, block);
    const std::uint32_t high = bytes4(codes, block + 2);
    const int within = (chunk % 4) * 8;
    const uint2 b = bytes8(codes, block + 6 + within % 16);
    const int shift = within < 16 ? 0 : 4;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const unsigned q = ((byte_of(b, j) >> shift) & 0x0Fu) | (((high >> (within + j)) & 1u) << 4);
      v[j] = code_minus(q, 16.0f) * d;
    }
  } else if constexpr (F == DeviceFormat::ggml_q4_k) {
    // 256 elements: four 64s; the first 32 of each in the low nibbles of 32 bytes, the next 32 in
    // the high nibbles; sub-block (32 elements) 6-bit scale and min from the 12 packed bytes at
    // +4 (ggml's get_scale_min_k4).
    const int block = (chunk / 32) * 144;
    const int e = (chunk % 32) * 8;
    const int quarter = e / 64;
    const int in_quarter = e % 64;
    const int sub = 2 * quarter + (in_quarter >= 32 ? 1 : 0);
    const int packed = block + 4;
    unsigned sc = 0, m = 0;
    if (sub < 4) {
      sc = byte_at(codes, packed + sub) & 63u;
      m = byte_at(codes, packed + sub + 4) & 63u;
    } else {
      const unsigned low = byte_at(codes, packed + sub + 4);
      sc = (low & 0x0Fu) | ((byte_at(codes, packed + sub - 4) >> 6) << 4);
      m = (low >> 4) | ((byte_at(codes, packed + sub) >> 6) << 4);
    }
    const float d = f16_at(codes, block) * static_cast<float>(sc);
    const float min = f16_at(codes, block + 2) * static_cast<float>(m);
    const uint2 b = nibbles(bytes8(codes, block + 16 + 32 * quarter + in_quarter % 32),
                            in_quarter < 32 ? 0 : 4);
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = d * byte_minus(b, j, 0.0f) - min;
  } else if constexpr (F == DeviceFormat::ggml_q6_k) {
    // ql[128] low 4 bits, qh[64] high 2 bits, int8 scales[16] (one per 16), f16 d at 208. In each
    // half of 128, element 32 k + l (k < 4) takes ql[l + 32 (k % 2)] (low nibble for k < 2),
    // bits 2k of qh[l] and scale l / 16 + 2 k.
    const int block = (chunk / 32) * 210;
    const int e = (chunk % 32) * 8;
    const int half = e / 128;
    const int k = (e % 128) / 32;
    const int l = e % 32;
    const float scale =
        f16_at(codes, block + 208) * static_cast<float>(static_cast<std::int8_t>(
                                         byte_at(codes, block + 192 + half * 8 + l / 16 + 2 * k)));
    const uint2 ql = bytes8(codes, block + half * 64 + l + (k % 2) * 32);
    const uint2 qh = bytes8(codes, block + 128 + half * 32 + l);
    // Byte j of low | high is element j's 6-bit code.
    const uint2 low = nibbles(ql, k < 2 ? 0 : 4);
    const uint2 high =
        make_uint2(((qh.x >> (2 * k)) & 0x03030303u) << 4, ((qh.y >> (2 * k)) & 0x03030303u) << 4);
    const uint2 q = make_uint2(low.x | high.x, low.y | high.y);
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = scale * byte_minus(q, j, 32.0f);
  }
}

}  // namespace uq::cuda
