#pragma once
// What perplexity and generation need from a model, wherever it runs: the CPU
// `Model` and the GPU `cuda::CudaModel` both implement it, so the perplexity
// protocol and the generation loop exist once.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace uq {

struct ModelConfig;
class Sampler;

enum class LogitsMode { All, Last };

// One growing sequence: its KV cache lives where the model runs.
class ModelSequence {
 public:
  virtual ~ModelSequence() = default;
  // Tokens processed so far.
  virtual std::int64_t length() const = 0;
  // Runs `ids` at positions length().. and appends their keys/values. Returns
  // logits [n, vocab] row-major for All, [1, vocab] of the last token for Last.
  virtual std::vector<float> forward(std::span<const std::int32_t> ids, LogitsMode mode) = 0;
  // Runs `ids` and returns the argmax of the last token's logits (first index
  // on ties). A GPU model picks it on the device and returns only the id.
  virtual std::int32_t forward_greedy(std::span<const std::int32_t> ids);
  // Runs `ids` and returns sampler.next() of the last token's logits. A GPU model samples on
  // the device with sampler.next_draw() and returns only the id.
  virtual std::int32_t forward_sampled(std::span<const std::int32_t> ids, Sampler& sampler);
};

class CausalLM {
 public:
  virtual ~CausalLM() = default;
  virtual const ModelConfig& config() const = 0;
  virtual std::unique_ptr<ModelSequence> start_sequence() const = 0;
  // Logits of `ids` from an empty context.
  virtual std::vector<float> forward(std::span<const std::int32_t> ids,
                                     LogitsMode mode = LogitsMode::All) const;
};

}  // namespace uq
