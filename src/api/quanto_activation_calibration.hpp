#pragma once
// quanto's activation calibration (`with Calibration(): model(window)` for
// each window, then freeze): every listed linear of the model is run with its
// activations quantized-dequantized while its per-tensor scales are updated
// before each use, the input scale from the input's absmax and the output
// scale from the output's, with quanto's momentum rule
// (quant/quanto_activations.hpp). The windows run one by one, each over all
// its tokens (batch 1), in order. Output quantization stays on for every
// linear, as in the model quanto saves and requantize rebuilds (quanto's
// default streamline option would skip it during calibration for outputs
// that only feed float operations).
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.hpp"

namespace uq {

class Model;

// Replaces each slot of `paths` in `model` by a QuantoActivationWeight of
// `qtype` with the calibrated scales, kept in the model dtype. Throws
// uq::Error naming a linear whose inputs or outputs were all zero (no scale).
void calibrate_quanto_activations(Model& model, const std::vector<std::string>& paths, DType qtype,
                                  const std::vector<std::vector<std::int32_t>>& windows);

}  // namespace uq
