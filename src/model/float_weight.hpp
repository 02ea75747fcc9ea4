#pragma once
// A weight kept in its stored float dtype (f32, f16 or bf16): a bf16 model
// stays bf16 in memory and is converted to float32 on the fly while multiplying.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/dtype.hpp"
#include "model/weight.hpp"

namespace uq {

struct TensorView;

class FloatWeight final : public Weight {
 public:
  // Copies `out_features * in_features` elements of `dtype` (F32/F16/BF16) from `data`.
  FloatWeight(DType dtype, std::int64_t out_features, std::int64_t in_features, const void* data);
  // From a 2-D float tensor [out, in]; throws uq::Error naming the tensor otherwise.
  static std::shared_ptr<FloatWeight> from_tensor(const TensorView& tensor);
  // Borrows the bytes of a 2-D float tensor instead of copying them (a
  // memory-mapped checkpoint that must outlive the weight): only the pages a
  // computation touches become resident. Streaming calibration runs on these.
  static std::shared_ptr<FloatWeight> borrow(const TensorView& tensor);
  FloatWeight(const FloatWeight&) = delete;
  FloatWeight& operator=(const FloatWeight&) = delete;

  std::int64_t out_features() const override { return out_features_; }
  std::int64_t in_features() const override { return in_features_; }
  // Few rows: an AVX2 dot-product kernel over output rows (threads split the
  // rows of W, each W row is read once for all rows of x). Many rows: blocks of
  // W converted to float32 and multiplied with OpenBLAS sgemm.
  void matmul(const float* x, std::int64_t rows, float* y) const override;
  void dequantize_rows(std::int64_t first, std::int64_t count, float* out) const override;
  std::size_t storage_bytes() const override { return data_.size(); }
  std::string describe() const override;

  DType dtype() const { return dtype_; }
  // The stored elements, row-major [out, in] in dtype().
  std::span<const std::byte> bytes() const { return data_; }
  // Plain scalar loops, the reference the fast paths are tested against.
  void matmul_reference(const float* x, std::int64_t rows, float* y) const;

 private:
  struct Borrowed {};
  FloatWeight(Borrowed, DType dtype, std::int64_t out_features, std::int64_t in_features,
              const void* data);
  void matmul_gemv(const float* x, std::int64_t rows, float* y) const;
  void matmul_gemm(const float* x, std::int64_t rows, float* y) const;
  const std::byte* row_bytes(std::int64_t row) const;

  DType dtype_;
  std::int64_t out_features_;
  std::int64_t in_features_;
  std::vector<std::byte> owned_;  // empty when borrowed
  std::span<const std::byte> data_;
};

}  // namespace uq
