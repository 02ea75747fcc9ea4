#include "model/synthetic_model.hpp"

#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/thread_pool.hpp"
#include "io/hf_config.hpp"
#include "model/decoder.hpp"
#include "model/float_weight.hpp"
#include "model/synthetic_checkpoint.hpp"
#include "quant/affine_weight.hpp"

namespace uq {
namespace {

constexpr float kStandardDeviation = 0.02f;
constexpr std::int64_t kBlock = 1 << 16;  // elements drawn from one seed

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Fills `count` items with fill(index, random word) in parallel; the words depend only on
// `seed` and the index, not on the thread count.
void parallel_fill(std::int64_t count, std::uint64_t seed,
                   const std::function<void(std::int64_t, std::uint64_t)>& fill) {
  const std::int64_t blocks = (count + kBlock - 1) / kBlock;
  parallel_for(0, blocks, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t block = lo; block < hi; ++block) {
      std::uint64_t state = seed ^ (static_cast<std::uint64_t>(block) * 0xD1B54A32D192ED03ull);
      const std::int64_t end = std::min(count, (block + 1) * kBlock);
      for (std::int64_t i = block * kBlock; i < end; ++i) fill(i, splitmix64(state));
    }
  });
}

std::uint64_t name_seed(std::uint64_t seed, const std::string& name) {
  return seed ^ std::hash<std::string>{}(name);
}

std::shared_ptr<Weight> random_bf16(std::int64_t out, std::int64_t in, std::uint64_t seed) {
  std::vector<std::uint16_t> values(static_cast<std::size_t>(out * in));
  const float half_width = kStandardDeviation * std::sqrt(3.0f);
  parallel_fill(out * in, seed, [&](std::int64_t i, std::uint64_t word) {
    const float unit = static_cast<float>(word >> 40) * 0x1.0p-24f;  // [0, 1)
    values[static_cast<std::size_t>(i)] = f32_to_bf16((2.0f * unit - 1.0f) * half_width);
  });
  return std::make_shared<FloatWeight>(DType::BF16, out, in, values.data());
}

std::shared_ptr<Weight> random_affine(std::int64_t out, std::int64_t in, int bits, int group_size,
                                      std::uint64_t seed, const std::string& name) {
  const std::int64_t words = out * in * bits / 32;
  std::vector<std::uint32_t> codes(static_cast<std::size_t>(words));
  parallel_fill(words, seed, [&](std::int64_t i, std::uint64_t word) {
    codes[static_cast<std::size_t>(i)] = static_cast<std::uint32_t>(word >> 32);
  });
  // Codes uniform on {0, .., n - 1}, n = 2^bits, have standard deviation sqrt((n^2 - 1) / 12):
  // scales give w = scale * q + bias the float weights' 0.02 (per group within +-25%), centred.
  const std::int64_t groups = out * (in / group_size);
  const double levels = static_cast<double>(1 << bits);
  const auto code_spread = static_cast<float>(std::sqrt((levels * levels - 1.0) / 12.0));
  const auto centre = static_cast<float>((levels - 1.0) / 2.0);
  std::vector<std::uint16_t> scales(static_cast<std::size_t>(groups));
  std::vector<std::uint16_t> biases(static_cast<std::size_t>(groups));
  parallel_fill(groups, seed + 1, [&](std::int64_t i, std::uint64_t word) {
    const float jitter = 0.75f + 0.5f * static_cast<float>(word >> 40) * 0x1.0p-24f;
    const float scale = kStandardDeviation / code_spread * jitter;
    scales[static_cast<std::size_t>(i)] = f32_to_bf16(scale);
    biases[static_cast<std::size_t>(i)] = f32_to_bf16(-scale * centre);
  });
  const auto as_bytes = [](const std::vector<std::uint16_t>& v) {
    return std::span<const std::byte>(reinterpret_cast<const std::byte*>(v.data()), v.size() * 2);
  };
  return AffineWeight::from_packed(out, in, bits, group_size, codes, DType::BF16, as_bytes(scales),
                                   as_bytes(biases), name);
}

}  // namespace

std::shared_ptr<Model> make_synthetic_model(const SyntheticModelOptions& options) {
  if (options.bits != 16 && (options.bits < 2 || options.bits > 8)) {
    fail("synthetic model: bits ", options.bits, " (expected 16 for bf16, or 2..8)");
  }
  SyntheticCheckpointOptions checkpoint;
  checkpoint.preset = options.preset;
  checkpoint.layers = options.layers;
  const ModelConfig config =
      parse_model_config(synthetic_config(checkpoint), "preset '" + options.preset + "'");
  if (options.bits != 16 && config.hidden_size % options.group_size != 0) {
    fail("synthetic model: group size ", options.group_size, " does not divide hidden size ",
         config.hidden_size);
  }
  // Norm weights are ones; the preset has no biases.
  std::vector<float> ones(
      static_cast<std::size_t>(std::max(config.hidden_size, config.intermediate_size)), 1.0f);
  TensorSource tensors;
  tensors.contains = [](const std::string&) { return false; };
  tensors.tensor = [&](const std::string& name) {
    TensorView view;
    view.name = name;
    view.dtype = DType::F32;
    view.shape = {config.hidden_size};
    view.data = reinterpret_cast<const std::byte*>(ones.data());
    view.nbytes = static_cast<std::size_t>(config.hidden_size) * sizeof(float);
    return view;
  };
  const auto shape_of =
      [&config](const std::string& path) -> std::pair<std::int64_t, std::int64_t> {
    const std::int64_t q_width = config.num_attention_heads * config.head_dim;
    const std::int64_t kv_width = config.num_key_value_heads * config.head_dim;
    if (path == "model.embed_tokens" || path == "lm_head")
      return {config.vocab_size, config.hidden_size};
    if (path.ends_with("q_proj")) return {q_width, config.hidden_size};
    if (path.ends_with("k_proj") || path.ends_with("v_proj")) return {kv_width, config.hidden_size};
    if (path.ends_with("o_proj")) return {config.hidden_size, q_width};
    if (path.ends_with("down_proj")) return {config.hidden_size, config.intermediate_size};
    return {config.intermediate_size, config.hidden_size};  // gate_proj, up_proj
  };
  const WeightFactory weights = [&](const std::string& path) {
    const auto [out, in] = shape_of(path);
    const std::uint64_t seed = name_seed(options.seed, path);
    if (options.bits == 16) return random_bf16(out, in, seed);
    return random_affine(out, in, options.bits, options.group_size, seed, path);
  };
  return std::make_shared<Model>(config, tensors, weights);
}

}  // namespace uq
