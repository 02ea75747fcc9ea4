#include "kernels/cuda/format_device_matrix.hpp"

#include <algorithm>
#include <cstring>
#include <span>

#include "core/dtype.hpp"
#include "core/error.hpp"
#include "kernels/cuda/cublas_library.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/format_kernels.hpp"
#include "kernels/cuda/int8_rowwise_kernels.hpp"
#include "kernels/cuda/wrapper_kernels.hpp"
#include "quant/affine_weight.hpp"
#include "quant/bnb4_weight.hpp"
#include "quant/float8_weight.hpp"
#include "quant/ggml_weight.hpp"
#include "quant/int8_rowwise_weight.hpp"
#include "quant/quanto_activation_weight.hpp"
#include "quant/symmetric_weight.hpp"
#include "train/lora_weight.hpp"

namespace uq::cuda {
namespace {

// Bytes and floats past the end of every uploaded array: the decoders read whole chunks (and
// the affine one up to three words) from the last row's tail.
constexpr std::size_t kCodePadding = 64;
constexpr std::size_t kParamPadding = 16;
// Prompt path: W is decoded in tiles of at most this many elements (rows of in), at least
// kMinTileRows rows and at most kMaxTileRows.
constexpr std::int64_t kTileElements = std::int64_t{1} << 22;
constexpr int kMinTileRows = 64;
constexpr int kMaxTileRows = 1024;

template <class T>
void reserve(DeviceBuffer<T>& buffer, std::size_t count) {
  if (buffer.size() < count) buffer = DeviceBuffer<T>(count);
}

template <class T>
DeviceBuffer<T> upload_padded(std::vector<T> host, std::size_t padding) {
  host.resize(host.size() + padding, T{});
  DeviceBuffer<T> device(host.size());
  device.upload(host);
  return device;
}

template <class T, class Source>
void append(std::vector<T>& to, const Source& from) {
  to.insert(to.end(), from.begin(), from.end());
}

void append_bytes(std::vector<std::uint8_t>& to, std::span<const std::byte> from) {
  const std::size_t old = to.size();
  to.resize(old + from.size());
  if (!from.empty()) std::memcpy(to.data() + old, from.data(), from.size());
}

void append_converted(std::vector<float>& to, DType dtype, std::span<const std::byte> bytes) {
  const std::size_t count = bytes.size() / dtype_size(dtype);
  const std::size_t old = to.size();
  to.resize(old + count);
  convert_to_f32(dtype, bytes.data(), count, to.data() + old);
}

int narrow(std::int64_t value, const std::string& name) {
  if (value <= 0 || value > (std::int64_t{1} << 30))
    fail("module '", name, "': dimension ", value, " not supported on CUDA");
  return static_cast<int>(value);
}

std::optional<DeviceFormat> ggml_device_format(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
      return DeviceFormat::ggml_f32;
    case GgmlType::F16:
      return DeviceFormat::ggml_f16;
    case GgmlType::BF16:
      return DeviceFormat::ggml_bf16;
    case GgmlType::Q8_0:
      return DeviceFormat::ggml_q8_0;
    case GgmlType::Q4_0:
      return DeviceFormat::ggml_q4_0;
    case GgmlType::Q4_1:
      return DeviceFormat::ggml_q4_1;
    case GgmlType::Q5_0:
      return DeviceFormat::ggml_q5_0;
    case GgmlType::Q4_K:
      return DeviceFormat::ggml_q4_k;
    case GgmlType::Q6_K:
      return DeviceFormat::ggml_q6_k;
  }
  return std::nullopt;
}

// The decoded format of `weight`, or nullopt for a Weight type that is not one.
std::optional<DeviceFormat> decoded_format(const Weight& weight) {
  if (dynamic_cast<const AffineWeight*>(&weight) != nullptr) return DeviceFormat::affine;
  if (const auto* symmetric = dynamic_cast<const SymmetricWeight*>(&weight)) {
    return symmetric->bits() == 8 ? DeviceFormat::symmetric8 : DeviceFormat::symmetric4;
  }
  if (dynamic_cast<const Float8Weight*>(&weight) != nullptr) return DeviceFormat::float8;
  if (dynamic_cast<const Bnb4Weight*>(&weight) != nullptr) return DeviceFormat::bnb4;
  if (const auto* ggml = dynamic_cast<const GgmlWeight*>(&weight)) {
    return ggml_device_format(ggml->type());
  }
  return std::nullopt;
}

// A bnb4 part can be concatenated with others only when it ends on a block and a byte.
bool bnb4_block_aligned(const Bnb4Weight& weight) {
  const std::int64_t elements = weight.out_features() * weight.in_features();
  return elements % weight.blocksize() == 0 && elements % 2 == 0;
}

// ---- decoded formats --------------------------------------------------------------------

struct HostFormat {
  FormatView view;
  std::vector<std::uint8_t> codes;
  std::vector<float> scales;
  std::vector<float> biases;
  std::vector<float> table;
};

// Appends the arrays of `weight` (of format host.view.format) to host.
void append_part(HostFormat& host, const Weight& weight) {
  FormatView& view = host.view;
  const auto out = weight.out_features();
  const auto in = weight.in_features();
  switch (view.format) {
    case DeviceFormat::affine: {
      const auto& affine = dynamic_cast<const AffineWeight&>(weight);
      view.bits = affine.bits();
      view.group_size = affine.group_size();
      view.groups = static_cast<int>(in / affine.group_size());
      view.row_bytes = in / 32 * affine.bits() * 4;
      const auto codes = affine.codes();
      append_bytes(host.codes, std::as_bytes(codes.first(static_cast<std::size_t>(out) *
                                                         static_cast<std::size_t>(in / 32) *
                                                         static_cast<std::size_t>(view.bits))));
      append_converted(host.scales, affine.param_dtype(), affine.scales());
      append_converted(host.biases, affine.param_dtype(), affine.biases());
      return;
    }
    case DeviceFormat::symmetric8:
    case DeviceFormat::symmetric4: {
      const auto& symmetric = dynamic_cast<const SymmetricWeight&>(weight);
      const cpu::SymmetricMatrix matrix = symmetric.matrix();
      view.row_bytes = matrix.bytes_per_row();
      append(host.codes, symmetric.codes());
      host.scales.insert(host.scales.end(), matrix.scales, matrix.scales + out);
      return;
    }
    case DeviceFormat::float8: {
      const auto& float8 = dynamic_cast<const Float8Weight&>(weight);
      view.row_bytes = in;
      append(host.codes, float8.codes());
      append_converted(host.scales, float8.scale_dtype(), float8.scale_bytes());
      view.float8_e5m2 = float8.format() == DType::F8_E5M2;
      return;
    }
    case DeviceFormat::bnb4: {
      const auto& bnb4 = dynamic_cast<const Bnb4Weight&>(weight);
      view.group_size = bnb4.blocksize();
      append(host.codes, bnb4.packed());
      append(host.scales, bnb4.absmax());
      host.table = bnb4.code();
      return;
    }
    default: {
      const auto& ggml = dynamic_cast<const GgmlWeight&>(weight);
      view.row_bytes = static_cast<std::int64_t>(ggml_row_bytes(ggml.type(), in));
      append_bytes(host.codes, ggml.bytes());
      return;
    }
  }
}

class DecodedDeviceMatrix final : public FormatDeviceMatrix {
 public:
  explicit DecodedDeviceMatrix(HostFormat host)
      : codes_(upload_padded(std::move(host.codes), kCodePadding)),
        scales_(upload_padded(std::move(host.scales), kParamPadding)),
        biases_(upload_padded(std::move(host.biases), kParamPadding)),
        table_(upload_padded(std::move(host.table), kParamPadding)),
        view_(host.view) {
    view_.codes = codes_.data();
    view_.scales = scales_.data();
    view_.biases = biases_.data();
    view_.table = table_.data();
  }

  DeviceMatrix::Product multiply(const float* x, int rows, const LinearContext& context,
                                 float* direct) const override {
    float* y = direct;
    if (y == nullptr) {
      reserve(context.scratch->product,
              static_cast<std::size_t>(rows) * static_cast<std::size_t>(view_.out));
      y = context.scratch->product.data();
    }
    if (rows <= kFormatGemvMaxRows) {
      format_gemv(view_, x, rows, y, context.stream);
      return {y, nullptr};
    }
    const auto by_size =
        static_cast<int>(std::min<std::int64_t>(kTileElements / view_.in, kMaxTileRows));
    const int tile_rows = std::min(view_.out, std::max(kMinTileRows, by_size));
    reserve(context.scratch->tile,
            static_cast<std::size_t>(tile_rows) * static_cast<std::size_t>(view_.in));
    float* tile = context.scratch->tile.data();
    const float one = 1.0f;
    const float zero = 0.0f;
    UQ_CUDA_CHECK(cublas_library().set_stream(context.cublas, context.stream));
    for (int first = 0; first < view_.out; first += tile_rows) {
      const int count = std::min(tile_rows, view_.out - first);
      format_decode_rows(view_, first, nullptr, count, tile, context.stream);
      // Column-major y^T[first.., :] (count x rows, ld out) = tile^T^T x^T.
      UQ_CUDA_CHECK(cublas_library().sgemm(context.cublas, CUBLAS_OP_T, CUBLAS_OP_N, count, rows,
                                           view_.in, &one, tile, view_.in, x, view_.in, &zero,
                                           y + first, view_.out));
    }
    return {y, nullptr};
  }

  void gather(const std::int32_t* ids, int count, float* out, cudaStream_t stream) const override {
    format_decode_rows(view_, 0, ids, count, out, stream);
  }

 private:
  DeviceBuffer<std::uint8_t> codes_;
  DeviceBuffer<float> scales_;
  DeviceBuffer<float> biases_;
  DeviceBuffer<float> table_;
  FormatView view_;
};

// ---- LLM.int8 ---------------------------------------------------------------------------

class Int8RowwiseDeviceMatrix final : public FormatDeviceMatrix {
 public:
  Int8RowwiseDeviceMatrix(const std::vector<NamedWeight>& parts, int out, int in) : in_(in) {
    std::vector<std::uint8_t> codes;
    std::vector<float> scb;
    std::vector<float> scales;  // SCB / 127, as dequantize_rows scales
    for (const auto& part : parts) {
      const auto& weight = dynamic_cast<const Int8RowwiseWeight&>(*part.weight);
      const auto* bytes = reinterpret_cast<const std::uint8_t*>(weight.codes().data());
      codes.insert(codes.end(), bytes, bytes + weight.codes().size());
      append(scb, weight.scb());
      for (const float value : weight.scb()) scales.push_back(value / 127.0f);
      threshold_ = weight.threshold();
    }
    codes_ = upload_padded(std::move(codes), kCodePadding);
    scb_ = upload_padded(std::move(scb), 0);
    scales_ = upload_padded(std::move(scales), kParamPadding);
    view_.format = DeviceFormat::symmetric8;
    view_.codes = codes_.data();
    view_.scales = scales_.data();
    view_.row_bytes = in;
    view_.out = out;
    view_.in = in;
  }

  DeviceMatrix::Product multiply(const float* x, int rows, const LinearContext& context,
                                 float* direct) const override {
    LinearScratch& scratch = *context.scratch;
    const auto row_count = static_cast<std::size_t>(rows);
    const auto in = static_cast<std::size_t>(in_);
    reserve(scratch.quantized_x, row_count * in);
    reserve(scratch.row_absmax, row_count);
    reserve(scratch.outliers, 2 * in + 1);
    float* y = direct;
    if (y == nullptr) {
      reserve(scratch.product, row_count * static_cast<std::size_t>(view_.out));
      y = scratch.product.data();
    }
    int8_rowwise_matmul(
        reinterpret_cast<const std::int8_t*>(codes_.data()), scb_.data(), view_.out, in_,
        threshold_, x, rows, y,
        {scratch.quantized_x.data(), scratch.row_absmax.data(), scratch.outliers.data()},
        context.stream);
    return {y, nullptr};
  }

  void gather(const std::int32_t* ids, int count, float* out, cudaStream_t stream) const override {
    format_decode_rows(view_, 0, ids, count, out, stream);
  }

 private:
  int in_;
  float threshold_ = Int8RowwiseWeight::kDefaultThreshold;
  DeviceBuffer<std::uint8_t> codes_;
  DeviceBuffer<float> scb_;
  DeviceBuffer<float> scales_;
  FormatView view_;
};

// ---- wrappers ---------------------------------------------------------------------------

ActivationCode activation_code(DType qtype) {
  if (qtype == DType::I8) return ActivationCode::int8;
  if (qtype == DType::F8_E4M3) return ActivationCode::e4m3;
  return ActivationCode::e5m2;
}

class ActivationDeviceMatrix final : public FormatDeviceMatrix {
 public:
  explicit ActivationDeviceMatrix(const NamedWeight& part)
      : ActivationDeviceMatrix(part.name,
                               dynamic_cast<const QuantoActivationWeight&>(*part.weight)) {}
  ActivationDeviceMatrix(const std::string& name, const QuantoActivationWeight& weight)
      : inner_(std::vector<NamedWeight>{{name, weight.weight().get()}}),
        code_(activation_code(weight.qtype())),
        scales_(weight.scales()) {}

  DeviceMatrix::Product multiply(const float* x, int rows, const LinearContext& context,
                                 float* direct) const override {
    LinearScratch& scratch = *context.scratch;
    const std::size_t inputs =
        static_cast<std::size_t>(rows) * static_cast<std::size_t>(inner_.in());
    reserve(scratch.activations, inputs);
    quantize_dequantize(x, nullptr, inputs, code_, scales_.input, scratch.activations.data(),
                        context.stream);
    const DeviceMatrix::Product product =
        inner_.multiply(scratch.activations.data(), rows, context, direct);
    // The inner product lies in direct or in scratch the wrapper may overwrite element-wise.
    float* y = direct != nullptr ? direct : const_cast<float*>(product.a);
    quantize_dequantize(product.a, product.b,
                        static_cast<std::size_t>(rows) * static_cast<std::size_t>(inner_.out()),
                        code_, scales_.output, y, context.stream);
    return {y, nullptr};
  }

  void gather(const std::int32_t* ids, int count, float* out, cudaStream_t stream) const override {
    inner_.gather(ids, count, out, stream);
  }

 private:
  DeviceMatrix inner_;
  ActivationCode code_;
  ActivationScales scales_;
};

class LoraDeviceMatrix final : public FormatDeviceMatrix {
 public:
  explicit LoraDeviceMatrix(const NamedWeight& part)
      : base_(std::vector<NamedWeight>{
            {part.name, dynamic_cast<const LoraWeight&>(*part.weight).base().get()}}) {
    const LoraAdapter& adapter = *dynamic_cast<const LoraWeight&>(*part.weight).adapter();
    rank_ = narrow(adapter.rank, part.name);
    scale_ = adapter.scale;
    a_ = upload_padded(adapter.a, 0);
    b_ = upload_padded(adapter.b, 0);
  }

  DeviceMatrix::Product multiply(const float* x, int rows, const LinearContext& context,
                                 float* direct) const override {
    const DeviceMatrix::Product product = base_.multiply(x, rows, context, direct);
    LinearScratch& scratch = *context.scratch;
    reserve(scratch.lora, static_cast<std::size_t>(rows) * static_cast<std::size_t>(rank_));
    const float one = 1.0f;
    const float zero = 0.0f;
    UQ_CUDA_CHECK(cublas_library().set_stream(context.cublas, context.stream));
    // projected^T [rank, rows] = A x^T; y^T += scale B projected^T (column-major views).
    UQ_CUDA_CHECK(cublas_library().sgemm(context.cublas, CUBLAS_OP_T, CUBLAS_OP_N, rank_, rows,
                                         base_.in(), &one, a_.data(), base_.in(), x, base_.in(),
                                         &zero, scratch.lora.data(), rank_));
    // product.a is direct or scratch this matrix owns for the call: y = a (+ b) gains the term.
    UQ_CUDA_CHECK(cublas_library().sgemm(
        context.cublas, CUBLAS_OP_T, CUBLAS_OP_N, base_.out(), rows, rank_, &scale_, b_.data(),
        rank_, scratch.lora.data(), rank_, &one, const_cast<float*>(product.a), base_.out()));
    return product;
  }

  void gather(const std::int32_t* ids, int count, float* out, cudaStream_t stream) const override {
    base_.gather(ids, count, out, stream);
    add_lora_rows(a_.data(), b_.data(), rank_, base_.in(), scale_, ids, count, out, stream);
  }

 private:
  DeviceMatrix base_;
  int rank_ = 0;
  float scale_ = 0.0f;
  DeviceBuffer<float> a_;
  DeviceBuffer<float> b_;
};

}  // namespace

std::optional<std::string> format_unsupported_reason(const NamedWeight& named) {
  const Weight& weight = *named.weight;
  if (const auto* activation = dynamic_cast<const QuantoActivationWeight*>(&weight)) {
    return cuda_unsupported_reason({named.name, activation->weight().get()});
  }
  if (const auto* lora = dynamic_cast<const LoraWeight*>(&weight)) {
    return cuda_unsupported_reason({named.name, lora->base().get()});
  }
  if (dynamic_cast<const Int8RowwiseWeight*>(&weight) != nullptr) return std::nullopt;
  if (decoded_format(weight)) return std::nullopt;
  return "module '" + named.name + "': no CUDA kernel for " + weight.describe() + " yet";
}

bool format_fusable(const Weight& a, const Weight& b) {
  if (a.in_features() != b.in_features()) return false;
  if (const auto* int8_a = dynamic_cast<const Int8RowwiseWeight*>(&a)) {
    const auto* int8_b = dynamic_cast<const Int8RowwiseWeight*>(&b);
    return int8_b != nullptr && int8_a->threshold() == int8_b->threshold();
  }
  const auto format = decoded_format(a);
  if (!format || format != decoded_format(b)) return false;
  if (const auto* affine_a = dynamic_cast<const AffineWeight*>(&a)) {
    const auto& affine_b = dynamic_cast<const AffineWeight&>(b);
    return affine_a->bits() == affine_b.bits() && affine_a->group_size() == affine_b.group_size();
  }
  if (const auto* float8_a = dynamic_cast<const Float8Weight*>(&a)) {
    return float8_a->format() == dynamic_cast<const Float8Weight&>(b).format();
  }
  if (const auto* bnb4_a = dynamic_cast<const Bnb4Weight*>(&a)) {
    const auto& bnb4_b = dynamic_cast<const Bnb4Weight&>(b);
    return bnb4_a->blocksize() == bnb4_b.blocksize() && bnb4_a->code() == bnb4_b.code() &&
           bnb4_block_aligned(*bnb4_a) && bnb4_block_aligned(bnb4_b);
  }
  return true;  // symmetric (same bits) and ggml (same type): rows are independent
}

std::unique_ptr<const FormatDeviceMatrix> make_format_device_matrix(
    const std::vector<NamedWeight>& parts) {
  const NamedWeight& first = parts.front();
  for (const auto& part : parts) {
    if (auto reason = format_unsupported_reason(part)) fail(*reason);
    if (&part != &first && !format_fusable(*first.weight, *part.weight)) {
      fail("module '", part.name, "': cannot share a device matrix with '", first.name, "'");
    }
  }
  if (dynamic_cast<const QuantoActivationWeight*>(first.weight) != nullptr ||
      dynamic_cast<const LoraWeight*>(first.weight) != nullptr) {
    if (parts.size() != 1) fail("module '", first.name, "': cannot share a device matrix");
    if (dynamic_cast<const LoraWeight*>(first.weight) != nullptr)
      return std::make_unique<LoraDeviceMatrix>(first);
    return std::make_unique<ActivationDeviceMatrix>(first);
  }
  int out = 0;
  for (const auto& part : parts) out += narrow(part.weight->out_features(), part.name);
  const int in = narrow(first.weight->in_features(), first.name);
  if (dynamic_cast<const Int8RowwiseWeight*>(first.weight) != nullptr) {
    return std::make_unique<Int8RowwiseDeviceMatrix>(parts, out, in);
  }
  HostFormat host;
  host.view.format = *decoded_format(*first.weight);
  host.view.out = out;
  host.view.in = in;
  host.view.flat32 = static_cast<std::int64_t>(out) * in < (std::int64_t{1} << 31);
  for (const auto& part : parts) append_part(host, *part.weight);
  return std::make_unique<DecodedDeviceMatrix>(std::move(host));
}

}  // namespace uq::cuda
