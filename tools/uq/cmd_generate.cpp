// `uq generate MODEL -p TEXT [-n 32] [--temperature 0] [--top-p 1] [--top-k 0]
// [--seed 0] [--json]`: continue a prompt.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "adapter_option.hpp"
#include "check_tensors_option.hpp"
#include "commands.hpp"
#include "core/error.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "io/tokenizer/utf8.hpp"
#include "model/decoder.hpp"
#include "model/device_placement.hpp"
#include "run_options.hpp"

namespace uq::cli {

void register_generate(CLI::App& app) {
  struct Options {
    std::string model;
    std::string adapter;
    std::string prompt;
    std::int64_t max_new_tokens = 32;
    SamplingOptions sampling;
    bool json = false;
    bool check_tensors = false;
    RunOptions run;
  };
  static Options options;
  auto* command = app.add_subcommand("generate", "Continue a text prompt");
  command->add_option("MODEL", options.model, "Model directory or .gguf file")->required();
  add_adapter_option(*command, options.adapter);
  command->add_option("-p,--prompt", options.prompt, "Prompt text")->required();
  command->add_option("-n,--max-new-tokens", options.max_new_tokens, "Tokens to generate")
      ->capture_default_str();
  command->add_option("--temperature", options.sampling.temperature, "0 means greedy")
      ->capture_default_str();
  command->add_option("--top-p", options.sampling.top_p, "Nucleus sampling mass")
      ->capture_default_str();
  command->add_option("--top-k", options.sampling.top_k, "Keep the k most likely (0: all)")
      ->capture_default_str();
  command->add_option("--seed", options.sampling.seed, "Random seed")->capture_default_str();
  command->add_flag("--json", options.json, "Print one JSON object on stdout");
  add_check_tensors_option(*command, options.check_tensors);
  add_run_options(*command, options.run);
  command->callback([] {
    apply_run_options(options.run);
    if (options.max_new_tokens < 0) fail("option -n must be >= 0");
    if (const auto bad = utf8::find_invalid(options.prompt)) {
      fail("option -p: the prompt is not valid UTF-8 (byte ", *bad, ")");
    }
    check_tensors_if_asked(options.check_tensors, options.model, options.adapter);
    const auto model = load_model_with_adapter(options.model, options.adapter);
    const Tokenizer& tokenizer = *model->tokenizer();
    const auto prompt_ids = tokenizer.encode(options.prompt);
    if (prompt_ids.empty()) fail("option -p: the prompt encodes to no tokens");

    GenerationOptions generation;
    generation.max_new_tokens = options.max_new_tokens;
    generation.sampling = options.sampling;
    if (!options.json) {
      // Stream: print the text each new token completes (decoding the whole
      // continuation keeps multi-byte characters split across tokens intact).
      std::printf("%s", options.prompt.c_str());
      std::fflush(stdout);
      auto printed = std::make_shared<std::size_t>(0);
      auto continuation = std::make_shared<std::vector<std::int32_t>>();
      generation.on_token = [&tokenizer, printed, continuation](std::int32_t token) {
        continuation->push_back(token);
        const std::string text = tokenizer.decode(*continuation);
        // A trailing U+FFFD is a character whose remaining bytes are still to come.
        if (text.size() > *printed && !text.ends_with("\xEF\xBF\xBD")) {
          std::printf("%s", text.substr(*printed).c_str());
          std::fflush(stdout);
          *printed = text.size();
        }
      };
    }
    const PlacedModel placed = place_model(model, options.run.device);
    const GenerationResult result = generate(*placed.model, prompt_ids, generation);
    if (options.json) {
      const nlohmann::json report = {{"ids", result.ids},
                                     {"prompt_tokens", prompt_ids.size()},
                                     {"new_tokens", result.new_tokens},
                                     {"text", tokenizer.decode(result.ids)},
                                     {"prompt_seconds", result.prompt_seconds},
                                     {"decode_seconds", result.decode_seconds},
                                     {"tokens_per_second", result.tokens_per_second()}};
      std::printf("%s\n",
                  report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::printf("\n");
    }
  });
}

}  // namespace uq::cli
