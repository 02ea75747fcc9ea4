#pragma once
// The whole decoder on one NVIDIA GPU: a CausalLM built from a loaded CPU `Model` whose
// weights are uploaded once (see device_linear.hpp for the formats), with the residual stream,
// activations and the KV cache in float32 device memory and every stage a kernel
// (decoder_kernels.hpp). It computes the CPU Model's function: the same RoPE variants, GQA,
// sliding windows, biases and tied embeddings. Greedy and sampled decoding pick the token on
// the device (sampling_kernels.hpp) and copy back only its id. One sequence runs at a time (they
// share the workspace).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_graph.hpp"
#include "kernels/cuda/device_buffer.hpp"
#include "kernels/cuda/device_linear.hpp"
#include "kernels/cuda/pinned_buffer.hpp"
#include "kernels/cuda/sampling_kernels.hpp"
#include "kernels/cuda/stage_clock.hpp"
#include "kernels/cuda/stream.hpp"
#include "model/causal_lm.hpp"
#include "model/decoder.hpp"

namespace uq::cuda {

// Empty when every weight of `model` has a CUDA kernel, else a sentence naming the first
// layer that has none and its format.
std::optional<std::string> cuda_unsupported_reason(const Model& model);

// Keys and values of every layer, [layer][capacity][kv_heads * head_dim], grown on demand.
class DeviceKVCache {
 public:
  DeviceKVCache(int layers, int kv_width) : layers_(layers), kv_width_(kv_width) {}
  std::int64_t length() const { return length_; }
  std::int64_t capacity() const { return capacity_; }
  void reserve(std::int64_t positions);
  void advance(std::int64_t count) { length_ += count; }
  float* keys(int layer) { return keys_.data() + offset(layer); }
  float* values(int layer) { return values_.data() + offset(layer); }

 private:
  std::size_t offset(int layer) const {
    return static_cast<std::size_t>(layer) * static_cast<std::size_t>(capacity_) * kv_width_;
  }
  int layers_;
  int kv_width_;
  std::int64_t length_ = 0;
  std::int64_t capacity_ = 0;
  DeviceBuffer<float> keys_;
  DeviceBuffer<float> values_;
};

// A captured decode step (one token, greedy or sampled) of one sequence, replayed while the buffers
// it was captured with stay in place.
struct DecodeGraph {
  CapturedGraph graph;
  std::vector<const void*> buffers;  // the device pointers baked into it
  bool unavailable = false;          // capture failed once: this sequence runs eagerly
};

class CudaModel final : public CausalLM {
 public:
  // Uploads `model` to the current CUDA device. Throws uq::Error naming the first layer
  // whose format has no CUDA kernel, or a failed CUDA call.
  explicit CudaModel(std::shared_ptr<const Model> model);

  const ModelConfig& config() const override { return model_->config(); }
  std::unique_ptr<ModelSequence> start_sequence() const override;

  // Runs ids at positions cache.length()..; returns logits (All / Last), or with `chosen`
  // nothing but writes the last row's token into *chosen: its argmax, or with `sampling` the
  // token sample_token picks. With `graph`, a one-token step replays the graph captured by
  // the previous such step of the same kind (CUDA graph: one launch instead of hundreds), or
  // runs eagerly and captures one.
  std::vector<float> run(std::span<const std::int32_t> ids, DeviceKVCache& cache, LogitsMode mode,
                         std::int32_t* chosen, DecodeGraph* graph = nullptr,
                         const SamplingParameters* sampling = nullptr) const;

  // Device time of each stage of one greedy decode step (a replayed graph, as in decoding)
  // after `context` cached tokens, averaged over `repetitions` replays.
  std::vector<StageTime> profile_decode(int context, int repetitions) const;

 private:
  struct Layer {
    std::unique_ptr<DeviceLinear> qkv, o, gate_up, down;
    DeviceBuffer<float> input_norm, post_attention_norm;
  };
  struct Workspace {
    int rows = 0;
    DeviceBuffer<std::int32_t> ids;
    DeviceBuffer<float> x, normed, qkv, attended, gate_up, activated, logits, attention, argmax;
    DeviceBuffer<std::int32_t> chosen;
    DeviceBuffer<unsigned char> sampling;  // sample_token's workspace
    DeviceBuffer<SamplingParameters> sampling_parameters;
    PinnedBuffer<SamplingParameters> host_sampling_parameters;
    DeviceBuffer<int> position;           // first position of the ids being run
    PinnedBuffer<std::int32_t> host_ids;  // staging: ids in
    PinnedBuffer<int> host_words;         // staging: [0] position in, [1] chosen id out
    LinearScratch scratch;
  };
  void reserve_workspace(int rows, std::size_t attention_floats) const;
  enum class Pick { None, Greedy, Sampled };
  // Queues the whole forward of `rows` ids already in the workspace (positions from the device
  // position word) on the stream; ends with the last row's token into work.chosen: its argmax
  // (Greedy) or sample_token with the parameters in work.sampling_parameters (Sampled).
  // With `clock`, marks the end of each stage on it.
  void enqueue_forward(int rows, LogitsMode mode, Pick pick, int max_keys, DeviceKVCache& cache,
                       StageClock* clock = nullptr) const;
  std::vector<const void*> graph_buffers(DeviceKVCache& cache) const;

  std::shared_ptr<const Model> model_;
  Stream stream_;
  CublasHandle cublas_;
  DeviceBuffer<unsigned char> cublas_workspace_;  // fixed, so that graphs can hold cuBLAS calls
  std::shared_ptr<const DeviceMatrix> embedding_;
  std::unique_ptr<DeviceLinear> lm_head_;
  std::vector<Layer> layers_;
  DeviceBuffer<float> final_norm_;
  DeviceBuffer<float> inverse_frequencies_;
  mutable Workspace workspace_;
};

}  // namespace uq::cuda
