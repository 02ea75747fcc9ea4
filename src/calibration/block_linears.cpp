#include "calibration/block_linears.hpp"

namespace uq {

const std::array<BlockLinear, 7>& block_linears() {
  static const std::array<BlockLinear, 7> linears{{
      {"self_attn.q_proj", &DecoderLayer::q_proj},
      {"self_attn.k_proj", &DecoderLayer::k_proj},
      {"self_attn.v_proj", &DecoderLayer::v_proj},
      {"self_attn.o_proj", &DecoderLayer::o_proj},
      {"mlp.gate_proj", &DecoderLayer::gate_proj},
      {"mlp.up_proj", &DecoderLayer::up_proj},
      {"mlp.down_proj", &DecoderLayer::down_proj},
  }};
  return linears;
}

const std::vector<std::vector<int>>& shared_input_groups() {
  static const std::vector<std::vector<int>> groups{{0, 1, 2}, {3}, {4, 5}, {6}};
  return groups;
}

std::string linear_path(std::int64_t index, const BlockLinear& linear) {
  return "model.layers." + std::to_string(index) + "." + linear.name;
}

std::vector<float> float_matrix(const Weight& weight) {
  std::vector<float> values(static_cast<std::size_t>(weight.out_features() * weight.in_features()));
  weight.dequantize_rows(0, weight.out_features(), values.data());
  return values;
}

}  // namespace uq
