#include "model/generate.hpp"

#include <algorithm>
#include <chrono>

#include "core/error.hpp"
#include "io/hf_config.hpp"
#include "model/causal_lm.hpp"

namespace uq {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

double GenerationResult::tokens_per_second() const {
  const double seconds = prompt_seconds + decode_seconds;
  return seconds > 0.0 ? static_cast<double>(new_tokens) / seconds : 0.0;
}

GenerationResult generate(const CausalLM& model, std::span<const std::int32_t> prompt,
                          const GenerationOptions& options) {
  if (prompt.empty()) fail("generate: the prompt has no tokens");
  if (options.max_new_tokens < 0) fail("generate: max_new_tokens must be >= 0");
  const ModelConfig& config = model.config();
  const auto total = static_cast<std::int64_t>(prompt.size()) + options.max_new_tokens;
  if (total > config.max_position_embeddings) {
    fail("generate: prompt plus new tokens (", total, ") exceed max_position_embeddings (",
         config.max_position_embeddings, ")");
  }
  Sampler sampler(options.sampling);
  GenerationResult result;
  result.ids.assign(prompt.begin(), prompt.end());
  if (options.max_new_tokens == 0) return result;

  const auto sequence = model.start_sequence();
  // The sequence picks the token where the logits are (a GPU returns only the id).
  const bool greedy = options.sampling.temperature == 0.0f;
  const auto run = [&](std::span<const std::int32_t> ids) {
    return greedy ? sequence->forward_greedy(ids) : sequence->forward_sampled(ids, sampler);
  };
  auto start = std::chrono::steady_clock::now();
  std::int32_t token = run(prompt);
  result.prompt_seconds = seconds_since(start);

  start = std::chrono::steady_clock::now();
  for (std::int64_t step = 0;; ++step) {
    result.ids.push_back(token);
    ++result.new_tokens;
    if (options.on_token) options.on_token(token);
    const bool is_eos = std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(),
                                  token) != config.eos_token_ids.end();
    if ((options.stop_at_eos && is_eos) || step + 1 == options.max_new_tokens) break;
    token = run(std::span<const std::int32_t>(&token, 1));
  }
  result.decode_seconds = seconds_since(start);
  return result;
}

}  // namespace uq
