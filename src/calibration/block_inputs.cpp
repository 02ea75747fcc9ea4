#include "calibration/block_inputs.hpp"

namespace uq {

BlockInputs::BlockInputs(const Model& model,
                         const std::vector<std::vector<std::int32_t>>& windows) {
  for (const auto& window : windows) {
    ctx_ = static_cast<std::int64_t>(window.size());
    states_.push_back(model.embed(window));
  }
}

std::vector<std::vector<float>> BlockInputs::run(Model& model, std::int64_t index,
                                                 const std::vector<Recorder>& recorders,
                                                 std::int64_t count, bool keep_outputs) const {
  DecoderLayer& layer = model.layer(index);
  std::vector<std::shared_ptr<Weight>> originals;
  for (const auto& recorder : recorders) {
    originals.push_back(layer.*recorder.member);
    layer.*recorder.member =
        std::make_shared<RecordingWeight>(layer.*recorder.member, recorder.observer);
  }
  const auto restore = [&] {
    for (std::size_t i = 0; i < recorders.size(); ++i) layer.*recorders[i].member = originals[i];
  };
  std::vector<std::vector<float>> outputs;
  try {
    const std::int64_t used = count < 0 ? windows() : std::min(count, windows());
    for (std::int64_t w = 0; w < used; ++w) {
      std::vector<float> state = states_[static_cast<std::size_t>(w)];
      model.run_block(index, state.data(), ctx_);
      if (keep_outputs) outputs.push_back(std::move(state));
    }
  } catch (...) {
    restore();
    throw;
  }
  restore();
  return outputs;
}

void BlockInputs::advance(const Model& model, std::int64_t index) {
  for (auto& state : states_) model.run_block(index, state.data(), ctx_);
}

}  // namespace uq
