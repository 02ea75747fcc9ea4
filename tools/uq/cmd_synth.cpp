// `uq synth --preset llama3-8b|llama2-7b|tiny -o DIR`: write a Hugging Face
// checkpoint of a known model's shape with random weights (for tests and
// benchmarks of big models without downloads).
#include <chrono>
#include <cstdio>

#include "commands.hpp"
#include "core/error.hpp"
#include "io/byte_size.hpp"
#include "model/synthetic_checkpoint.hpp"
#include "run_options.hpp"

namespace uq::cli {

void register_synth(CLI::App& app) {
  struct Options {
    SyntheticCheckpointOptions synth;
    std::string out;
    std::string dtype = "bf16";
    std::string shard_size = "5GB";
    RunOptions run;
  };
  static Options options;
  options.synth.tokenizer_dir = UQ_BUNDLED_MODEL_DIR;
  auto* command = app.add_subcommand("synth",
                                     "Write a Hugging Face checkpoint of a preset's shape with "
                                     "random weights");
  command->add_option("--preset", options.synth.preset, "llama3-8b, llama2-7b or tiny")
      ->capture_default_str();
  command->add_option("--layers", options.synth.layers, "Decoder layers (default: the preset's)")
      ->check(CLI::PositiveNumber);
  command->add_option("-o,--output", options.out, "Output directory")->required();
  command->add_option("--dtype", options.dtype, "bf16, f16 or f32")->capture_default_str();
  command->add_option("--shard-size", options.shard_size, "Largest shard, e.g. 5GB or 500MB")
      ->capture_default_str();
  command->add_option("--seed", options.synth.seed, "Random seed")->capture_default_str();
  command
      ->add_option("--tokenizer-from", options.synth.tokenizer_dir,
                   "Model directory whose tokenizer files are copied")
      ->capture_default_str();
  add_run_options(*command, options.run);
  command->callback([] {
    apply_run_options(options.run);
    auto& synth = options.synth;
    if (options.dtype == "bf16") {
      synth.dtype = DType::BF16;
    } else if (options.dtype == "f16") {
      synth.dtype = DType::F16;
    } else if (options.dtype == "f32") {
      synth.dtype = DType::F32;
    } else {
      fail("option --dtype '", options.dtype, "' is unknown (known: bf16, f16, f32)");
    }
    synth.max_shard_bytes = parse_byte_size(options.shard_size, "option --shard-size");
    const auto start = std::chrono::steady_clock::now();
    const auto bytes = write_synthetic_checkpoint(synth, options.out);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("wrote %s: preset %s, %.3f GB of %s weights in %.2f s (%.2f GB/s)\n",
                options.out.c_str(), synth.preset.c_str(), static_cast<double>(bytes) / 1e9,
                options.dtype.c_str(), seconds, static_cast<double>(bytes) / 1e9 / seconds);
  });
}

}  // namespace uq::cli
