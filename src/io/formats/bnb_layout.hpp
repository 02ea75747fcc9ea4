#pragma once
// The Hugging Face + bitsandbytes layout, both ways.
//
// config.json gets "quantization_config" = {"quant_method": "bitsandbytes",
// load_in_4bit | load_in_8bit, bnb_4bit_quant_type, bnb_4bit_use_double_quant,
// llm_int8_threshold, llm_int8_skip_modules (modules kept in float), ...}.
// A 4-bit module P (Linear4bit) has P.weight (uint8 [(out*in+1)/2, 1], two
// codes per byte, first in the high nibble), P.weight.absmax (fp32 [blocks],
// or uint8 codes when double quantized), P.weight.quant_map (fp32 [16]),
// P.weight.nested_absmax (fp32) and P.weight.nested_quant_map (fp32 [256])
// when double quantized, and P.weight.quant_state.bitsandbytes__nf4 (or
// __fp4): a uint8 tensor holding the JSON {quant_type, blocksize, dtype,
// shape, nested_blocksize, nested_dtype, nested_offset}. An LLM.int8 module
// (Linear8bitLt) has P.weight (int8 [out, in]), P.SCB (fp32 [out]) and
// P.weight_format (uint8 scalar 0 = row-major). Everything else is stored as
// in the float checkpoint.
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/tensor_source.hpp"
#include "quant/bnb.hpp"
#include "quant/bnb4_weight.hpp"

namespace uq {

class Model;
class LayoutEncoder;
struct LayoutTensor;

struct BnbQuantization {
  float llm_int8_threshold = 6.0f;
};

// The bitsandbytes quantization a config.json declares, nullopt otherwise.
// Throws uq::Error naming `origin` for a malformed declaration.
std::optional<BnbQuantization> bnb_quantization_of(const nlohmann::json& config,
                                                   const std::string& origin);

// Builds each module's weight: 4-bit when it has a quant_state tensor,
// LLM.int8 when it has SCB, float otherwise. Throws uq::Error naming the
// tensor for a missing or inconsistent piece.
WeightFactory bnb_weights(const TensorSource& tensors, const BnbQuantization& quantization);

// Writes `model` (float, Bnb4Weight and Int8RowwiseWeight modules) in this
// layout at `dir`, atomically. Throws uq::Error for other weight kinds or a
// model mixing 4- and 8-bit modules (the config cannot describe it).
// The bitsandbytes layout's encoder (io/formats/layout_writer.hpp) for a model of `model_dtype`.
std::unique_ptr<LayoutEncoder> bnb_encoder(DType model_dtype);

// A 4-bit module apart from its codes: its shape, format and fp32 block
// absmax, or their double-quantized form when `nested` is set.
struct Bnb4Parts {
  std::int64_t out = 0;
  std::int64_t in = 0;
  bnb::FourBitType type = bnb::FourBitType::NF4;
  int blocksize = 64;
  DType dtype = DType::BF16;      // the dtype it was quantized from
  std::span<const float> code;    // the 16 quant_map values; borrowed, as absmax
  std::span<const float> absmax;  // borrowed: must outlive the tensors
  const Bnb4NestedState* nested = nullptr;
};
// The tensors of 4-bit module `path` that follow its codes (P.weight), as
// `encoder` (a bnb_encoder) writes them for a whole Bnb4Weight and records
// in config.json: for a module whose codes were streamed out chunk by chunk.
// They borrow `parts`' arrays.
std::vector<LayoutTensor> bnb4_tensors_after_codes(LayoutEncoder& encoder, const std::string& path,
                                                   const Bnb4Parts& parts);

void save_bnb_model(const Model& model, const std::filesystem::path& dir);

}  // namespace uq
