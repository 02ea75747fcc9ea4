#pragma once
// Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_): when the
// L2 norm over all gradients exceeds max_norm, every gradient is scaled by
// max_norm / (norm + 1e-6).
#include <span>
#include <vector>

namespace uq {

// Returns the norm before clipping. max_norm <= 0 measures without clipping.
double clip_gradient_norm(std::span<std::vector<float>* const> gradients, double max_norm);

}  // namespace uq
