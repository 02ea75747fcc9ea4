#include "model/generate.hpp"

#include <algorithm>
#include <chrono>

#include "core/error.hpp"
#include "model/decoder.hpp"

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

GenerationResult generate(const Model& model, std::span<const std::int32_t> prompt,
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

  KVCache cache = model.make_cache();
  auto start = std::chrono::steady_clock::now();
  std::vector<float> logits = model.forward(prompt, cache, LogitsMode::Last);
  result.prompt_seconds = seconds_since(start);

  start = std::chrono::steady_clock::now();
  for (std::int64_t step = 0;; ++step) {
    const std::int32_t token = sampler.next(logits);
    result.ids.push_back(token);
    ++result.new_tokens;
    if (options.on_token) options.on_token(token);
    const bool is_eos = std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(),
                                  token) != config.eos_token_ids.end();
    if ((options.stop_at_eos && is_eos) || step + 1 == options.max_new_tokens) break;
    logits = model.forward(std::span<const std::int32_t>(&token, 1), cache, LogitsMode::Last);
  }
  result.decode_seconds = seconds_since(start);
  return result;
}

}  // namespace uq
