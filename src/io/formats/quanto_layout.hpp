#pragma once
// optimum-quanto's serialization, both ways: the model's state dict in
// model.safetensors plus quantization_map.json ({module: {"weights": "qint4",
// "activations": "none"}}), the way quanto documents saving (then
// `requantize(model, state_dict, quantization_map)` loads it).
//
// Keys of a quantized Linear P (dtypes: T is the model dtype):
//   qint8:        P.weight._data  I8 [out, in],  P.weight._scale T [out, 1]
//   qfloat8:      P.weight._data  F8_E4M3 (qfloat8_e4m3fn) or F8_E5M2
//                 (qfloat8_e5m2) [out, in],  P.weight._scale T [out, 1]
//   qint4/qint2:  P.weight._data._data U8 [ceil(R/k), g] (k = 8/bits, R = out*in/g,
//                 see quant/quanto_affine.hpp), P.weight._scale T [R, 1],
//                 P.weight._shift T [R, 1]
//   always:       P.input_scale T [], P.output_scale T [] (1 unless the map's
//                 "activations" is qint8/qfloat8_*: then the calibrated scales,
//                 see quant/quanto_activation_weight.hpp), P.bias when the layer has one.
// Float modules keep P.weight. config.json is the source config unchanged.
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "io/hf_config.hpp"
#include "model/tensor_source.hpp"

namespace uq {

class Model;
class LayoutEncoder;

// Each module from its keys: quanto's when P.weight._data (qint8, qfloat8) or
// P.weight._data._data (qint4/qint2) exists, else the float P.weight, so a
// plain checkpoint reads as float. in_features comes from `config`. With a
// `quantization_map` (null when there is none; `map_origin` names it in errors)
// each module's stored form must be the weights qtype its entry declares (no
// entry: float), as optimum-quanto's requantize assumes, and an entry naming an
// activation qtype gives quanto's activation quantization with its
// input_scale / output_scale. Throws uq::Error naming the tensor or the map
// for shapes, dtypes or qtypes that do not fit.
WeightFactory quanto_weights(const TensorSource& tensors, const ModelConfig& config,
                             const nlohmann::json& quantization_map, const std::string& map_origin);

// The quanto layout's encoder (io/formats/layout_writer.hpp) for a model of `model_dtype`.
std::unique_ptr<LayoutEncoder> quanto_encoder(DType model_dtype);

// Writes `model` in quanto's layout at `dir`, atomically. Throws uq::Error
// naming the module for a weight quanto cannot hold (symmetric int4, affine
// bits other than 2/4, or a group size other than quanto's).
void save_quanto_model(const Model& model, const std::filesystem::path& dir);

}  // namespace uq
