#include "train/trainable_decoder.hpp"

#include <algorithm>
#include <random>
#include <type_traits>

#include "core/error.hpp"
#include "model/decoder.hpp"
#include "model/rope.hpp"
#include "train/lora_weight.hpp"
#include "train/training_ops.hpp"

namespace uq {
namespace {

using train::gemm;

template <typename T>
std::vector<T> to_scalar(const std::vector<float>& values) {
  return std::vector<T>(values.begin(), values.end());
}

// A frozen matrix W [out, in]. float multiplies through the Weight itself
// (quantized kernels, W never dequantized whole); double keeps a float64 copy.
template <typename T>
struct FrozenMatrix {
  std::shared_ptr<const Weight> weight;
  std::int64_t out = 0;
  std::int64_t in = 0;
  std::vector<T> dense;

  FrozenMatrix() = default;
  explicit FrozenMatrix(std::shared_ptr<const Weight> w)
      : weight(std::move(w)), out(weight->out_features()), in(weight->in_features()) {
    if constexpr (!std::is_same_v<T, float>) {
      std::vector<float> rows(static_cast<std::size_t>(out * in));
      weight->dequantize_rows(0, out, rows.data());
      dense = to_scalar<T>(rows);
    }
  }
  // y = x·Wᵀ
  void forward(const T* x, std::int64_t n, T* y) const {
    if constexpr (std::is_same_v<T, float>) {
      weight->matmul(x, n, y);
    } else {
      gemm<T>(false, true, n, out, in, T(1), x, in, dense.data(), in, T(0), y, out);
    }
  }
  // grad_x = grad_y·W
  void backward(const T* grad_y, std::int64_t n, T* grad_x) const {
    if constexpr (std::is_same_v<T, float>) {
      weight->matmul_transposed(grad_y, n, grad_x);
    } else {
      gemm<T>(false, false, n, in, out, T(1), grad_y, out, dense.data(), in, T(0), grad_x, in);
    }
  }
  void row(std::int32_t id, T* result) const {
    if constexpr (std::is_same_v<T, float>) {
      weight->dequantize_rows(id, 1, result);
    } else {
      std::copy_n(dense.data() + static_cast<std::int64_t>(id) * in, in, result);
    }
  }
};

template <typename T>
struct Linear {
  FrozenMatrix<T> base;
  std::vector<T> bias;
  BasicLoraAdapter<T>* adapter = nullptr;  // null: no adapter trained here
  LoraGradient<T>* gradient = nullptr;
  std::uint64_t index = 0;  // picks this module's dropout mask
};

// What a linear's backward needs besides its input.
template <typename T>
struct LinearCache {
  std::vector<T> keep;       // dropout scale per input element (empty without dropout)
  std::vector<T> dropped;    // the adapter's input after dropout
  std::vector<T> projected;  // dropped·Aᵀ [n, rank]
};

template <typename T>
struct Layer {
  Linear<T> q, k, v, o, gate, up, down;
  std::vector<T> input_norm, post_attention_norm;
  std::optional<std::int64_t> sliding_window;
};

template <typename T>
struct LayerCache {
  std::vector<T> x_in, inverse_rms1, normed1, q, k, v, probabilities, attended;
  std::vector<T> x_mid, inverse_rms2, normed2, gate, up, act;
  LinearCache<T> q_cache, k_cache, v_cache, o_cache, gate_cache, up_cache, down_cache;
};

template <typename T>
std::size_t size_of(std::int64_t a, std::int64_t b) {
  return static_cast<std::size_t>(a * b);
}

}  // namespace

template <typename T>
struct TrainableDecoder<T>::State {
  ModelConfig config;
  std::vector<float> inverse_frequencies;
  FrozenMatrix<T> embed, head;
  std::vector<T> final_norm;
  std::vector<Layer<T>> layers;
  std::vector<std::shared_ptr<BasicLoraAdapter<T>>> adapters;
  std::vector<LoraGradient<T>> gradients;
  double dropout = 0.0;
  std::vector<LayerCache<T>> caches;
  std::vector<T> x_final, inverse_rms_final, normed_final, logits;

  void linear_forward(const Linear<T>& linear, const T* x, std::int64_t n, T* y,
                      LinearCache<T>& cache, std::uint64_t seed) const {
    linear.base.forward(x, n, y);
    const std::int64_t out = linear.base.out;
    const std::int64_t in = linear.base.in;
    if (!linear.bias.empty()) {
      for (std::int64_t r = 0; r < n; ++r) {
        for (std::int64_t i = 0; i < out; ++i) y[r * out + i] += linear.bias[i];
      }
    }
    if (!linear.adapter) return;
    const BasicLoraAdapter<T>& lora = *linear.adapter;
    const T* adapter_input = x;
    if (dropout > 0.0) {
      std::mt19937_64 rng(seed ^ (linear.index * 0x9E3779B97F4A7C15ULL));
      std::bernoulli_distribution dropped(dropout);
      const T kept_scale = static_cast<T>(1.0 / (1.0 - dropout));
      cache.keep.resize(size_of<T>(n, in));
      cache.dropped.resize(size_of<T>(n, in));
      for (std::size_t i = 0; i < cache.keep.size(); ++i) {
        cache.keep[i] = dropped(rng) ? T(0) : kept_scale;
        cache.dropped[i] = x[i] * cache.keep[i];
      }
      adapter_input = cache.dropped.data();
    }
    cache.projected.resize(size_of<T>(n, lora.rank));
    gemm<T>(false, true, n, lora.rank, in, T(1), adapter_input, in, lora.a.data(), in, T(0),
            cache.projected.data(), lora.rank);
    gemm<T>(false, true, n, out, lora.rank, lora.scale, cache.projected.data(), lora.rank,
            lora.b.data(), lora.rank, T(1), y, out);
  }

  // grad_x = ∂loss/∂x (overwritten); adds into the adapter's gradients.
  void linear_backward(const Linear<T>& linear, const T* x, std::int64_t n, const T* grad_y,
                       const LinearCache<T>& cache, T* grad_x) const {
    linear.base.backward(grad_y, n, grad_x);
    if (!linear.adapter) return;
    const BasicLoraAdapter<T>& lora = *linear.adapter;
    LoraGradient<T>& gradient = *linear.gradient;
    const std::int64_t out = linear.base.out;
    const std::int64_t in = linear.base.in;
    const std::int64_t r = lora.rank;
    const T* adapter_input = cache.keep.empty() ? x : cache.dropped.data();
    // ∂B += scale·grad_yᵀ·projected; grad_projected = scale·grad_y·B.
    gemm<T>(true, false, out, r, n, lora.scale, grad_y, out, cache.projected.data(), r, T(1),
            gradient.b.data(), r);
    std::vector<T> grad_projected(size_of<T>(n, r));
    gemm<T>(false, false, n, r, out, lora.scale, grad_y, out, lora.b.data(), r, T(0),
            grad_projected.data(), r);
    // ∂A += grad_projectedᵀ·adapter_input; grad_x += grad_projected·A (through dropout).
    gemm<T>(true, false, r, in, n, T(1), grad_projected.data(), r, adapter_input, in, T(1),
            gradient.a.data(), in);
    if (cache.keep.empty()) {
      gemm<T>(false, false, n, in, r, T(1), grad_projected.data(), r, lora.a.data(), in, T(1),
              grad_x, in);
    } else {
      std::vector<T> grad_dropped(size_of<T>(n, in));
      gemm<T>(false, false, n, in, r, T(1), grad_projected.data(), r, lora.a.data(), in, T(0),
              grad_dropped.data(), in);
      for (std::size_t i = 0; i < grad_dropped.size(); ++i) {
        grad_x[i] += grad_dropped[i] * cache.keep[i];
      }
    }
  }

  double run(std::span<const std::int32_t> ids, double weight, std::uint64_t seed,
             const T* input_embeddings, T* grad_input, bool backward);
};

template <typename T>
TrainableDecoder<T>::TrainableDecoder(
    const Model& model, std::map<std::string, std::shared_ptr<BasicLoraAdapter<T>>> adapters,
    double dropout)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.config = model.config();
  s.dropout = dropout;
  s.inverse_frequencies = Rope(s.config).inverse_frequencies();
  std::map<std::string, std::shared_ptr<const Weight>> weights;
  for (const auto& [path, weight] : model.named_weights()) weights[path] = weight;
  s.embed = FrozenMatrix<T>(weights.at("model.embed_tokens"));
  s.head = FrozenMatrix<T>(s.config.tie_word_embeddings ? weights.at("model.embed_tokens")
                                                        : weights.at("lm_head"));
  for (const auto& [path, vector] : model.named_vectors()) {
    if (path == "model.norm.weight") s.final_norm = to_scalar<T>(*vector);
  }
  std::size_t used = 0;
  std::uint64_t index = 0;
  const auto make_linear = [&](const std::string& path, const std::vector<float>& bias) {
    Linear<T> linear;
    std::shared_ptr<const Weight> weight = weights.at(path);
    linear.bias = to_scalar<T>(bias);
    linear.index = index++;
    const auto found = adapters.find(path);
    if (found != adapters.end()) {
      // A LoraWeight slot trains its own adapter on its frozen base.
      if (const auto* lora = dynamic_cast<const LoraWeight*>(weight.get())) weight = lora->base();
      const BasicLoraAdapter<T>& adapter = *found->second;
      if (adapter.in_features != weight->in_features() ||
          adapter.out_features != weight->out_features() || adapter.rank < 1 ||
          adapter.a.size() != size_of<T>(adapter.rank, adapter.in_features) ||
          adapter.b.size() != size_of<T>(adapter.out_features, adapter.rank)) {
        fail("LoRA adapter for '", path, "' does not fit the weight's shape [",
             weight->out_features(), ", ", weight->in_features(), "]");
      }
      s.adapters.push_back(found->second);
      paths_.push_back(path);
      ++used;
    }
    linear.base = FrozenMatrix<T>(weight);
    return linear;
  };
  const auto& model_layers = model.layers();
  for (std::size_t i = 0; i < model_layers.size(); ++i) {
    const std::string prefix = "model.layers." + std::to_string(i) + ".";
    const DecoderLayer& source = model_layers[i];
    Layer<T> layer;
    layer.q = make_linear(prefix + "self_attn.q_proj", source.q_bias);
    layer.k = make_linear(prefix + "self_attn.k_proj", source.k_bias);
    layer.v = make_linear(prefix + "self_attn.v_proj", source.v_bias);
    layer.o = make_linear(prefix + "self_attn.o_proj", source.o_bias);
    layer.gate = make_linear(prefix + "mlp.gate_proj", source.gate_bias);
    layer.up = make_linear(prefix + "mlp.up_proj", source.up_bias);
    layer.down = make_linear(prefix + "mlp.down_proj", source.down_bias);
    layer.input_norm = to_scalar<T>(source.input_norm);
    layer.post_attention_norm = to_scalar<T>(source.post_attention_norm);
    if (s.config.layer_uses_sliding_window[i]) layer.sliding_window = s.config.sliding_window;
    s.layers.push_back(std::move(layer));
  }
  if (used != adapters.size()) {
    for (const auto& entry : adapters) {
      if (std::find(paths_.begin(), paths_.end(), entry.first) == paths_.end()) {
        fail("LoRA adapter for '", entry.first, "': the model has no such projection");
      }
    }
  }
  // Point each trained linear at its adapter and gradient (stable storage now).
  s.gradients.resize(s.adapters.size());
  std::size_t next = 0;
  std::size_t layer_index = 0;
  for (Layer<T>& layer : s.layers) {
    const std::string prefix = "model.layers." + std::to_string(layer_index++) + ".";
    const std::pair<Linear<T>*, const char*> named[] = {
        {&layer.q, "self_attn.q_proj"}, {&layer.k, "self_attn.k_proj"},
        {&layer.v, "self_attn.v_proj"}, {&layer.o, "self_attn.o_proj"},
        {&layer.gate, "mlp.gate_proj"}, {&layer.up, "mlp.up_proj"},
        {&layer.down, "mlp.down_proj"}};
    for (const auto& [linear, name] : named) {
      if (next < paths_.size() && paths_[next] == prefix + name) {
        linear->adapter = s.adapters[next].get();
        linear->gradient = &s.gradients[next];
        ++next;
      }
    }
  }
  zero_gradients();
}

template <typename T>
TrainableDecoder<T>::~TrainableDecoder() = default;

template <typename T>
void TrainableDecoder<T>::zero_gradients() {
  for (std::size_t i = 0; i < state_->adapters.size(); ++i) {
    state_->gradients[i].a.assign(state_->adapters[i]->a.size(), T(0));
    state_->gradients[i].b.assign(state_->adapters[i]->b.size(), T(0));
  }
}

template <typename T>
BasicLoraAdapter<T>& TrainableDecoder<T>::adapter(std::size_t index) {
  return *state_->adapters.at(index);
}

template <typename T>
LoraGradient<T>& TrainableDecoder<T>::gradient(std::size_t index) {
  return state_->gradients.at(index);
}

template <typename T>
std::vector<T> TrainableDecoder<T>::embed(std::span<const std::int32_t> ids) const {
  const std::int64_t hidden = state_->config.hidden_size;
  std::vector<T> x(size_of<T>(static_cast<std::int64_t>(ids.size()), hidden));
  for (std::size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] < 0 || ids[t] >= state_->config.vocab_size) {
      fail("token id ", ids[t], " outside the vocabulary [0, ", state_->config.vocab_size, ")");
    }
    state_->embed.row(ids[t], x.data() + static_cast<std::int64_t>(t) * hidden);
  }
  return x;
}

template <typename T>
double TrainableDecoder<T>::accumulate(std::span<const std::int32_t> ids, double weight,
                                       std::uint64_t dropout_seed, const T* input_embeddings,
                                       T* grad_input) {
  if (input_embeddings == nullptr) {
    const std::vector<T> embedded = embed(ids);
    return state_->run(ids, weight, dropout_seed, embedded.data(), grad_input, true);
  }
  return state_->run(ids, weight, dropout_seed, input_embeddings, grad_input, true);
}

template <typename T>
double TrainableDecoder<T>::loss(std::span<const std::int32_t> ids, std::uint64_t dropout_seed,
                                 const T* input_embeddings) {
  if (input_embeddings == nullptr) {
    const std::vector<T> embedded = embed(ids);
    return state_->run(ids, 1.0, dropout_seed, embedded.data(), nullptr, false);
  }
  return state_->run(ids, 1.0, dropout_seed, input_embeddings, nullptr, false);
}

template <typename T>
double TrainableDecoder<T>::State::run(std::span<const std::int32_t> ids, double weight,
                                       std::uint64_t seed, const T* input_embeddings, T* grad_input,
                                       bool backward) {
  const auto n = static_cast<std::int64_t>(ids.size());
  if (n < 2) fail("training sequence of ", n, " tokens: need at least 2");
  if (n > config.max_position_embeddings) {
    fail("training sequence of ", n, " tokens exceeds max_position_embeddings (",
         config.max_position_embeddings, ")");
  }
  const std::int64_t hidden = config.hidden_size;
  const std::int64_t heads = config.num_attention_heads;
  const std::int64_t kv_heads = config.num_key_value_heads;
  const std::int64_t head_dim = config.head_dim;
  const std::int64_t q_width = heads * head_dim;
  const std::int64_t kv_width = kv_heads * head_dim;
  const std::int64_t inner = config.intermediate_size;
  const std::int64_t vocab = config.vocab_size;
  const auto eps = static_cast<T>(config.rms_norm_eps);

  std::vector<T> x(input_embeddings, input_embeddings + n * hidden);
  std::vector<T> projected(size_of<T>(n, hidden));
  caches.resize(layers.size());
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const Layer<T>& layer = layers[l];
    LayerCache<T>& c = caches[l];
    c.x_in = x;
    c.inverse_rms1.resize(static_cast<std::size_t>(n));
    c.normed1.resize(size_of<T>(n, hidden));
    train::rms_norm_forward(x.data(), n, hidden, layer.input_norm.data(), eps, c.normed1.data(),
                            c.inverse_rms1.data());
    c.q.resize(size_of<T>(n, q_width));
    c.k.resize(size_of<T>(n, kv_width));
    c.v.resize(size_of<T>(n, kv_width));
    linear_forward(layer.q, c.normed1.data(), n, c.q.data(), c.q_cache, seed);
    linear_forward(layer.k, c.normed1.data(), n, c.k.data(), c.k_cache, seed);
    linear_forward(layer.v, c.normed1.data(), n, c.v.data(), c.v_cache, seed);
    train::rope_rotate(c.q.data(), n, heads, head_dim, inverse_frequencies, false);
    train::rope_rotate(c.k.data(), n, kv_heads, head_dim, inverse_frequencies, false);
    const train::AttentionDims dims{n, heads, kv_heads, head_dim, layer.sliding_window};
    c.probabilities.resize(static_cast<std::size_t>(heads * n * n));
    c.attended.resize(size_of<T>(n, q_width));
    train::attention_forward(c.q.data(), c.k.data(), c.v.data(), dims, c.attended.data(),
                             c.probabilities.data());
    linear_forward(layer.o, c.attended.data(), n, projected.data(), c.o_cache, seed);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += projected[i];

    c.x_mid = x;
    c.inverse_rms2.resize(static_cast<std::size_t>(n));
    c.normed2.resize(size_of<T>(n, hidden));
    train::rms_norm_forward(x.data(), n, hidden, layer.post_attention_norm.data(), eps,
                            c.normed2.data(), c.inverse_rms2.data());
    c.gate.resize(size_of<T>(n, inner));
    c.up.resize(size_of<T>(n, inner));
    c.act.resize(size_of<T>(n, inner));
    linear_forward(layer.gate, c.normed2.data(), n, c.gate.data(), c.gate_cache, seed);
    linear_forward(layer.up, c.normed2.data(), n, c.up.data(), c.up_cache, seed);
    train::swiglu_forward(c.gate.data(), c.up.data(), n * inner, c.act.data());
    linear_forward(layer.down, c.act.data(), n, projected.data(), c.down_cache, seed);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += projected[i];
  }
  x_final = x;
  inverse_rms_final.resize(static_cast<std::size_t>(n));
  normed_final.resize(size_of<T>(n, hidden));
  train::rms_norm_forward(x.data(), n, hidden, final_norm.data(), eps, normed_final.data(),
                          inverse_rms_final.data());
  logits.resize(size_of<T>(n, vocab));
  head.forward(normed_final.data(), n, logits.data());
  const double total = train::cross_entropy_forward_backward(logits.data(), ids.data(), n, vocab,
                                                             static_cast<T>(weight));
  if (!backward) return total;

  // logits now hold ∂loss/∂logits.
  std::vector<T> grad_normed(size_of<T>(n, hidden));
  std::vector<T> grad_x(size_of<T>(n, hidden));
  std::vector<T> grad_branch(size_of<T>(n, hidden));
  head.backward(logits.data(), n, grad_normed.data());
  train::rms_norm_backward(x_final.data(), inverse_rms_final.data(), n, hidden, final_norm.data(),
                           grad_normed.data(), grad_x.data());
  std::vector<T> grad_act(size_of<T>(n, inner)), grad_gate(size_of<T>(n, inner)),
      grad_up(size_of<T>(n, inner));
  std::vector<T> grad_attended(size_of<T>(n, q_width)), grad_q(size_of<T>(n, q_width));
  std::vector<T> grad_k(size_of<T>(n, kv_width)), grad_v(size_of<T>(n, kv_width));
  const auto add_into = [](std::vector<T>& target, const std::vector<T>& values) {
    for (std::size_t i = 0; i < target.size(); ++i) target[i] += values[i];
  };
  for (std::size_t l = layers.size(); l-- > 0;) {
    const Layer<T>& layer = layers[l];
    const LayerCache<T>& c = caches[l];
    // MLP block: x_out = x_mid + down(silu(gate(h)) ⊙ up(h)), h = norm2(x_mid).
    linear_backward(layer.down, c.act.data(), n, grad_x.data(), c.down_cache, grad_act.data());
    train::swiglu_backward(c.gate.data(), c.up.data(), grad_act.data(), n * inner, grad_gate.data(),
                           grad_up.data());
    linear_backward(layer.gate, c.normed2.data(), n, grad_gate.data(), c.gate_cache,
                    grad_normed.data());
    linear_backward(layer.up, c.normed2.data(), n, grad_up.data(), c.up_cache, grad_branch.data());
    add_into(grad_normed, grad_branch);
    train::rms_norm_backward(c.x_mid.data(), c.inverse_rms2.data(), n, hidden,
                             layer.post_attention_norm.data(), grad_normed.data(),
                             grad_branch.data());
    add_into(grad_x, grad_branch);
    // Attention block: x_mid = x_in + o(attention(rope(q(h)), rope(k(h)), v(h))), h = norm1(x_in).
    linear_backward(layer.o, c.attended.data(), n, grad_x.data(), c.o_cache, grad_attended.data());
    const train::AttentionDims dims{n, heads, kv_heads, head_dim, layer.sliding_window};
    train::attention_backward(c.q.data(), c.k.data(), c.v.data(), c.probabilities.data(),
                              grad_attended.data(), dims, grad_q.data(), grad_k.data(),
                              grad_v.data());
    train::rope_rotate(grad_q.data(), n, heads, head_dim, inverse_frequencies, true);
    train::rope_rotate(grad_k.data(), n, kv_heads, head_dim, inverse_frequencies, true);
    linear_backward(layer.q, c.normed1.data(), n, grad_q.data(), c.q_cache, grad_normed.data());
    linear_backward(layer.k, c.normed1.data(), n, grad_k.data(), c.k_cache, grad_branch.data());
    add_into(grad_normed, grad_branch);
    linear_backward(layer.v, c.normed1.data(), n, grad_v.data(), c.v_cache, grad_branch.data());
    add_into(grad_normed, grad_branch);
    train::rms_norm_backward(c.x_in.data(), c.inverse_rms1.data(), n, hidden,
                             layer.input_norm.data(), grad_normed.data(), grad_branch.data());
    add_into(grad_x, grad_branch);
  }
  if (grad_input != nullptr) std::copy(grad_x.begin(), grad_x.end(), grad_input);
  return total;
}

template class TrainableDecoder<float>;
template class TrainableDecoder<double>;

}  // namespace uq
