#include "model/float_weight.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "core/error.hpp"
#include "core/thread_pool.hpp"
#include "io/safetensors.hpp"
#include "kernels/cpu/horizontal_sum.hpp"
#include "kernels/cpu/tiled_gemm.hpp"

namespace uq {
namespace {

// Below this many rows of x, reading W once per output row and converting it
// in registers beats materialising float32 blocks for sgemm.
constexpr std::int64_t kGemvMaxRows = 8;

// Eight consecutive weights of a row stored as `kDtype`, as float32.
template <DType kDtype>
inline __m256 load8(const std::byte* row, std::int64_t i) {
  if constexpr (kDtype == DType::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i);
  } else {
    const __m128i half = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i));
    if constexpr (kDtype == DType::F16) return _mm256_cvtph_ps(half);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(half), 16));
  }
}

inline float scalar_at(const std::byte* row, std::int64_t i, DType dtype) {
  if (dtype == DType::F32) {
    float value;
    std::memcpy(&value, row + i * 4, 4);
    return value;
  }
  std::uint16_t bits;
  std::memcpy(&bits, row + i * 2, 2);
  return dtype == DType::F16 ? f16_to_f32(bits) : bf16_to_f32(bits);
}

// y[r, o] = W[o] · x[r] for kOuts consecutive W rows (row_bytes apart) and
// kRows rows of x: kOuts * kRows independent FMA chains hide the FMA latency,
// and each loaded W vector is used for every x row.
template <DType kDtype, int kOuts, int kRows>
void dot_tile(const std::byte* w, std::size_t row_bytes, const float* x, std::int64_t in, float* y,
              std::int64_t y_stride) {
  __m256 acc[kOuts][kRows];
  for (int o = 0; o < kOuts; ++o) {
    for (int r = 0; r < kRows; ++r) acc[o][r] = _mm256_setzero_ps();
  }
  std::int64_t i = 0;
  for (; i + 8 <= in; i += 8) {
    __m256 xs[kRows];
    for (int r = 0; r < kRows; ++r) xs[r] = _mm256_loadu_ps(x + r * in + i);
    for (int o = 0; o < kOuts; ++o) {
      const __m256 weights = load8<kDtype>(w + o * row_bytes, i);
      for (int r = 0; r < kRows; ++r) acc[o][r] = _mm256_fmadd_ps(weights, xs[r], acc[o][r]);
    }
  }
  for (int o = 0; o < kOuts; ++o) {
    for (int r = 0; r < kRows; ++r) {
      float sum = cpu::horizontal_sum(acc[o][r]);
      for (std::int64_t j = i; j < in; ++j) {
        sum += scalar_at(w + o * row_bytes, j, kDtype) * x[r * in + j];
      }
      y[r * y_stride + o] = sum;
    }
  }
}

// Output rows [lo, hi) for `kRows` rows of x: four W rows per tile for a
// single x row (decoding), one or two otherwise.
template <DType kDtype, int kRows>
void gemv_rows(const std::byte* w, std::size_t row_bytes, const float* x, std::int64_t in,
               std::int64_t lo, std::int64_t hi, float* y, std::int64_t out) {
  constexpr int kOuts = kRows == 1 ? 4 : kRows == 2 ? 2 : 1;
  std::int64_t o = lo;
  for (; o + kOuts <= hi; o += kOuts) {
    dot_tile<kDtype, kOuts, kRows>(w + o * row_bytes, row_bytes, x, in, y + o, out);
  }
  for (; o < hi; ++o) dot_tile<kDtype, 1, kRows>(w + o * row_bytes, row_bytes, x, in, y + o, out);
}

template <DType kDtype>
void gemv(const std::byte* w, std::size_t row_bytes, const float* x, std::int64_t rows,
          std::int64_t in, std::int64_t lo, std::int64_t hi, float* y, std::int64_t out) {
  std::int64_t r = 0;
  for (; r + 4 <= rows; r += 4)
    gemv_rows<kDtype, 4>(w, row_bytes, x + r * in, in, lo, hi, y + r * out, out);
  switch (rows - r) {
    case 3:
      gemv_rows<kDtype, 3>(w, row_bytes, x + r * in, in, lo, hi, y + r * out, out);
      break;
    case 2:
      gemv_rows<kDtype, 2>(w, row_bytes, x + r * in, in, lo, hi, y + r * out, out);
      break;
    case 1:
      gemv_rows<kDtype, 1>(w, row_bytes, x + r * in, in, lo, hi, y + r * out, out);
      break;
    default:
      break;
  }
}

}  // namespace

FloatWeight::FloatWeight(Borrowed, DType dtype, std::int64_t out_features, std::int64_t in_features,
                         const void* data)
    : dtype_(dtype), out_features_(out_features), in_features_(in_features) {
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16) {
    fail("float weight: unsupported dtype ", dtype_name(dtype), " (expected F32, F16 or BF16)");
  }
  if (out_features <= 0 || in_features <= 0) {
    fail("float weight: invalid shape [", out_features, ", ", in_features, "]");
  }
  data_ = {static_cast<const std::byte*>(data),
           static_cast<std::size_t>(out_features * in_features) * dtype_size(dtype)};
}

FloatWeight::FloatWeight(DType dtype, std::int64_t out_features, std::int64_t in_features,
                         const void* data)
    : FloatWeight(Borrowed{}, dtype, out_features, in_features, data) {
  owned_.assign(data_.begin(), data_.end());
  data_ = owned_;
}

namespace {

void check_float_matrix(const TensorView& tensor) {
  if (tensor.shape.size() != 2) {
    fail("tensor '", tensor.name, "': expected a 2-D weight, got ", tensor.shape.size(),
         " dimensions");
  }
  if (tensor.dtype != DType::F32 && tensor.dtype != DType::F16 && tensor.dtype != DType::BF16) {
    fail("tensor '", tensor.name, "': unsupported dtype ", dtype_name(tensor.dtype),
         " for a float weight (expected F32, F16 or BF16)");
  }
}

}  // namespace

std::shared_ptr<FloatWeight> FloatWeight::from_tensor(const TensorView& tensor) {
  check_float_matrix(tensor);
  return std::make_shared<FloatWeight>(tensor.dtype, tensor.shape[0], tensor.shape[1], tensor.data);
}

std::shared_ptr<FloatWeight> FloatWeight::borrow(const TensorView& tensor) {
  check_float_matrix(tensor);
  return std::shared_ptr<FloatWeight>(
      new FloatWeight(Borrowed{}, tensor.dtype, tensor.shape[0], tensor.shape[1], tensor.data));
}

std::string FloatWeight::describe() const {
  switch (dtype_) {
    case DType::F32:
      return "f32";
    case DType::F16:
      return "f16";
    default:
      return "bf16";
  }
}

const std::byte* FloatWeight::row_bytes(std::int64_t row) const {
  return data_.data() + static_cast<std::size_t>(row * in_features_) * dtype_size(dtype_);
}

void FloatWeight::dequantize_rows(std::int64_t first, std::int64_t count, float* out) const {
  if (first < 0 || count < 0 || first + count > out_features_) {
    fail("float weight: rows [", first, ", ", first + count, ") outside [0, ", out_features_, ")");
  }
  convert_to_f32(dtype_, row_bytes(first), static_cast<std::size_t>(count * in_features_), out);
}

void FloatWeight::matmul(const float* x, std::int64_t rows, float* y) const {
  if (rows <= 0) return;
  if (rows <= kGemvMaxRows) {
    matmul_gemv(x, rows, y);
  } else {
    matmul_gemm(x, rows, y);
  }
}

void FloatWeight::matmul_gemv(const float* x, std::int64_t rows, float* y) const {
  const std::int64_t in = in_features_;
  const std::int64_t out = out_features_;
  const std::int64_t min_chunk = items_per_task(in * rows);
  const std::size_t row_size = static_cast<std::size_t>(in) * dtype_size(dtype_);
  parallel_for(0, out, min_chunk, [&](std::int64_t lo, std::int64_t hi) {
    switch (dtype_) {
      case DType::F32:
        gemv<DType::F32>(data_.data(), row_size, x, rows, in, lo, hi, y, out);
        break;
      case DType::F16:
        gemv<DType::F16>(data_.data(), row_size, x, rows, in, lo, hi, y, out);
        break;
      default:
        gemv<DType::BF16>(data_.data(), row_size, x, rows, in, lo, hi, y, out);
        break;
    }
  });
}

void FloatWeight::matmul_gemm(const float* x, std::int64_t rows, float* y) const {
  cpu::tiled_gemm(out_features_, in_features_, x, rows, y,
                  [&](std::int64_t first, std::int64_t count, float* scratch) {
                    if (dtype_ == DType::F32) {
                      return reinterpret_cast<const float*>(row_bytes(first));
                    }
                    convert_to_f32(dtype_, row_bytes(first),
                                   static_cast<std::size_t>(count * in_features_), scratch);
                    return static_cast<const float*>(scratch);
                  });
}

void FloatWeight::matmul_reference(const float* x, std::int64_t rows, float* y) const {
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t o = 0; o < out_features_; ++o) {
      const std::byte* w_row = row_bytes(o);
      double sum = 0.0;
      for (std::int64_t i = 0; i < in_features_; ++i) {
        sum += static_cast<double>(scalar_at(w_row, i, dtype_)) * x[r * in_features_ + i];
      }
      y[r * out_features_ + o] = static_cast<float>(sum);
    }
  }
}

}  // namespace uq
