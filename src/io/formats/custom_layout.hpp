#pragma once
// The custom backend's native layout (docs/FORMATS.md): model.safetensors
// (metadata {"format": "uq-custom"}) where a quantized Linear P has
//   8 bits: P.weight I8 [out, in]              (q in [-128, 127])
//   4 bits: P.weight U8 [out, ceil(in / 2)]    (element 2k in the low nibble,
//           2k+1 in the high nibble, each stored as q + 8, q in [-8, 7])
//   P.weight_scale F32 [out]                   (W[o, i] = scale[o] * q[o, i])
// and float modules keep their P.weight in the model dtype; config.json is the
// source config plus "quantization_config": {"quant_method": "uq-custom",
// "scheme": "symmetric per-channel", "bits": N}.
#include <filesystem>
#include <memory>
#include <optional>

#include "io/hf_config.hpp"
#include "model/tensor_source.hpp"

namespace uq {

class Model;
class LayoutEncoder;

// True when config.json declares the custom layout.
bool is_custom_layout(const nlohmann::json& config);

// Reads each module: symmetric when P.weight_scale exists (bits from the
// codes' dtype), float otherwise. Throws uq::Error naming the tensor for
// shapes or dtypes that do not fit.
WeightFactory custom_weights(const TensorSource& tensors, const ModelConfig& config);

// Writes `model` (float or symmetric weights) in the custom layout at `dir`,
// atomically; `bits` is the default recorded in config.json.
// The custom layout's encoder (io/formats/layout_writer.hpp); `bits` goes to config.json.
std::unique_ptr<LayoutEncoder> custom_encoder(int bits);

void save_custom_model(const Model& model, const std::filesystem::path& dir, int bits);

}  // namespace uq
