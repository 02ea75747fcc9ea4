#include "model/perplexity.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.hpp"
#include "io/hf_config.hpp"
#include "model/causal_lm.hpp"

namespace uq {

double PerplexityResult::tokens_per_second() const {
  return seconds > 0.0 ? static_cast<double>(processed) / seconds : 0.0;
}

double negative_log_likelihood(std::span<const float> logits, std::int32_t target) {
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  // float exponentials, double accumulation: accurate to ~1e-7 relative.
  for (const float logit : logits) sum += static_cast<double>(std::exp(logit - max_logit));
  return std::log(sum) - static_cast<double>(logits[target] - max_logit);
}

void check_perplexity_ctx(const ModelConfig& config, std::int64_t ctx) {
  if (ctx < 2) fail("option --ctx must be at least 2, got ", ctx);
  if (ctx > config.max_position_embeddings) {
    fail("option --ctx ", ctx, " exceeds the model's max_position_embeddings (",
         config.max_position_embeddings, ")");
  }
}

PerplexityResult perplexity(const CausalLM& model, std::span<const std::int32_t> ids,
                            std::int64_t ctx, const WindowObserver& observe) {
  const ModelConfig& config = model.config();
  check_perplexity_ctx(config, ctx);
  const auto windows = static_cast<std::int64_t>(ids.size()) / ctx;
  if (windows == 0) {
    fail("the data has ", ids.size(), " tokens, fewer than one window of --ctx ", ctx);
  }
  double seconds = 0.0;
  const std::int64_t vocab = config.vocab_size;
  double total_nll = 0.0;
  for (std::int64_t w = 0; w < windows; ++w) {
    const auto window =
        ids.subspan(static_cast<std::size_t>(w * ctx), static_cast<std::size_t>(ctx));
    const auto start = std::chrono::steady_clock::now();
    const std::vector<float> logits = model.forward(window, LogitsMode::All);
    for (std::int64_t t = 0; t + 1 < ctx; ++t) {
      const std::span<const float> row(logits.data() + t * vocab, static_cast<std::size_t>(vocab));
      total_nll += negative_log_likelihood(row, window[t + 1]);
    }
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (observe) observe(window, logits);
  }
  PerplexityResult result;
  result.windows = windows;
  result.tokens = windows * (ctx - 1);
  result.processed = windows * ctx;
  result.mean_nll = total_nll / static_cast<double>(result.tokens);
  result.perplexity = std::exp(result.mean_nll);
  result.seconds = seconds;
  return result;
}

}  // namespace uq
