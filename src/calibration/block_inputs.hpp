#pragma once
// The hidden states entering one decoder block for every calibration window
// (the only activations calibration keeps: one block's worth), and runs of
// that block with some of its linears recording their inputs.
#include <cstdint>
#include <memory>
#include <vector>

#include "calibration/recording_weight.hpp"
#include "model/decoder.hpp"

namespace uq {

// A linear layer of a decoder block, by member.
using LinearMember = std::shared_ptr<Weight> DecoderLayer::*;

struct Recorder {
  LinearMember member;
  RecordingWeight::Observer observer;
};

class BlockInputs {
 public:
  // Embeds every window: the inputs of block 0.
  BlockInputs(const Model& model, const std::vector<std::vector<std::int32_t>>& windows);

  std::int64_t windows() const { return static_cast<std::int64_t>(states_.size()); }
  std::int64_t tokens_per_window() const { return ctx_; }

  // Runs block `index` on a copy of the first `count` windows' states (all
  // when count < 0) with `recorders` installed, restoring the layer's weights
  // afterwards. Returns the outputs when `keep_outputs`, else nothing.
  std::vector<std::vector<float>> run(Model& model, std::int64_t index,
                                      const std::vector<Recorder>& recorders,
                                      std::int64_t count = -1, bool keep_outputs = false) const;
  // Replaces the states by block `index`'s outputs: the next block's inputs.
  void advance(const Model& model, std::int64_t index);

 private:
  std::int64_t ctx_ = 0;
  std::vector<std::vector<float>> states_;  // [window][ctx * hidden]
};

}  // namespace uq
