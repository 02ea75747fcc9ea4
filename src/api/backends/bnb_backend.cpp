#include "api/backends/bnb_backend.hpp"

#include <numeric>
#include <optional>

#include "core/error.hpp"
#include "io/formats/bnb_layout.hpp"
#include "io/formats/layout_writer.hpp"
#include "model/float_weight.hpp"
#include "quant/bnb4_weight.hpp"
#include "quant/int8_rowwise_weight.hpp"

namespace uq {
namespace {

bnb::FourBitType four_bit_type(const UnifiedQuantizationConfig& config) {
  return config.bnb_4bit_quant_type == "fp4" ? bnb::FourBitType::FP4 : bnb::FourBitType::NF4;
}

// The 4-bit codes come from each block's exact fp32 absmax (the double
// quantization compresses the absmax afterwards), so chunks on block
// boundaries of the flattened matrix give the whole matrix's codes; the
// absmax are gathered and double quantized after the last chunk.
class Bnb4ChunkedModule final : public ChunkedModule {
 public:
  Bnb4ChunkedModule(const std::string& module_path, std::int64_t out, std::int64_t in,
                    bnb::FourBitType type, int blocksize, bool double_quant)
      : path_(module_path),
        out_(out),
        in_(in),
        type_(type),
        blocksize_(blocksize),
        double_quant_(double_quant) {}

  std::int64_t row_multiple() const override { return blocksize_ / std::gcd(in_, blocksize_); }
  std::vector<std::int64_t> codes_shape() const override { return {(out_ * in_ + 1) / 2, 1}; }

  std::shared_ptr<Weight> add_rows(const Weight& rows) override {
    const auto* dense = dynamic_cast<const FloatWeight*>(&rows);
    if (dense == nullptr) fail("module '", path_, "' is ", rows.describe(), ", not float");
    if ((rows_ * in_) % blocksize_ != 0 || rows.in_features() != in_ ||
        rows_ + rows.out_features() > out_) {
      fail("module '", path_, "': rows [", rows_, ", ", rows_ + rows.out_features(),
           ") are not the next chunk on ", blocksize_, "-weight block boundaries");
    }
    auto chunk = Bnb4Weight::quantize(dense->bytes().data(), dense->dtype(), rows.out_features(),
                                      in_, type_, blocksize_, false, path_ + ".weight");
    absmax_.insert(absmax_.end(), chunk->absmax().begin(), chunk->absmax().end());
    packed_bytes_ += chunk->packed().size();
    dtype_ = chunk->dtype();
    rows_ += rows.out_features();
    return chunk;
  }

  std::vector<LayoutTensor> finish(LayoutEncoder& encoder) override {
    if (rows_ != out_) fail("module '", path_, "': streamed ", rows_, " of ", out_, " rows");
    if (double_quant_) nested_ = Bnb4Weight::double_quantize(absmax_);
    return bnb4_tensors_after_codes(
        encoder, path_,
        {out_, in_, type_, blocksize_, dtype_, bnb::four_bit_code(type_), absmax_,
         nested_ ? &*nested_ : nullptr});
  }

  std::string describe() const override {
    return Bnb4Weight::describe(type_, blocksize_, double_quant_);
  }
  std::size_t storage_bytes() const override {
    return Bnb4Weight::storage_bytes(packed_bytes_, absmax_.size(), nested_);
  }

 private:
  std::string path_;
  std::int64_t out_, in_;
  bnb::FourBitType type_;
  int blocksize_;
  bool double_quant_;
  DType dtype_ = DType::BF16;
  std::int64_t rows_ = 0;  // streamed so far
  std::size_t packed_bytes_ = 0;
  std::vector<float> absmax_;  // exact, one per block
  std::optional<Bnb4NestedState> nested_;
};

}  // namespace

const BackendSpec& BnbBackend::spec() const {
  static const BackendSpec spec{
      "bnb",
      "4 bits: NF4/FP4 codes x fp32 absmax per block of group_size (double-quantized absmax); "
      "8 bits: LLM.int8 int8 per row x SCB, outlier inputs (|x| >= 6) in float",
      {4, 8},
      {32, 64, 128, 256, 512, 1024, 2048, 4096},
      "transformers + bitsandbytes"};
  return spec;
}

std::shared_ptr<Weight> BnbBackend::quantize(const std::string& module_path, const Weight& weight,
                                             int bits, const UnifiedQuantizationConfig& config,
                                             std::string& note) const {
  const auto* dense = dynamic_cast<const FloatWeight*>(&weight);
  if (dense == nullptr) {
    note = "already " + weight.describe();
    return nullptr;
  }
  const std::string tensor = module_path + ".weight";
  if (bits == 8) {
    return Int8RowwiseWeight::quantize(dense->bytes().data(), dense->dtype(), dense->out_features(),
                                       dense->in_features(), Int8RowwiseWeight::kDefaultThreshold,
                                       tensor);
  }
  if (bits != 4) fail("bnb backend: bits ", bits, " for '", module_path, "' (supported: 4, 8)");
  return Bnb4Weight::quantize(dense->bytes().data(), dense->dtype(), dense->out_features(),
                              dense->in_features(), four_bit_type(config), config.group_size,
                              config.bnb_4bit_use_double_quant, tensor);
}

bool BnbBackend::rows_independent(int bits, const UnifiedQuantizationConfig& /*config*/) const {
  // LLM.int8 is per row; 4-bit blocks span the flattened matrix (chunked_module).
  return bits == 8;
}

std::unique_ptr<ChunkedModule> BnbBackend::chunked_module(
    const std::string& module_path, std::int64_t out, std::int64_t in, int bits,
    const UnifiedQuantizationConfig& config) const {
  if (bits != 4) return nullptr;
  return std::make_unique<Bnb4ChunkedModule>(module_path, out, in, four_bit_type(config),
                                             config.group_size, config.bnb_4bit_use_double_quant);
}

std::unique_ptr<LayoutEncoder> BnbBackend::encoder(
    DType model_dtype, const UnifiedQuantizationConfig& /*config*/) const {
  return bnb_encoder(model_dtype);
}

}  // namespace uq
