#pragma once
// `uq bench --synthetic PRESET`: prompt and decode speed of a random-weight model of a preset's
// shape, generated in memory, at several formats (bf16, 8-, 4-, 3-bit affine), on the chosen
// device, with the memory-bandwidth ceiling of decode where the device is a GPU; or, with
// --profile-decode, where the GPU's time of one decode step goes, stage by stage.
#include <cstdint>
#include <string>
#include <vector>

namespace uq::cli {

struct SyntheticBenchOptions {
  std::string preset;
  std::int64_t layers = 0;
  std::vector<std::string> formats;  // "bf16" or a bit width ("8", "4", "3")
  int group_size = 64;
  std::int64_t prompt_tokens = 512;
  std::int64_t decode_tokens = 32;
  std::string device = "auto";
  bool json = false;
  // CUDA only: instead of prompt/decode speed, the device time per stage of one decode step
  // after each of these context lengths.
  std::vector<int> profile_contexts;
};

// A --profile-decode context length (a positive integer); throws uq::Error naming the option.
int parse_profile_context(const std::string& text);

void run_synthetic_bench(const SyntheticBenchOptions& options);

}  // namespace uq::cli
