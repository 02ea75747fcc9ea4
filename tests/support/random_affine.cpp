#include "support/random_affine.hpp"

#include <span>

#include "quant/affine.hpp"

namespace uq::test {

std::unique_ptr<AffineWeight> random_affine_weight(std::int64_t out, std::int64_t in, int bits,
                                                   int group, DType dtype, std::mt19937& rng) {
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(out * in));
  std::uniform_int_distribution<int> code(0, (1 << bits) - 1);
  for (auto& c : codes) c = static_cast<std::uint8_t>(code(rng));
  std::vector<std::uint32_t> words(static_cast<std::size_t>(out * affine_words_per_row(in, bits)));
  for (std::int64_t o = 0; o < out; ++o) {
    pack_codes(
        std::span(codes).subspan(static_cast<std::size_t>(o * in), static_cast<std::size_t>(in)),
        bits, words.data() + o * affine_words_per_row(in, bits));
  }
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const auto groups = static_cast<std::size_t>(out * (in / group));
  std::vector<float> scales(groups), biases(groups);
  for (auto& s : scales) s = uniform(rng) * 0.1f;
  for (auto& b : biases) b = uniform(rng) * 0.5f;
  std::vector<std::byte> scale_bytes(groups * dtype_size(dtype)), bias_bytes(scale_bytes.size());
  convert_from_f32(scales.data(), groups, dtype, scale_bytes.data());
  convert_from_f32(biases.data(), groups, dtype, bias_bytes.data());
  return AffineWeight::from_packed(out, in, bits, group, words, dtype, scale_bytes, bias_bytes,
                                   "random");
}

std::vector<float> random_activations(std::int64_t rows, std::int64_t in, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(rows * in));
  for (auto& v : x) v = normal(rng);
  return x;
}

}  // namespace uq::test
