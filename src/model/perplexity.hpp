#pragma once
// The perplexity protocol of DESIGN.md §4.2: non-overlapping windows of `ctx`
// ids (a trailing partial window dropped), each run from an empty cache;
// perplexity = exp(mean NLL of positions 1..ctx-1 of every window).
#include <cstdint>
#include <functional>
#include <span>

namespace uq {

class CausalLM;
struct ModelConfig;

struct PerplexityResult {
  double perplexity = 0.0;
  double mean_nll = 0.0;
  std::int64_t tokens = 0;  // predicted tokens: windows * (ctx - 1)
  std::int64_t windows = 0;
  std::int64_t processed = 0;  // ids run through the model: windows * ctx
  double seconds = 0.0;
  double tokens_per_second() const;  // processed ids per second
};

// Sees each window's ids and its logits [ctx, vocab] (e.g. to compare them
// with a reference model's); its time is not counted in `seconds`.
using WindowObserver =
    std::function<void(std::span<const std::int32_t> window, std::span<const float> logits)>;

// Throws uq::Error when ctx < 2, ctx > max_position_embeddings, or `ids` holds
// fewer than ctx ids.
PerplexityResult perplexity(const CausalLM& model, std::span<const std::int32_t> ids,
                            std::int64_t ctx, const WindowObserver& observe = {});

// Throws uq::Error naming --ctx when ctx < 2 or ctx > max_position_embeddings.
void check_perplexity_ctx(const ModelConfig& config, std::int64_t ctx);

// -log softmax(logits)[target], computed stably (double accumulation).
double negative_log_likelihood(std::span<const float> logits, std::int32_t target);

}  // namespace uq
