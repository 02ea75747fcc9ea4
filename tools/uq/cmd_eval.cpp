// `uq eval MODEL --data FILE [--ctx 256] [--json]`: perplexity of a text file
// under the protocol of DESIGN.md §4.2.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "commands.hpp"
#include "core/error.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "model/decoder.hpp"
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

}  // namespace

void register_eval(CLI::App& app) {
  struct Options {
    std::string model;
    std::string data;
    std::int64_t ctx = 256;
    bool json = false;
    RunOptions run;
  };
  static Options options;
  auto* command = app.add_subcommand("eval", "Perplexity of a model on a text file");
  command->add_option("MODEL", options.model, "Model directory")->required();
  command->add_option("--data", options.data, "Text file to evaluate on")->required();
  command->add_option("--ctx", options.ctx, "Window length in tokens")->capture_default_str();
  command->add_flag("--json", options.json, "Print one JSON object on stdout");
  add_run_options(*command, options.run);
  command->callback([] {
    apply_run_options(options.run);
    const std::string text = read_text(options.data);
    if (text.empty()) fail("option --data: '", options.data, "' is empty");
    const auto model = load_model(options.model);
    check_perplexity_ctx(model->config(), options.ctx);
    const auto ids = model->tokenizer()->encode(text);
    if (static_cast<std::int64_t>(ids.size()) < options.ctx) {
      fail("option --data: '", options.data, "' has ", ids.size(),
           " tokens, fewer than one window of --ctx ", options.ctx);
    }
    const PerplexityResult result = perplexity(*model, ids, options.ctx);
    if (options.json) {
      const nlohmann::json report = {
          {"ppl", result.perplexity},  {"tokens", result.tokens},
          {"windows", result.windows}, {"ctx", options.ctx},
          {"seconds", result.seconds}, {"tokens_per_second", result.tokens_per_second()}};
      std::printf("%s\n", report.dump().c_str());
    } else {
      std::printf(
          "perplexity %.4f over %lld tokens (%lld windows of %lld) in %.2f s, %.0f tokens/s\n",
          result.perplexity, static_cast<long long>(result.tokens),
          static_cast<long long>(result.windows), static_cast<long long>(options.ctx),
          result.seconds, result.tokens_per_second());
    }
  });
}

}  // namespace uq::cli
