#include "kernels/cuda/cuda_model.hpp"

#include <algorithm>
#include <cstdio>

#include "core/error.hpp"
#include "kernels/cuda/cublas_library.hpp"
#include "kernels/cuda/decoder_kernels.hpp"
#include "model/rope.hpp"
#include "model/sampling.hpp"

namespace uq::cuda {
namespace {

DeviceBuffer<float> upload_vector(const std::vector<float>& values) {
  DeviceBuffer<float> buffer(values.size());
  buffer.upload(values);
  return buffer;
}

template <class T>
void reserve(DeviceBuffer<T>& buffer, std::size_t count) {
  if (buffer.size() < count) buffer = DeviceBuffer<T>(count);
}

class CudaSequence final : public ModelSequence {
 public:
  explicit CudaSequence(const CudaModel& model)
      : model_(model),
        cache_(static_cast<int>(model.config().num_hidden_layers),
               static_cast<int>(model.config().num_key_value_heads * model.config().head_dim)) {}
  std::int64_t length() const override { return cache_.length(); }
  std::vector<float> forward(std::span<const std::int32_t> ids, LogitsMode mode) override {
    return model_.run(ids, cache_, mode, nullptr);
  }
  std::int32_t forward_greedy(std::span<const std::int32_t> ids) override {
    std::int32_t chosen = 0;
    model_.run(ids, cache_, LogitsMode::Last, &chosen, &greedy_graph_);
    return chosen;
  }
  std::int32_t forward_sampled(std::span<const std::int32_t> ids, Sampler& sampler) override {
    const SamplingOptions& options = sampler.options();
    if (options.temperature == 0.0f) return forward_greedy(ids);  // draws no random number
    const SamplingParameters parameters{sampler.next_draw(), options.temperature, options.top_k,
                                        options.top_p};
    std::int32_t chosen = 0;
    model_.run(ids, cache_, LogitsMode::Last, &chosen, &sampled_graph_, &parameters);
    return chosen;
  }

 private:
  const CudaModel& model_;
  DeviceKVCache cache_;
  DecodeGraph greedy_graph_;
  DecodeGraph sampled_graph_;
};

}  // namespace

std::optional<std::string> cuda_unsupported_reason(const Model& model) {
  for (const auto& [path, weight] : model.named_weights()) {
    if (auto reason = cuda_unsupported_reason(NamedWeight{path, weight.get()})) return reason;
  }
  return std::nullopt;
}

void DeviceKVCache::reserve(std::int64_t positions) {
  if (positions <= capacity_) return;
  const std::int64_t capacity = std::max<std::int64_t>({positions, 2 * capacity_, 256});
  const std::size_t layer_floats = static_cast<std::size_t>(capacity) * kv_width_;
  DeviceBuffer<float> keys(layer_floats * layers_);
  DeviceBuffer<float> values(layer_floats * layers_);
  const std::size_t kept = static_cast<std::size_t>(length_) * kv_width_ * sizeof(float);
  for (int layer = 0; layer < layers_ && kept > 0; ++layer) {
    UQ_CUDA_CHECK(cudaMemcpy(keys.data() + layer * layer_floats, this->keys(layer), kept,
                             cudaMemcpyDeviceToDevice));
    UQ_CUDA_CHECK(cudaMemcpy(values.data() + layer * layer_floats, this->values(layer), kept,
                             cudaMemcpyDeviceToDevice));
  }
  keys_ = std::move(keys);
  values_ = std::move(values);
  capacity_ = capacity;
}

CudaModel::CudaModel(std::shared_ptr<const Model> model) : model_(std::move(model)) {
  if (auto reason = cuda_unsupported_reason(*model_)) fail(*reason);
  cublas_workspace_ = DeviceBuffer<unsigned char>(std::size_t{32} << 20);
  UQ_CUDA_CHECK(cublas_library().set_workspace(cublas_.get(), cublas_workspace_.data(),
                                               cublas_workspace_.bytes()));
  UQ_CUDA_CHECK(cublas_library().set_stream(cublas_.get(), stream_.get()));
  const ModelConfig& config = model_->config();
  embedding_ = std::make_shared<const DeviceMatrix>(
      std::vector<NamedWeight>{{"model.embed_tokens", &model_->embed_tokens()}});
  if (config.tie_word_embeddings) {
    lm_head_ = std::make_unique<DeviceLinear>(embedding_);
  } else {
    lm_head_ = std::make_unique<DeviceLinear>(
        std::vector<DeviceLinear::Part>{{{"lm_head", &model_->lm_head()}, nullptr}});
  }
  const auto& layers = model_->layers();
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const DecoderLayer& source = layers[i];
    const std::string prefix = "model.layers." + std::to_string(i) + ".";
    const auto part = [&](const std::string& name, const std::shared_ptr<Weight>& weight,
                          const std::vector<float>& bias) {
      return DeviceLinear::Part{{prefix + name, weight.get()}, &bias};
    };
    Layer layer;
    layer.qkv = std::make_unique<DeviceLinear>(
        std::vector<DeviceLinear::Part>{part("self_attn.q_proj", source.q_proj, source.q_bias),
                                        part("self_attn.k_proj", source.k_proj, source.k_bias),
                                        part("self_attn.v_proj", source.v_proj, source.v_bias)});
    layer.o = std::make_unique<DeviceLinear>(
        std::vector<DeviceLinear::Part>{part("self_attn.o_proj", source.o_proj, source.o_bias)});
    layer.gate_up = std::make_unique<DeviceLinear>(
        std::vector<DeviceLinear::Part>{part("mlp.gate_proj", source.gate_proj, source.gate_bias),
                                        part("mlp.up_proj", source.up_proj, source.up_bias)});
    layer.down = std::make_unique<DeviceLinear>(
        std::vector<DeviceLinear::Part>{part("mlp.down_proj", source.down_proj, source.down_bias)});
    layer.input_norm = upload_vector(source.input_norm);
    layer.post_attention_norm = upload_vector(source.post_attention_norm);
    layers_.push_back(std::move(layer));
  }
  // The model's vectors, final norm among them, by name (named_vectors lists it last).
  for (const auto& [name, values] : model_->named_vectors()) {
    if (name == "model.norm.weight") final_norm_ = upload_vector(*values);
  }
  inverse_frequencies_ = upload_vector(Rope(config).inverse_frequencies());
}

std::unique_ptr<ModelSequence> CudaModel::start_sequence() const {
  return std::make_unique<CudaSequence>(*this);
}

void CudaModel::reserve_workspace(int rows, std::size_t attention_floats) const {
  const ModelConfig& config = model_->config();
  const auto size = [rows](std::int64_t width) {
    return static_cast<std::size_t>(rows) * static_cast<std::size_t>(width);
  };
  const std::int64_t q_width = config.num_attention_heads * config.head_dim;
  const std::int64_t kv_width = config.num_key_value_heads * config.head_dim;
  Workspace& work = workspace_;
  if (work.attention.size() < attention_floats) {
    work.attention = DeviceBuffer<float>(attention_floats);
    // Its counters start at zero; each attention call leaves them so.
    UQ_CUDA_CHECK(cudaMemsetAsync(work.attention.data(), 0, work.attention.bytes(), stream_.get()));
  }
  if (rows <= work.rows) return;
  work.rows = rows;
  work.ids = DeviceBuffer<std::int32_t>(static_cast<std::size_t>(rows));
  work.host_ids = PinnedBuffer<std::int32_t>(static_cast<std::size_t>(rows));
  work.x = DeviceBuffer<float>(size(config.hidden_size));
  work.normed = DeviceBuffer<float>(size(config.hidden_size));
  work.qkv = DeviceBuffer<float>(size(q_width + 2 * kv_width));
  work.attended = DeviceBuffer<float>(size(q_width));
  work.gate_up = DeviceBuffer<float>(size(2 * config.intermediate_size));
  work.activated = DeviceBuffer<float>(size(config.intermediate_size));
  work.logits = DeviceBuffer<float>(size(config.vocab_size));
  reserve(work.chosen, 1);
  reserve(work.argmax, argmax_workspace_floats());
  if (work.sampling.size() == 0) {  // the vocabulary's: sized once
    work.sampling =
        DeviceBuffer<unsigned char>(sampling_workspace_bytes(static_cast<int>(config.vocab_size)));
    work.sampling_parameters = DeviceBuffer<SamplingParameters>(1);
    work.host_sampling_parameters = PinnedBuffer<SamplingParameters>(1);
  }
  reserve(work.position, 1);
  if (work.host_words.size() == 0) work.host_words = PinnedBuffer<int>(2);
}

std::vector<const void*> CudaModel::graph_buffers(DeviceKVCache& cache) const {
  const Workspace& work = workspace_;
  return {work.ids.data(),
          work.x.data(),
          work.normed.data(),
          work.qkv.data(),
          work.attended.data(),
          work.gate_up.data(),
          work.activated.data(),
          work.logits.data(),
          work.attention.data(),
          work.argmax.data(),
          work.chosen.data(),
          work.sampling.data(),
          work.sampling_parameters.data(),
          work.position.data(),
          work.scratch.split.data(),
          work.scratch.product.data(),
          cache.keys(0),
          cache.values(0),
          reinterpret_cast<const void*>(static_cast<std::intptr_t>(cache.capacity()))};
}

std::vector<float> CudaModel::run(std::span<const std::int32_t> ids, DeviceKVCache& cache,
                                  LogitsMode mode, std::int32_t* chosen, DecodeGraph* graph,
                                  const SamplingParameters* sampling) const {
  const ModelConfig& config = model_->config();
  const auto count = static_cast<std::int64_t>(ids.size());
  if (count == 0) fail("forward: no token ids");
  const std::int64_t first_position = cache.length();
  if (first_position + count > config.max_position_embeddings) {
    fail("forward: ", first_position + count, " positions exceed max_position_embeddings (",
         config.max_position_embeddings, ")");
  }
  for (const std::int32_t id : ids) {
    if (id < 0 || id >= config.vocab_size) {
      fail("token id ", id, " outside the vocabulary [0, ", config.vocab_size, ")");
    }
  }
  const int rows = static_cast<int>(count);
  const int position = static_cast<int>(first_position);
  if (sampling != nullptr && chosen == nullptr) fail("forward: sampling needs a chosen token");
  const Pick pick = chosen == nullptr     ? Pick::None
                    : sampling != nullptr ? Pick::Sampled
                                          : Pick::Greedy;
  const bool graphable = graph != nullptr && chosen != nullptr && rows == 1;
  cache.reserve(first_position + count);
  // A graph replays at any position up to the cache's capacity: its attention is sized for it.
  const int max_keys = graphable ? static_cast<int>(cache.capacity()) : position + rows;
  const AttentionShape shape{static_cast<int>(config.num_attention_heads),
                             static_cast<int>(config.num_key_value_heads),
                             static_cast<int>(config.head_dim), 0};
  reserve_workspace(rows, attention_workspace_floats(shape, rows, max_keys));
  Workspace& work = workspace_;
  const cudaStream_t stream = stream_.get();
  std::copy(ids.begin(), ids.end(), work.host_ids.data());
  work.host_words.data()[0] = position;
  UQ_CUDA_CHECK(cudaMemcpyAsync(work.ids.data(), work.host_ids.data(), ids.size_bytes(),
                                cudaMemcpyHostToDevice, stream));
  UQ_CUDA_CHECK(cudaMemcpyAsync(work.position.data(), work.host_words.data(), sizeof(int),
                                cudaMemcpyHostToDevice, stream));
  if (sampling != nullptr) {
    work.host_sampling_parameters.data()[0] = *sampling;
    UQ_CUDA_CHECK(cudaMemcpyAsync(work.sampling_parameters.data(),
                                  work.host_sampling_parameters.data(), sizeof(SamplingParameters),
                                  cudaMemcpyHostToDevice, stream));
  }
  const bool replay = graphable && graph->graph.ready() && graph->buffers == graph_buffers(cache);
  if (replay) {
    graph->graph.launch(stream);
  } else {
    enqueue_forward(rows, mode, pick, max_keys, cache);
  }
  cache.advance(count);
  const int vocab = static_cast<int>(config.vocab_size);
  const int kept = mode == LogitsMode::Last ? 1 : rows;
  std::vector<float> logits;
  if (chosen != nullptr) {
    UQ_CUDA_CHECK(cudaMemcpyAsync(work.host_words.data() + 1, work.chosen.data(),
                                  sizeof(std::int32_t), cudaMemcpyDeviceToHost, stream));
  } else {
    logits.resize(static_cast<std::size_t>(kept) * static_cast<std::size_t>(vocab));
    UQ_CUDA_CHECK(cudaMemcpyAsync(logits.data(), work.logits.data(), logits.size() * sizeof(float),
                                  cudaMemcpyDeviceToHost, stream));
  }
  stream_.synchronize();
  if (chosen != nullptr) *chosen = work.host_words.data()[1];
  if (graphable && !replay && !graph->unavailable) {
    // The eager step sized every buffer; the next steps replay a graph of it. A capture the
    // runtime refuses only costs the replay.
    try {
      graph->graph.capture(stream, [&] { enqueue_forward(1, mode, pick, max_keys, cache); });
      graph->buffers = graph_buffers(cache);
    } catch (const Error& error) {
      graph->unavailable = true;
      cudaGetLastError();  // clear the capture's error
      // Said once per sequence: an eager decode is several times slower, which should not go
      // unexplained.
      std::fprintf(stderr, "warning: cuda: decode graph capture failed, decoding without it: %s\n",
                   error.what());
    }
  }
  return logits;
}

std::vector<StageTime> CudaModel::profile_decode(int context, int repetitions) const {
  const ModelConfig& config = model_->config();
  if (context < 1 || context + 1 > config.max_position_embeddings) {
    fail("profile decode: context ", context, " outside [1, ", config.max_position_embeddings, ")");
  }
  if (repetitions < 1) fail("profile decode: repetitions ", repetitions, " < 1");
  DeviceKVCache cache(static_cast<int>(config.num_hidden_layers),
                      static_cast<int>(config.num_key_value_heads * config.head_dim));
  // Fill the cache with `context` tokens (ids 0, 1, 2, ...: any valid ids do).
  std::vector<std::int32_t> prompt(static_cast<std::size_t>(context));
  for (std::size_t i = 0; i < prompt.size(); ++i)
    prompt[i] = static_cast<std::int32_t>(i % static_cast<std::size_t>(config.vocab_size));
  std::int32_t chosen = 0;
  run(prompt, cache, LogitsMode::Last, &chosen);
  // The step a decode graph replays: one token at position `context`, attention sized for the
  // cache's capacity. The cache's length stays, so every replay computes the same step.
  cache.reserve(context + 1);
  const int max_keys = static_cast<int>(cache.capacity());
  const AttentionShape shape{static_cast<int>(config.num_attention_heads),
                             static_cast<int>(config.num_key_value_heads),
                             static_cast<int>(config.head_dim), 0};
  reserve_workspace(1, attention_workspace_floats(shape, 1, max_keys));
  Workspace& work = workspace_;
  const cudaStream_t stream = stream_.get();
  work.host_ids.data()[0] = chosen;
  work.host_words.data()[0] = context;
  UQ_CUDA_CHECK(cudaMemcpyAsync(work.ids.data(), work.host_ids.data(), sizeof(std::int32_t),
                                cudaMemcpyHostToDevice, stream));
  UQ_CUDA_CHECK(cudaMemcpyAsync(work.position.data(), work.host_words.data(), sizeof(int),
                                cudaMemcpyHostToDevice, stream));
  StageClock clock;
  CapturedGraph graph;
  graph.capture(
      stream, [&] { enqueue_forward(1, LogitsMode::Last, Pick::Greedy, max_keys, cache, &clock); });
  graph.launch(stream);  // warm-up
  stream_.synchronize();
  for (int r = 0; r < repetitions; ++r) {
    graph.launch(stream);
    stream_.synchronize();
    clock.accumulate();
  }
  return clock.totals();
}

void CudaModel::enqueue_forward(int rows, LogitsMode mode, Pick pick, int max_keys,
                                DeviceKVCache& cache, StageClock* clock) const {
  const ModelConfig& config = model_->config();
  const int hidden = static_cast<int>(config.hidden_size);
  const int head_dim = static_cast<int>(config.head_dim);
  const int heads = static_cast<int>(config.num_attention_heads);
  const int kv_heads = static_cast<int>(config.num_key_value_heads);
  const int q_width = heads * head_dim;
  const int kv_width = kv_heads * head_dim;
  const int qkv_width = q_width + 2 * kv_width;
  const int inner = static_cast<int>(config.intermediate_size);
  const int vocab = static_cast<int>(config.vocab_size);
  const auto eps = static_cast<float>(config.rms_norm_eps);
  AttentionShape shape{heads, kv_heads, head_dim, 0};
  Workspace& work = workspace_;
  const cudaStream_t stream = stream_.get();
  const LinearContext context{stream, cublas_.get(), &work.scratch};
  const int* position = work.position.data();
  const auto mark = [&](const char* stage) {
    if (clock != nullptr) clock->mark(stage, stream);
  };
  // y = RMSNorm(h; gamma) W^T over `count` rows of `width` outputs. Where the linear can, the
  // norm runs inside its GEMV (the stream or persistent affine kernel) and the norm's stage then
  // shows ~0, its time being in the product's; otherwise the norm kernel writes work.normed.
  const auto normed_product = [&](const DeviceLinear& linear, const float* h, int count,
                                  const float* gamma, const char* norm_stage, float* y, int width) {
    const bool fuse = linear.fuses_input(count, width);
    if (!fuse) rms_norm(h, count, hidden, gamma, eps, work.normed.data(), stream);
    mark(norm_stage);
    if (fuse)
      linear.apply_fused(h, count, {GemvInputMode::rmsnorm, gamma, eps}, y, width, false, context);
    else
      linear.apply(work.normed.data(), count, y, width, false, context);
  };

  if (clock != nullptr) clock->start(stream);
  embedding_->gather(work.ids.data(), rows, work.x.data(), stream);
  mark("embedding");
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = layers_[i];
    const int index = static_cast<int>(i);
    shape.sliding_window = config.layer_uses_sliding_window[i] && config.sliding_window
                               ? static_cast<int>(*config.sliding_window)
                               : 0;
    normed_product(*layer.qkv, work.x.data(), rows, layer.input_norm.data(), "input norm",
                   work.qkv.data(), qkv_width);
    mark("qkv proj");
    rope_attention(work.qkv.data(), rows, qkv_width, inverse_frequencies_.data(), position,
                   max_keys, cache.keys(index), cache.values(index), shape, work.attention.data(),
                   work.attended.data(), stream);
    mark("rope + kv store + attention");
    layer.o->apply(work.attended.data(), rows, work.x.data(), hidden, true, context);
    mark("o proj + residual");
    normed_product(*layer.gate_up, work.x.data(), rows, layer.post_attention_norm.data(),
                   "post-attention norm", work.gate_up.data(), 2 * inner);
    mark("gate|up proj");
    const bool fuse_down = layer.down->fuses_input(rows, hidden);
    if (!fuse_down) swiglu(work.gate_up.data(), rows, inner, work.activated.data(), stream);
    mark("swiglu");
    if (fuse_down)
      layer.down->apply_fused(work.gate_up.data(), rows, {GemvInputMode::swiglu, nullptr, 0.0f},
                              work.x.data(), hidden, true, context);
    else
      layer.down->apply(work.activated.data(), rows, work.x.data(), hidden, true, context);
    mark("down proj + residual");
  }
  const int first_row = mode == LogitsMode::Last ? rows - 1 : 0;
  const int kept = rows - first_row;
  const float* last = work.x.data() + static_cast<std::size_t>(first_row) * hidden;
  normed_product(*lm_head_, last, kept, final_norm_.data(), "final norm", work.logits.data(),
                 vocab);
  mark("lm_head");
  const float* last_logits = work.logits.data() + static_cast<std::size_t>(kept - 1) * vocab;
  if (pick == Pick::Greedy) {
    argmax(last_logits, vocab, work.argmax.data(), work.chosen.data(), stream);
    mark("argmax");
  } else if (pick == Pick::Sampled) {
    sample_token(last_logits, vocab, work.sampling_parameters.data(), work.sampling.data(),
                 work.sampling.bytes(), work.chosen.data(), stream);
    mark("sampling");
  }
}

}  // namespace uq::cuda
