#include "model/rope.hpp"

#include <cmath>
#include <numbers>

namespace uq {

Rope::Rope(const ModelConfig& config) : head_dim_(config.head_dim) {
  const std::int64_t half = head_dim_ / 2;
  inverse_frequencies_.resize(half);
  const RopeScaling& scaling = config.rope_scaling;
  for (std::int64_t i = 0; i < half; ++i) {
    // float32 like transformers: 1 / theta^(2i / dim).
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim_);
    float frequency = 1.0f / std::pow(static_cast<float>(config.rope_theta), exponent);
    if (scaling.kind == RopeScaling::Kind::Linear) {
      frequency /= static_cast<float>(scaling.factor);
    } else if (scaling.kind == RopeScaling::Kind::Llama3) {
      // Long wavelengths are slowed by `factor`, short ones kept, the band in
      // between interpolated smoothly (Llama 3.1).
      const double old_context = static_cast<double>(scaling.original_max_position_embeddings);
      const double low_freq_wavelength = old_context / scaling.low_freq_factor;
      const double high_freq_wavelength = old_context / scaling.high_freq_factor;
      const double wavelength = 2.0 * std::numbers::pi / frequency;
      if (wavelength > low_freq_wavelength) {
        frequency = static_cast<float>(frequency / scaling.factor);
      } else if (wavelength >= high_freq_wavelength) {
        const double smooth = (old_context / wavelength - scaling.low_freq_factor) /
                              (scaling.high_freq_factor - scaling.low_freq_factor);
        frequency =
            static_cast<float>((1.0 - smooth) * frequency / scaling.factor + smooth * frequency);
      }
    }
    inverse_frequencies_[i] = frequency;
  }
}

void Rope::apply(float* x, std::int64_t rows, std::int64_t heads,
                 std::int64_t first_position) const {
  const std::int64_t half = head_dim_ / 2;
  std::vector<float> cosines(half);
  std::vector<float> sines(half);
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto position = static_cast<float>(first_position + r);
    for (std::int64_t i = 0; i < half; ++i) {
      const float angle = position * inverse_frequencies_[i];  // float32 product, as in HF
      cosines[i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sines[i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
    for (std::int64_t h = 0; h < heads; ++h) {
      float* head = x + (r * heads + h) * head_dim_;
      for (std::int64_t i = 0; i < half; ++i) {
        const float first = head[i];
        const float second = head[i + half];
        head[i] = first * cosines[i] - second * sines[i];
        head[i + half] = second * cosines[i] + first * sines[i];
      }
    }
  }
}

}  // namespace uq
