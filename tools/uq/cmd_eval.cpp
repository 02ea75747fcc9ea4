// `uq eval MODEL --data FILE [--ctx 256] [--json]`: perplexity of a text file
// under the protocol of DESIGN.md §4.2.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "adapter_option.hpp"
#include "api/metrics.hpp"
#include "check_tensors_option.hpp"
#include "commands.hpp"
#include "core/error.hpp"
#include "core/progress.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "io/tokenizer/utf8.hpp"
#include "model/decoder.hpp"
#include "model/device_placement.hpp"
#include "model/perplexity.hpp"
#include "run_options.hpp"

namespace uq::cli {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("option --data: cannot open '", path, "'");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs the reference model on the same windows and accumulates how close the
// evaluated model's predictions are, over the predicted positions 0..ctx-2.
class ReferenceComparison {
 public:
  ReferenceComparison(std::shared_ptr<Model> reference, const ModelConfig& evaluated,
                      const std::string& path)
      : reference_(std::move(reference)) {
    if (reference_->config().vocab_size != evaluated.vocab_size) {
      fail("option --reference: '", path, "' has vocab_size ", reference_->config().vocab_size,
           ", the evaluated model ", evaluated.vocab_size);
    }
  }

  void add(std::span<const std::int32_t> window, std::span<const float> logits) {
    const std::vector<float> reference_logits = reference_->forward(window, LogitsMode::All);
    const std::int64_t vocab = reference_->config().vocab_size;
    const auto predicted = static_cast<std::size_t>((window.size() - 1) * vocab);
    const std::span<const float> ours = logits.first(predicted);
    const std::span<const float> theirs = std::span<const float>(reference_logits).first(predicted);
    const auto rows = static_cast<std::int64_t>(window.size() - 1);
    cosine_sum_ += uq::cosine_similarity(theirs, ours);
    kl_sum_ += uq::mean_kl_divergence(theirs, ours, vocab) * static_cast<double>(rows);
    for (std::int64_t t = 0; t < rows; ++t) {
      nll_sum_ += negative_log_likelihood(theirs.subspan(t * vocab, vocab), window[t + 1]);
    }
    rows_ += rows;
    ++windows_;
  }

  // Mean over windows of the cosine similarity of the flattened logits.
  double cosine_similarity() const { return cosine_sum_ / static_cast<double>(windows_); }
  // Mean over predicted positions of KL(reference || evaluated).
  double kl_divergence() const { return kl_sum_ / static_cast<double>(rows_); }
  double perplexity() const { return std::exp(nll_sum_ / static_cast<double>(rows_)); }

 private:
  std::shared_ptr<Model> reference_;
  double cosine_sum_ = 0.0;
  double kl_sum_ = 0.0;
  double nll_sum_ = 0.0;
  std::int64_t rows_ = 0;
  std::int64_t windows_ = 0;
};

}  // namespace

void register_eval(CLI::App& app) {
  struct Options {
    std::string model;
    std::string adapter;
    std::string data;
    std::string reference;
    std::int64_t ctx = 256;
    bool json = false;
    bool check_tensors = false;
    RunOptions run;
  };
  static Options options;
  auto* command = app.add_subcommand("eval", "Perplexity of a model on a text file");
  command->add_option("MODEL", options.model, "Model directory or .gguf file")->required();
  add_adapter_option(*command, options.adapter);
  command->add_option("--data", options.data, "Text file to evaluate on")->required();
  command->add_option("--reference", options.reference,
                      "Also compare logits with this model (cosine similarity, KL divergence)");
  command->add_option("--ctx", options.ctx, "Window length in tokens")->capture_default_str();
  command->add_flag("--json", options.json, "Print one JSON object on stdout");
  add_check_tensors_option(*command, options.check_tensors);
  add_run_options(*command, options.run);
  command->callback([] {
    apply_run_options(options.run);
    const std::string text = read_text(options.data);
    if (text.empty()) fail("option --data: '", options.data, "' is empty");
    if (const auto bad = utf8::find_invalid(text)) {
      fail("option --data: '", options.data, "' is not valid UTF-8 (byte ", *bad, ")");
    }
    check_tensors_if_asked(options.check_tensors, options.model, options.adapter);
    const auto model = load_model_with_adapter(options.model, options.adapter);
    check_perplexity_ctx(model->config(), options.ctx);
    const auto ids = model->tokenizer()->encode(text);
    if (static_cast<std::int64_t>(ids.size()) < options.ctx) {
      fail("option --data: '", options.data, "' has ", ids.size(),
           " tokens, fewer than one window of --ctx ", options.ctx);
    }
    std::optional<ReferenceComparison> comparison;
    if (!options.reference.empty()) {
      check_tensors_if_asked(options.check_tensors, options.reference, "");
      comparison.emplace(load_model(options.reference), model->config(), options.reference);
    }
    Progress progress("eval", static_cast<std::int64_t>(ids.size()) / options.ctx);
    const WindowObserver observe = [&comparison, &progress](std::span<const std::int32_t> window,
                                                            std::span<const float> logits) {
      if (comparison) comparison->add(window, logits);
      progress.advance();
    };
    const PlacedModel placed = place_model(model, options.run.device);
    const PerplexityResult result = perplexity(*placed.model, ids, options.ctx, observe);
    progress.finish();
    if (!std::isfinite(result.perplexity)) {
      fail(options.model, ": the model's logits are not finite (NaN or infinite weights?)");
    }
    if (options.json) {
      nlohmann::json report = {
          {"ppl", result.perplexity},  {"tokens", result.tokens},
          {"windows", result.windows}, {"ctx", options.ctx},
          {"seconds", result.seconds}, {"tokens_per_second", result.tokens_per_second()},
          {"device", placed.device}};
      if (comparison) {
        report["cosine_similarity"] = comparison->cosine_similarity();
        report["kl_divergence"] = comparison->kl_divergence();
        report["reference_ppl"] = comparison->perplexity();
      }
      std::printf("%s\n", report.dump().c_str());
    } else {
      std::printf(
          "perplexity %.4f over %lld tokens (%lld windows of %lld) in %.2f s, %.0f tokens/s\n",
          result.perplexity, static_cast<long long>(result.tokens),
          static_cast<long long>(result.windows), static_cast<long long>(options.ctx),
          result.seconds, result.tokens_per_second());
      if (comparison) {
        std::printf("reference perplexity %.4f, cosine similarity %.6f, KL divergence %.6g\n",
                    comparison->perplexity(), comparison->cosine_similarity(),
                    comparison->kl_divergence());
      }
    }
  });
}

}  // namespace uq::cli
