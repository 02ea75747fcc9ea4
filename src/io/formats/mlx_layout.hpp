#pragma once
// The mlx-lm directory layout, both ways.
//
// Written: model.safetensors (or model-0000i-of-0000n.safetensors shards of at
// most 5 GiB) with metadata {"format": "mlx"}, model.safetensors.index.json,
// config.json = the source config plus "quantization" and
// "quantization_config" = {group_size, bits, mode: "affine", and per-module
// overrides: {group_size, bits} or false for a module kept in float}, and the
// tokenizer files copied. A quantized module P has P.weight (uint32 codes),
// P.scales and P.biases (model dtype), and P.bias when the layer has one.
#include <filesystem>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "model/tensor_source.hpp"

namespace uq {

class Model;
class LayoutEncoder;

struct MlxQuantization {
  int bits = 4;
  int group_size = 64;
  nlohmann::json overrides = nlohmann::json::object();  // module path -> {bits, group_size} | false
};

// The affine quantization a config.json declares, nullopt when it declares
// none. Throws uq::Error (naming `origin`) for a malformed declaration or a
// mode other than affine.
std::optional<MlxQuantization> mlx_quantization_of(const nlohmann::json& config,
                                                   const std::string& origin);

// Builds each module's weight from an mlx-lm checkpoint: affine when the
// module has scales (with its override's or the default bits/group size),
// float otherwise. Throws uq::Error naming the tensor when codes come without
// scales/biases, or shapes disagree with the declared bits and group size.
WeightFactory mlx_weights(const TensorSource& tensors, const MlxQuantization& quantization);

// Writes `model` (float or affine weights) as an mlx-lm directory at `dir`,
// atomically. `default_quantization` gives the top-level bits/group size;
// modules that differ get overrides. Throws uq::Error for bits mlx-lm cannot
// read (1 and 7) or weights of another backend.
// The mlx-lm layout's encoder (io/formats/layout_writer.hpp), as save_mlx_model uses it.
std::unique_ptr<LayoutEncoder> mlx_encoder(const MlxQuantization& default_quantization);

void save_mlx_model(const Model& model, const std::filesystem::path& dir,
                    const MlxQuantization& default_quantization);

}  // namespace uq
