#include "kernels/cpu/ggml_gemv_int8.hpp"

#include <cstring>
#include <vector>

#include "core/dtype.hpp"
#include "core/thread_pool.hpp"
#include "kernels/cpu/int8_activations.hpp"

namespace uq::cpu {
namespace {

float half_at(const std::byte* p) {
  std::uint16_t bits;
  std::memcpy(&bits, p, sizeof bits);
  return f16_to_f32(bits);
}

int byte_at(const std::byte* p, std::int64_t i) {
  return static_cast<int>(std::to_integer<std::uint8_t>(p[i]));
}

// Σ code_i·xq_i over one block of 32, codes given by code(i).
template <class Code>
int block_dot(const std::int8_t* xq, Code code) {
  int sum = 0;
  for (int i = 0; i < 32; ++i) sum += code(i) * xq[i];
  return sum;
}

float scalar_q4_0(const std::byte* blocks, const Int8Row& x, std::int64_t count) {
  float sum = 0.0f;
  for (std::int64_t b = 0; b < count / 32; ++b, blocks += 18) {
    const int dot = block_dot(x.q + 32 * b, [&](int i) {
      return (i < 16 ? byte_at(blocks, 2 + i) & 0x0F : byte_at(blocks, 2 + i - 16) >> 4) - 8;
    });
    sum += half_at(blocks) * x.d[b] * static_cast<float>(dot);
  }
  return sum;
}

float scalar_q4_1(const std::byte* blocks, const Int8Row& x, std::int64_t count) {
  float sum = 0.0f, min_sum = 0.0f;
  for (std::int64_t b = 0; b < count / 32; ++b, blocks += 20) {
    const int dot = block_dot(x.q + 32 * b, [&](int i) {
      return i < 16 ? byte_at(blocks, 4 + i) & 0x0F : byte_at(blocks, 4 + i - 16) >> 4;
    });
    sum += half_at(blocks) * x.d[b] * static_cast<float>(dot);
    min_sum += half_at(blocks + 2) * x.dq_sum[b];
  }
  return sum + min_sum;
}

float scalar_q5_0(const std::byte* blocks, const Int8Row& x, std::int64_t count) {
  float sum = 0.0f;
  for (std::int64_t b = 0; b < count / 32; ++b, blocks += 22) {
    std::uint32_t high;
    std::memcpy(&high, blocks + 2, sizeof high);
    const int dot = block_dot(x.q + 32 * b, [&](int i) {
      const int low = i < 16 ? byte_at(blocks, 6 + i) & 0x0F : byte_at(blocks, 6 + i - 16) >> 4;
      return (low | static_cast<int>(((high >> i) & 1u) << 4)) - 16;
    });
    sum += half_at(blocks) * x.d[b] * static_cast<float>(dot);
  }
  return sum;
}

float scalar_q8_0(const std::byte* blocks, const Int8Row& x, std::int64_t count) {
  float sum = 0.0f;
  for (std::int64_t b = 0; b < count / 32; ++b, blocks += 34) {
    const int dot = block_dot(x.q + 32 * b, [&](int i) {
      return static_cast<int>(static_cast<std::int8_t>(blocks[2 + i]));
    });
    sum += half_at(blocks) * x.d[b] * static_cast<float>(dot);
  }
  return sum;
}

float scalar_q4_k(const std::byte* blocks, const Int8Row& x, std::int64_t count) {
  float sum = 0.0f, min_sum = 0.0f;
  for (std::int64_t super = 0; super < count / 256; ++super, blocks += 144) {
    const float d = half_at(blocks), dmin = half_at(blocks + 2);
    const auto s = [&](int i) { return byte_at(blocks + 4, i); };
    for (int j = 0; j < 8; ++j) {
      const int scale = j < 4 ? s(j) & 63 : (s(j + 4) & 0x0F) | ((s(j - 4) >> 6) << 4);
      const int min = j < 4 ? s(j + 4) & 63 : (s(j + 4) >> 4) | ((s(j) >> 6) << 4);
      const std::int64_t b = super * 8 + j;
      // Sub-block j: nibble j % 2 of the 32 bytes at 16 + 32·(j / 2).
      const int dot = block_dot(x.q + 32 * b, [&](int i) {
        return (byte_at(blocks, 16 + 32 * (j / 2) + i) >> (4 * (j % 2))) & 0x0F;
      });
      sum += d * static_cast<float>(scale) * x.d[b] * static_cast<float>(dot);
      min_sum += dmin * static_cast<float>(min) * x.dq_sum[b];
    }
  }
  return sum - min_sum;
}

float scalar_q6_k(const std::byte* blocks, const Int8Row& x, std::int64_t count) {
  float sum = 0.0f;
  for (std::int64_t super = 0; super < count / 256; ++super, blocks += 210) {
    const float d = half_at(blocks + 208);
    for (int j = 0; j < 16; ++j) {  // sub-blocks of 16
      const int half = j / 8, k = (j % 8) / 2;
      const std::int64_t b = super * 8 + j / 2;
      int dot = 0;
      for (int l = 16 * (j % 2); l < 16 * (j % 2) + 16; ++l) {
        const int low = (byte_at(blocks, 64 * half + 32 * (k % 2) + l) >> (4 * (k / 2))) & 0x0F;
        const int high = (byte_at(blocks, 128 + 32 * half + l) >> (2 * k)) & 3;
        dot += ((low | (high << 4)) - 32) * x.q[32 * b + l];
      }
      const auto scale = static_cast<std::int8_t>(blocks[192 + j]);
      sum += d * x.d[b] * static_cast<float>(scale) * static_cast<float>(dot);
    }
  }
  return sum;
}

}  // namespace

bool ggml_int8_gemv_supports(GgmlType type) {
  return ggml_int8_dot_scalar(type) != nullptr;
}

GgmlInt8Dot ggml_int8_dot_scalar(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0:
      return &scalar_q4_0;
    case GgmlType::Q4_1:
      return &scalar_q4_1;
    case GgmlType::Q5_0:
      return &scalar_q5_0;
    case GgmlType::Q8_0:
      return &scalar_q8_0;
    case GgmlType::Q4_K:
      return &scalar_q4_k;
    case GgmlType::Q6_K:
      return &scalar_q6_k;
    default:
      return nullptr;
  }
}

GgmlInt8Dot ggml_int8_dot_simd(GgmlType type, DotIsa isa) {
  return isa == DotIsa::Avx512Vnni ? detail::ggml_int8_dot_vnni(type)
                                   : detail::ggml_int8_dot_avx2(type);
}

void ggml_gemv_int8(GgmlInt8Dot dot, const std::byte* w, std::size_t row_bytes, std::int64_t out,
                    std::int64_t in, const float* x, std::int64_t rows, float* y) {
  // bits 8: activations in natural order, as every ggml block lays out codes.
  const Int8Activations a = quantize_activations(x, rows, in, 8, kActivationBlock);
  const std::int64_t blocks = in / kActivationBlock;
  parallel_for(0, out, items_per_task(in * rows), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t o = lo; o < hi; ++o) {
      const std::byte* w_row = w + static_cast<std::size_t>(o) * row_bytes;
      for (std::int64_t r = 0; r < rows; ++r) {
        const Int8Row row{a.q.data() + r * in, a.d.data() + r * blocks,
                          a.dq_sum.data() + r * blocks};
        y[r * out + o] = dot(w_row, row, in);
      }
    }
  });
}

}  // namespace uq::cpu
