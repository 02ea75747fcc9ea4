#include "quant/bnb4_weight.hpp"

#include <cmath>

#include "core/error.hpp"

namespace uq {
namespace {

void check_blocksize(int blocksize, std::string_view tensor) {
  for (const int allowed : {32, 64, 128, 256, 512, 1024, 2048, 4096}) {
    if (blocksize == allowed) return;
  }
  fail("tensor '", tensor, "': bitsandbytes block size ", blocksize,
       " is not one of 32, 64, ..., 4096");
}

}  // namespace

std::unique_ptr<Bnb4Weight> Bnb4Weight::quantize(const void* data, DType dtype, std::int64_t out,
                                                 std::int64_t in, bnb::FourBitType type,
                                                 int blocksize, bool double_quant,
                                                 std::string_view tensor) {
  check_blocksize(blocksize, tensor);
  if (out <= 0 || in <= 0) fail("tensor '", tensor, "': empty matrix");
  const auto n = static_cast<std::size_t>(out * in);
  std::vector<float> values(n);
  convert_to_f32(dtype, data, n, values.data());
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(values[i])) {
      fail("tensor '", tensor, "': non-finite value at element ", i, " cannot be quantized");
    }
  }
  std::unique_ptr<Bnb4Weight> weight(new Bnb4Weight());
  weight->out_ = out;
  weight->in_ = in;
  weight->type_ = type;
  weight->blocksize_ = blocksize;
  weight->dtype_ = dtype;
  weight->packed_.resize((n + 1) / 2);
  weight->absmax_.resize((n + static_cast<std::size_t>(blocksize) - 1) /
                         static_cast<std::size_t>(blocksize));
  bnb::quantize_4bit(values.data(), static_cast<std::int64_t>(n), blocksize, type,
                     weight->packed_.data(), weight->absmax_.data());
  const auto& code = bnb::four_bit_code(type);
  weight->code_.assign(code.begin(), code.end());
  if (double_quant) {
    Bnb4NestedState state = double_quantize(weight->absmax_);
    // Inference uses the absmax as bitsandbytes restores it from the nested form.
    weight->absmax_ = bnb::dequantize_nested(state.codes, state.absmax, state.code, state.offset,
                                             state.blocksize);
    weight->nested_ = std::move(state);
  }
  return weight;
}

Bnb4NestedState Bnb4Weight::double_quantize(std::span<const float> absmax) {
  bnb::NestedAbsmax nested = bnb::quantize_nested(absmax);
  const auto& map = bnb::dynamic_map();
  return {std::move(nested.codes), std::move(nested.absmax),
          std::vector<float>(map.begin(), map.end()), nested.offset, nested.blocksize};
}

std::unique_ptr<Bnb4Weight> Bnb4Weight::from_parts(
    std::int64_t out, std::int64_t in, bnb::FourBitType type, int blocksize, DType dtype,
    std::vector<std::uint8_t> packed, std::vector<float> code, std::vector<float> absmax,
    std::optional<Bnb4NestedState> nested, std::string_view tensor) {
  check_blocksize(blocksize, tensor);
  if (out <= 0 || in <= 0) fail("tensor '", tensor, "': empty shape [", out, ", ", in, "]");
  const auto n = static_cast<std::size_t>(out * in);
  const std::size_t blocks =
      (n + static_cast<std::size_t>(blocksize) - 1) / static_cast<std::size_t>(blocksize);
  if (packed.size() != (n + 1) / 2) {
    fail("tensor '", tensor, "': expected ", (n + 1) / 2, " packed bytes for shape [", out, ", ",
         in, "], got ", packed.size());
  }
  if (code.size() != 16)
    fail("tensor '", tensor, ".quant_map': expected 16 codes, got ", code.size());
  std::unique_ptr<Bnb4Weight> weight(new Bnb4Weight());
  if (nested) {
    const auto nested_blocks = (blocks + static_cast<std::size_t>(nested->blocksize) - 1) /
                               static_cast<std::size_t>(nested->blocksize);
    if (nested->codes.size() != blocks || nested->absmax.size() != nested_blocks ||
        nested->code.size() != 256) {
      fail("tensor '", tensor, "': nested quant state has ", nested->codes.size(),
           " absmax codes, ", nested->absmax.size(), " nested absmax and ", nested->code.size(),
           " nested codes; expected ", blocks, ", ", nested_blocks, " and 256");
    }
    absmax = bnb::dequantize_nested(nested->codes, nested->absmax, nested->code, nested->offset,
                                    nested->blocksize);
  } else if (absmax.size() != blocks) {
    fail("tensor '", tensor, ".absmax': expected ", blocks, " values for block size ", blocksize,
         ", got ", absmax.size());
  }
  weight->out_ = out;
  weight->in_ = in;
  weight->type_ = type;
  weight->blocksize_ = blocksize;
  weight->dtype_ = dtype;
  weight->packed_ = std::move(packed);
  weight->code_ = std::move(code);
  weight->absmax_ = std::move(absmax);
  weight->nested_ = std::move(nested);
  return weight;
}

cpu::Bnb4Matrix Bnb4Weight::matrix() const {
  return {packed_.data(), code_.data(), absmax_.data(), out_, in_, blocksize_};
}

void Bnb4Weight::matmul(const float* x, std::int64_t rows, float* y) const {
  cpu::bnb4_matmul(matrix(), x, rows, y);
}

void Bnb4Weight::dequantize_rows(std::int64_t first, std::int64_t count, float* out) const {
  if (first < 0 || count < 0 || first + count > out_) {
    fail("dequantize_rows: rows [", first, ", ", first + count, ") outside [0, ", out_, ")");
  }
  cpu::bnb4_dequantize_rows(matrix(), first, count, out, cpu::best_kernel_isa());
}

std::size_t Bnb4Weight::storage_bytes(std::size_t packed_bytes, std::size_t blocks,
                                      const std::optional<Bnb4NestedState>& nested) {
  const std::size_t code_floats = bnb::four_bit_code(bnb::FourBitType::NF4).size();
  if (nested) {
    return packed_bytes + nested->codes.size() + nested->absmax.size() * sizeof(float) +
           (nested->code.size() + code_floats + 1) * sizeof(float);
  }
  return packed_bytes + (blocks + code_floats) * sizeof(float);
}

std::size_t Bnb4Weight::storage_bytes() const {
  return storage_bytes(packed_.size(), absmax_.size(), nested_);
}

std::string Bnb4Weight::describe(bnb::FourBitType type, int blocksize, bool double_quant) {
  return "bnb " + std::string(bnb::four_bit_type_name(type)) + " block" +
         std::to_string(blocksize) + (double_quant ? " double-quant" : "");
}

std::string Bnb4Weight::describe() const {
  return describe(type_, blocksize_, nested_.has_value());
}

}  // namespace uq
