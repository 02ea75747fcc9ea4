#pragma once
// compare_backends: the float model and every backend side by side, each
// measured on this machine: what a user reads to choose a backend.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace uq {

class Model;

struct CompareOptions {
  std::vector<std::string> backends;  // empty: every backend built in
  std::string device = "cpu";
  int group_size = 64;
  // Validation text for perplexity, cosine similarity and KL divergence.
  // Empty: windows sampled from the float model itself (see BackendComparison::data).
  std::filesystem::path data;
  std::int64_t ctx = 256;           // perplexity window (DESIGN.md §4.2)
  std::int64_t eval_windows = 4;    // windows evaluated at most (0: the whole text)
  std::int64_t decode_tokens = 32;  // tokens timed one by one through the KV cache
};

// One measured row. Sizes in MiB, speeds in tokens per second.
struct ComparisonRow {
  std::string backend;  // "float" for the original model
  std::string device;
  std::string scheme;             // e.g. "bf16" or "affine b4 g64"
  double quantize_seconds = 0.0;  // 0 for float: nothing to quantize
  double disk_mib = 0.0;          // safetensors files written by the backend (float: as loaded)
  double bits_per_weight = 0.0;   // storage bits per element over all weight matrices
  double weights_mib = 0.0;       // in-memory size of the weight matrices
  // Memory to run the model: its weights plus the peak rise of the process's
  // resident set (VmHWM, reset before) while running it: activations, KV
  // cache, logits. Buffers that malloc reuses from earlier rows do not rise.
  double peak_memory_mib = 0.0;
  double prompt_tokens_per_second = 0.0;  // batched forward at input_shape
  double decode_tokens_per_second = 0.0;  // one token at a time with a KV cache
  double perplexity = 0.0;
  double cosine_similarity = 0.0;  // logits vs the float model (mean over windows)
  double kl_divergence = 0.0;      // mean KL(float || this) over predicted positions
};

struct SkippedBackend {
  std::string backend;
  std::string reason;
};

struct BackendComparison {
  std::int64_t batch = 0, sequence = 0;  // input_shape
  int bits = 0;
  std::string data;  // the validation text's path, or how it was sampled
  std::int64_t ctx = 0, eval_windows = 0, eval_tokens = 0;
  std::vector<ComparisonRow> rows;  // float first, then the backends in registry order
  std::vector<SkippedBackend> skipped;
};

// input_shape is {batch, sequence}. Throws uq::Error naming the option at
// fault (input_shape, bits, backends, device, data, ctx).
BackendComparison compare_backends(const std::shared_ptr<const Model>& model,
                                   const std::vector<std::int64_t>& input_shape, int bits,
                                   const CompareOptions& options);

}  // namespace uq
