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
  // Where the rows run: "cpu"; "cuda" (a backend whose weights have no CUDA kernel is skipped,
  // with the reason); "auto" (each row on the GPU when this build has CUDA, a GPU is present and
  // every weight has a CUDA kernel, else on the CPU: place_model's rule); "all" (one row per
  // backend on every usable device: the CPU, then the GPU when there is one).
  std::string device = "cpu";
  int group_size = 64;
  // Validation text for perplexity, cosine similarity and KL divergence.
  // Empty: windows sampled from the float model itself (see BackendComparison::data).
  std::filesystem::path data;
  std::int64_t ctx = 256;           // perplexity window (DESIGN.md §4.2)
  std::int64_t eval_windows = 4;    // windows evaluated at most (0: the whole text)
  std::int64_t decode_tokens = 32;  // tokens timed one by one through the KV cache
};

// One measured row: one model on one device. Sizes in MiB, speeds in tokens per second, every
// time host-side after the device finished (each call returns its logits or token to the host).
struct ComparisonRow {
  std::string backend;            // "float" for the original model
  std::string device;             // where it ran: "cpu" or "cuda"
  std::string scheme;             // e.g. "bf16" or "affine b4 g64"
  double quantize_seconds = 0.0;  // on the CPU; 0 for float: nothing to quantize
  double disk_mib = 0.0;          // safetensors files written by the backend (float: as loaded)
  double bits_per_weight = 0.0;   // storage bits per element over all weight matrices
  double weights_mib = 0.0;       // in-memory size of the weight matrices
  // Memory to run the model on its device. cpu: its weights plus the peak rise of the process's
  // resident set (VmHWM, reset before) while running it: activations, KV cache, logits; buffers
  // that malloc reuses from earlier rows do not rise. cuda: the rise of the GPU memory in use as
  // the driver reports it (cudaMemGetInfo), from before the upload to the largest reading taken
  // after the upload, after the prompts and the decode (their KV cache still held) and after
  // each perplexity window: weights, workspace, KV cache, the cuBLAS workspace.
  double peak_memory_mib = 0.0;
  double process_peak_mib = 0.0;          // the process's peak resident set (VmHWM) over the row
  double prompt_tokens_per_second = 0.0;  // batched forward at input_shape (after a warm-up)
  double decode_tokens_per_second = 0.0;  // greedy, one token at a time with a KV cache
  double perplexity = 0.0;
  // Logits vs the original float model's, computed once on the CPU: a GPU float row measures
  // the device's own deviation.
  double cosine_similarity = 0.0;  // mean over windows
  double kl_divergence = 0.0;      // mean KL(float || this) over predicted positions
};

// A backend that has no row on a device, and why (e.g. it cannot write the bits, or its format
// has no CUDA kernel). device is the device asked for ("cpu", "cuda" or "auto").
struct SkippedBackend {
  std::string backend;
  std::string device;
  std::string reason;
};

struct BackendComparison {
  std::int64_t batch = 0, sequence = 0;  // input_shape
  int bits = 0;
  std::string data;  // the validation text's path, or how it was sampled
  std::int64_t ctx = 0, eval_windows = 0, eval_tokens = 0;
  std::vector<std::string> devices;  // as comparison_devices(CompareOptions::device) gives them
  // Float first, then the backends in registry order; each model's rows in `devices` order.
  std::vector<ComparisonRow> rows;
  std::vector<SkippedBackend> skipped;
};

// The devices a comparison runs each model on: {"cpu"}, {"cuda"}, {"auto"} or, for "all", the
// CPU then the GPU when cuda_available(). Throws uq::Error naming --device for an unknown name,
// or "cuda" where this build has no CUDA or no GPU is present.
std::vector<std::string> comparison_devices(const std::string& device);

// input_shape is {batch, sequence}. Throws uq::Error naming the option at
// fault (input_shape, bits, backends, device, data, ctx).
BackendComparison compare_backends(const std::shared_ptr<const Model>& model,
                                   const std::vector<std::int64_t>& input_shape, int bits,
                                   const CompareOptions& options);

}  // namespace uq
