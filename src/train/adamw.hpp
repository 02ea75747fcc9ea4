#pragma once
// AdamW (decoupled weight decay, Loshchilov & Hutter), as torch.optim.AdamW
// computes it. Moments exist only for the parameters it is given: the adapters.
#include <cstdint>
#include <span>
#include <vector>

namespace uq {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// One parameter tensor and its gradient, of equal sizes.
struct ParameterRef {
  std::span<float> value;
  std::span<const float> gradient;
};

class AdamW {
 public:
  // Throws uq::Error for betas outside [0, 1), eps <= 0 or weight_decay < 0.
  explicit AdamW(AdamWOptions options = {});

  // Updates every parameter with learning rate `lr`. The parameters must be the
  // same tensors (count and sizes) on every call; throws uq::Error otherwise.
  void step(std::span<const ParameterRef> parameters, double lr);

  std::int64_t steps_taken() const { return steps_; }
  // First and second moments, one vector per parameter (for checkpoints).
  const std::vector<std::vector<float>>& first_moments() const { return m_; }
  const std::vector<std::vector<float>>& second_moments() const { return v_; }
  // Restores a checkpointed state; throws uq::Error when m and v do not pair up.
  void restore(std::int64_t steps, std::vector<std::vector<float>> m,
               std::vector<std::vector<float>> v);

 private:
  AdamWOptions options_;
  std::int64_t steps_ = 0;
  std::vector<std::vector<float>> m_;
  std::vector<std::vector<float>> v_;
};

}  // namespace uq
