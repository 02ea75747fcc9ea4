#pragma once
// Autoregressive generation: one batched forward over the prompt, then one
// token at a time through the KV cache until max_new_tokens or an EOS token.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "model/sampling.hpp"

namespace uq {

class CausalLM;

struct GenerationOptions {
  std::int64_t max_new_tokens = 32;
  SamplingOptions sampling;
  bool stop_at_eos = true;  // stop after emitting one of the config's eos ids
  // Called with each new token as soon as it is chosen (streaming output).
  std::function<void(std::int32_t)> on_token;
};

struct GenerationResult {
  std::vector<std::int32_t> ids;  // prompt followed by the new tokens
  std::int64_t new_tokens = 0;
  double prompt_seconds = 0.0;       // batched forward of the prompt
  double decode_seconds = 0.0;       // the token-by-token steps
  double tokens_per_second() const;  // new tokens / (prompt + decode time)
};

// Throws uq::Error for an empty prompt, ids outside the vocabulary, or a
// length beyond max_position_embeddings.
GenerationResult generate(const CausalLM& model, std::span<const std::int32_t> prompt,
                          const GenerationOptions& options);

}  // namespace uq
