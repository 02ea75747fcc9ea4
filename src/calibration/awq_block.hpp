#pragma once
// AWQ on one decoder block, in place: the per-channel scales of each linear
// group are searched with the block's output error as the objective and
// folded into the preceding operation:
//   q/k/v   ← input_layernorm weight        (shared input)
//   o       ← v_proj rows (per kv head with grouped-query attention)
//   gate/up ← post_attention_layernorm weight
//   down    ← up_proj rows
// then every linear's clipping range is searched and the layer is quantized
// on its grid. (The AWQ paper's code leaves q/k unclipped; clipping them too
// measured better here.)
#include <cstdint>
#include <vector>

#include "calibration/block_inputs.hpp"
#include "calibration/calibrated_layer.hpp"

namespace uq {

struct AwqOptions {
  int alpha_steps = 20;              // α ∈ {0, 1/steps, ..., (steps-1)/steps}
  std::int64_t search_windows = 32;  // windows the α search runs the block on
  int clip_steps = 10;               // ratios 1, 0.95, ..., 0.55
  // Scales from activation and weight magnitudes (as AutoAWQ does);
  // measured better than activations alone on the bundled model.
  bool duo_scaling = true;
};

// The four groups of linears that share an input, and where their scales fold.
enum class AwqGroup {
  Attention,  // q, k, v ← input_layernorm
  Output,     // o ← v_proj rows
  Mlp,        // gate, up ← post_attention_layernorm
  Down,       // down ← up_proj rows
};

// Multiplies the group's input channels by s and divides the operation
// before them by s, so the float model computes the same function (up to the
// rounding of a norm weight to the model dtype, which is how it is saved).
// `scales` has one entry per output of that operation: hidden_size for the
// norms, v_proj's or up_proj's rows otherwise (o_proj's channels of heads
// sharing a kv head share its scale). The group's linears and the linear
// folded into become float32 FloatWeights.
void fold_awq_scales(Model& model, std::int64_t index, AwqGroup group,
                     const std::vector<float>& scales);

// The block's seven linears, in model order (weight null where grid_for refused).
std::vector<CalibratedLayer> awq_block(Model& model, std::int64_t index, const BlockInputs& inputs,
                                       const GridFor& grid_for, const AwqOptions& options = {});

}  // namespace uq
