// `uq logits MODEL --ids 1,2,3 -o FILE.safetensors`: the model's logits for a
// list of token ids, as tensor "logits" float32 [n_ids, vocab].
#include <charconv>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "adapter_option.hpp"
#include "check_tensors_option.hpp"
#include "commands.hpp"
#include "core/error.hpp"
#include "io/safetensors.hpp"
#include "model/decoder.hpp"
#include "model/device_placement.hpp"
#include "run_options.hpp"

namespace uq::cli {
namespace {

std::vector<std::int32_t> parse_ids(const std::string& text) {
  std::vector<std::int32_t> ids;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    const std::size_t end = std::min(text.find(',', begin), text.size());
    std::int32_t id = 0;
    const auto [parsed_end, status] = std::from_chars(text.data() + begin, text.data() + end, id);
    if (status != std::errc() || parsed_end != text.data() + end || begin == end) {
      fail("option --ids: '", text.substr(begin, end - begin),
           "' is not a token id (expected a comma-separated list such as 1,2,3)");
    }
    ids.push_back(id);
    begin = end + 1;
  }
  return ids;
}

}  // namespace

void register_logits(CLI::App& app) {
  struct Options {
    std::string model;
    std::string adapter;
    std::string ids;
    std::string output;
    bool check_tensors = false;
    RunOptions run;
  };
  static Options options;
  auto* command = app.add_subcommand("logits", "Write the logits of a list of token ids");
  command->add_option("MODEL", options.model, "Model directory or .gguf file")->required();
  add_adapter_option(*command, options.adapter);
  command->add_option("--ids", options.ids, "Comma-separated token ids")->required();
  command->add_option("-o,--output", options.output, "Output .safetensors file")->required();
  add_check_tensors_option(*command, options.check_tensors);
  add_run_options(*command, options.run);
  command->callback([] {
    apply_run_options(options.run);
    const auto ids = parse_ids(options.ids);
    check_tensors_if_asked(options.check_tensors, options.model, options.adapter);
    const auto model = load_model_with_adapter(options.model, options.adapter);
    const auto logits = place_model(model, options.run.device).model->forward(ids, LogitsMode::All);
    SafetensorsWriter writer(options.output);
    writer.add("logits", DType::F32,
               {static_cast<std::int64_t>(ids.size()), model->config().vocab_size},
               std::as_bytes(std::span<const float>(logits)));
    writer.commit();
  });
}

}  // namespace uq::cli
