#include "kernels/cuda/device_linear.hpp"

#include <algorithm>
#include <cstring>
#include <span>

#include "core/dtype.hpp"
#include "core/error.hpp"
#include "kernels/cuda/affine_gemv.hpp"
#include "kernels/cuda/bf16_gemv.hpp"
#include "kernels/cuda/cublas_library.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/decoder_kernels.hpp"
#include "kernels/cuda/format_device_matrix.hpp"
#include "model/float_weight.hpp"
#include "quant/affine_weight.hpp"

namespace uq::cuda {
namespace {

const FloatWeight* as_float(const Weight& weight) {
  return dynamic_cast<const FloatWeight*>(&weight);
}
// Affine weights the tuned bf16 kernels (affine_gemv_cuda) take; others go to the format path.
const AffineWeight* as_affine(const Weight& weight) {
  const auto* affine = dynamic_cast<const AffineWeight*>(&weight);
  if (affine == nullptr || affine->param_dtype() != DType::BF16) return nullptr;
  const int bits = affine->bits();
  const int group = affine->group_size();
  const bool tuned = bits != 1 && bits != 7 && (group == 32 || group == 64 || group == 128);
  return tuned ? affine : nullptr;
}

// Grows `buffer` to at least `count` elements (contents are not kept).
template <class T>
void reserve(DeviceBuffer<T>& buffer, std::size_t count) {
  if (buffer.size() < count) buffer = DeviceBuffer<T>(count);
}

int narrow(std::int64_t value, const std::string& name) {
  if (value > (std::int64_t{1} << 30)) fail("module '", name, "': dimension ", value, " too large");
  return static_cast<int>(value);
}

}  // namespace

std::optional<std::string> cuda_unsupported_reason(const NamedWeight& named) {
  const Weight& weight = *named.weight;
  if (as_float(weight) != nullptr) return std::nullopt;
  if (as_affine(weight) != nullptr) return std::nullopt;
  return format_unsupported_reason(named);
}

bool DeviceMatrix::fusable(const Weight& a, const Weight& b) {
  if (a.in_features() != b.in_features()) return false;
  const FloatWeight* float_a = as_float(a);
  const FloatWeight* float_b = as_float(b);
  if (float_a != nullptr && float_b != nullptr) {
    return (float_a->dtype() == DType::BF16) == (float_b->dtype() == DType::BF16);
  }
  const AffineWeight* affine_a = as_affine(a);
  const AffineWeight* affine_b = as_affine(b);
  if (affine_a != nullptr || affine_b != nullptr) {
    return affine_a != nullptr && affine_b != nullptr && affine_a->bits() == affine_b->bits() &&
           affine_a->group_size() == affine_b->group_size();
  }
  return float_a == nullptr && float_b == nullptr && format_fusable(a, b);
}

DeviceMatrix::DeviceMatrix(const std::vector<NamedWeight>& parts) {
  if (parts.empty()) fail("cuda: a device matrix needs at least one weight");
  for (const auto& part : parts) {
    if (auto reason = cuda_unsupported_reason(part)) fail(*reason);
    if (&part != &parts.front() && !fusable(*parts.front().weight, *part.weight)) {
      fail("module '", part.name, "': cannot share a device matrix with '", parts.front().name,
           "'");
    }
    out_ += narrow(part.weight->out_features(), part.name);
  }
  const std::string& name = parts.front().name;
  in_ = narrow(parts.front().weight->in_features(), name);
  const std::size_t elements = static_cast<std::size_t>(out_) * static_cast<std::size_t>(in_);
  if (const FloatWeight* first = as_float(*parts.front().weight)) {
    if (first->dtype() == DType::BF16) {
      kind_ = Kind::bf16;
      std::vector<__nv_bfloat16> host(elements);
      std::size_t offset = 0;
      for (const auto& part : parts) {
        const auto bytes = as_float(*part.weight)->bytes();
        std::memcpy(host.data() + offset, bytes.data(), bytes.size());
        offset += bytes.size() / sizeof(__nv_bfloat16);
      }
      bf16_ = DeviceBuffer<__nv_bfloat16>(elements);
      bf16_.upload(host);
    } else {
      kind_ = Kind::f32;
      std::vector<float> host(elements);
      std::size_t offset = 0;
      for (const auto& part : parts) {
        const auto rows = part.weight->out_features();
        part.weight->dequantize_rows(0, rows, host.data() + offset);  // exact for f32 and f16
        offset += static_cast<std::size_t>(rows) * static_cast<std::size_t>(in_);
      }
      f32_ = DeviceBuffer<float>(elements);
      f32_.upload(host);
    }
    return;
  }
  if (as_affine(*parts.front().weight) == nullptr) {
    kind_ = Kind::format;
    format_ = make_format_device_matrix(parts);
    return;
  }
  kind_ = Kind::affine;
  std::vector<std::uint32_t> codes;
  std::vector<std::uint16_t> scales;
  std::vector<std::uint16_t> biases;
  const auto append_u16 = [](std::vector<std::uint16_t>& to, std::span<const std::byte> bytes) {
    const std::size_t old = to.size();
    to.resize(old + bytes.size() / 2);
    std::memcpy(to.data() + old, bytes.data(), bytes.size());
  };
  for (const auto& part : parts) {
    const AffineWeight& affine = *as_affine(*part.weight);
    codes.insert(codes.end(), affine.codes().begin(), affine.codes().end());
    append_u16(scales, affine.scales());
    append_u16(biases, affine.biases());
  }
  const AffineWeight& first = *as_affine(*parts.front().weight);
  affine_ = std::make_unique<AffineDeviceWeight>(
      AffineHostWeight{name, out_, in_, first.bits(), first.group_size(), codes, scales, biases});
}

DeviceMatrix::~DeviceMatrix() = default;

bool DeviceMatrix::accumulates_in_place(int rows) const {
  return (kind_ == Kind::affine && gemv_kernel_accumulates(automatic_kernel(rows), rows)) ||
         (kind_ == Kind::bf16 && bf16_gemv_supports(rows, in_));
}

bool DeviceMatrix::fuses_input(int rows) const {
  // Only where a stream kernel or the persistent kernel is the automatic choice anyway.
  if (kind_ != Kind::affine || rows < 1 || rows > 16) return false;
  const GemvKernel kernel = automatic_kernel(rows);
  return kernel == GemvKernel::persistent || is_stream_gemv_kernel(kernel);
}

GemvKernel DeviceMatrix::automatic_kernel(int rows) const {
  return automatic_gemv_kernel(rows, out_, in_, affine_->bits(), affine_->group_size());
}

void DeviceMatrix::multiply_fused(const float* input, int rows, const GemvInput& how, float* y,
                                  bool accumulate, const LinearContext& context) const {
  if (!fuses_input(rows)) fail("cuda: this product cannot fuse its input transform");
  affine_gemv_fused_cuda(*affine_, input, rows, y, context.stream, how, accumulate,
                         context.scratch != nullptr ? &context.scratch->gemv : nullptr);
}

DeviceMatrix::Product DeviceMatrix::multiply(const float* x, int rows, const LinearContext& context,
                                             float* direct, bool accumulate) const {
  if (accumulate && (direct == nullptr || !accumulates_in_place(rows))) {
    fail("cuda: this product cannot accumulate in place");
  }
  if (kind_ == Kind::format) return format_->multiply(x, rows, context, direct);
  LinearScratch& scratch = *context.scratch;
  const std::size_t outputs = static_cast<std::size_t>(rows) * static_cast<std::size_t>(out_);
  if (kind_ == Kind::affine) {
    if (direct != nullptr) {
      affine_gemv_cuda(*affine_, x, rows, direct, context.stream, GemvKernel::automatic, accumulate,
                       &scratch.gemv);
      return {direct, nullptr};
    }
    reserve(scratch.product, outputs);
    affine_gemv_cuda(*affine_, x, rows, scratch.product.data(), context.stream,
                     GemvKernel::automatic, false, &scratch.gemv);
    return {scratch.product.data(), nullptr};
  }
  const float one = 1.0f;
  const float zero = 0.0f;
  UQ_CUDA_CHECK(cublas_library().set_stream(context.cublas, context.stream));
  // Row-major y [n, out] = x [n, in] W^T is column-major y^T = W^T(col-major [in, out])^T x^T.
  if (kind_ == Kind::f32) {
    reserve(scratch.product, outputs);
    UQ_CUDA_CHECK(cublas_library().sgemm(context.cublas, CUBLAS_OP_T, CUBLAS_OP_N, out_, rows, in_,
                                         &one, f32_.data(), in_, x, in_, &zero,
                                         scratch.product.data(), out_));
    return {scratch.product.data(), nullptr};
  }
  if (bf16_gemv_supports(rows, in_)) {
    float* y = direct;
    if (y == nullptr) {
      reserve(scratch.product, outputs);
      y = scratch.product.data();
    }
    bf16_gemv_cuda(bf16_.data(), out_, in_, x, rows, y, accumulate, context.stream);
    return {y, nullptr};
  }
  reserve(scratch.split, 2 * static_cast<std::size_t>(rows) * static_cast<std::size_t>(in_));
  reserve(scratch.product, 2 * outputs);
  split_bf16(x, rows, in_, scratch.split.data(), context.stream);
  UQ_CUDA_CHECK(cublas_library().gemm_ex(
      context.cublas, CUBLAS_OP_T, CUBLAS_OP_N, out_, 2 * rows, in_, &one, bf16_.data(),
      CUDA_R_16BF, in_, scratch.split.data(), CUDA_R_16BF, in_, &zero, scratch.product.data(),
      CUDA_R_32F, out_, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  return {scratch.product.data(), scratch.product.data() + outputs};
}

void DeviceMatrix::gather(const std::int32_t* ids, int count, float* out,
                          cudaStream_t stream) const {
  switch (kind_) {
    case Kind::bf16:
      return gather_rows(bf16_.data(), in_, ids, count, out, stream);
    case Kind::f32:
      return gather_rows(f32_.data(), in_, ids, count, out, stream);
    case Kind::affine:
      return gather_rows(*affine_, ids, count, out, stream);
    case Kind::format:
      return format_->gather(ids, count, out, stream);
  }
}

DeviceLinear::DeviceLinear(const std::vector<Part>& parts) {
  std::vector<NamedWeight> group;
  const auto close_group = [&] {
    if (!group.empty()) groups_.push_back(std::make_shared<const DeviceMatrix>(group));
    group.clear();
  };
  bool any_bias = false;
  for (const auto& part : parts) {
    if (!group.empty() && !DeviceMatrix::fusable(*group.front().weight, *part.weight.weight)) {
      close_group();
    }
    group.push_back(part.weight);
    out_ += narrow(part.weight.weight->out_features(), part.weight.name);
    any_bias = any_bias || (part.bias != nullptr && !part.bias->empty());
  }
  close_group();
  if (!any_bias) return;
  std::vector<float> bias;
  for (const auto& part : parts) {
    const auto width = static_cast<std::size_t>(part.weight.weight->out_features());
    if (part.bias != nullptr && !part.bias->empty()) {
      bias.insert(bias.end(), part.bias->begin(), part.bias->end());
    } else {
      bias.resize(bias.size() + width, 0.0f);
    }
  }
  bias_ = DeviceBuffer<float>(bias.size());
  bias_.upload(bias);
}

DeviceLinear::DeviceLinear(std::shared_ptr<const DeviceMatrix> matrix) : out_(matrix->out()) {
  groups_.push_back(std::move(matrix));
}

void DeviceLinear::apply(const float* x, int rows, float* y, int y_stride, bool accumulate,
                         const LinearContext& context) const {
  // One matrix, no bias, contiguous rows: the product may go straight into y (adding to it
  // where the kernel can).
  const bool plain = groups_.size() == 1 && bias_.size() == 0 && y_stride == out_ &&
                     (!accumulate || groups_.front()->accumulates_in_place(rows));
  int column = 0;
  for (const auto& group : groups_) {
    const DeviceMatrix::Product product =
        group->multiply(x, rows, context, plain ? y : nullptr, plain && accumulate);
    if (product.a == y) continue;  // written in place
    const float* bias = bias_.size() > 0 ? bias_.data() + column : nullptr;
    linear_epilogue(product.a, product.b, bias, rows, group->out(), y, y_stride, column, accumulate,
                    context.stream);
    column += group->out();
  }
}

bool DeviceLinear::fuses_input(int rows, int y_stride) const {
  return groups_.size() == 1 && bias_.size() == 0 && y_stride == out_ &&
         groups_.front()->fuses_input(rows);
}

void DeviceLinear::apply_fused(const float* input, int rows, const GemvInput& how, float* y,
                               int y_stride, bool accumulate, const LinearContext& context) const {
  if (!fuses_input(rows, y_stride)) fail("cuda: this linear cannot fuse its input transform");
  groups_.front()->multiply_fused(input, rows, how, y, accumulate, context);
}

}  // namespace uq::cuda
