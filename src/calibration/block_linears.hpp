#pragma once
// The seven linear layers of a decoder block, by member and module name, and
// their float matrices.
#include <array>
#include <string>
#include <vector>

#include "calibration/block_inputs.hpp"

namespace uq {

struct BlockLinear {
  const char* name;  // "self_attn.q_proj"
  LinearMember member;
};

// In model order: q, k, v, o, gate, up, down.
const std::array<BlockLinear, 7>& block_linears();
// The linears that read the same input, as indices into block_linears(): q|k|v, o, gate|up,
// down. GPTQ builds one Hessian per group.
const std::vector<std::vector<int>>& shared_input_groups();
// "model.layers.<index>.<name>"
std::string linear_path(std::int64_t index, const BlockLinear& linear);
// The whole matrix as float32 [out, in].
std::vector<float> float_matrix(const Weight& weight);

}  // namespace uq
