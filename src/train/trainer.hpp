#pragma once
// The fine-tuning loop: batches of ctx-token windows of the training ids,
// gradient accumulation, clipping, AdamW under a warm-up + cosine schedule,
// validation perplexity, and checkpoints that a later run resumes from exactly.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "train/adamw.hpp"
#include "train/adapter_io.hpp"
#include "train/lora_adapter.hpp"
#include "train/lr_schedule.hpp"

namespace uq {

class Model;
template <typename T>
class TrainableDecoder;
namespace cuda {
class CudaTrainableDecoder;
}

struct FinetuneOptions {
  LoraConfig lora;
  std::int64_t steps = 300;                // optimizer steps
  std::int64_t batch = 16;                 // windows per batch
  std::int64_t ctx = 256;                  // tokens per window
  std::int64_t gradient_accumulation = 1;  // batches summed per optimizer step
  double lr = 1e-3;
  // Constant by default: on the recipe peft itself reaches 27.5 with a
  // constant rate and 30.6 with warm-up + cosine (docs/PERFORMANCE.md).
  LrDecay lr_schedule = LrDecay::constant;
  std::int64_t warmup_steps = -1;  // -1: none for constant, 5% of steps otherwise
  double max_grad_norm = 1.0;      // 0: no clipping
  AdamWOptions adamw;
  std::uint64_t seed = 0;  // adapter init, window order, dropout masks
  // "cpu", "cuda" or "auto" (the GPU when this build has CUDA, a GPU is present and every
  // frozen weight has a CUDA kernel; else the CPU).
  std::string device = "cpu";
  bool tf32 = false;  // CUDA: TF32 tensor cores for the frozen products
};

struct StepReport {
  std::int64_t step = 0;    // optimizer steps done, this one included
  double loss = 0.0;        // mean next-token NLL over the step's windows
  double lr = 0.0;          // the rate this step used
  double grad_norm = 0.0;   // before clipping
  std::int64_t tokens = 0;  // tokens run through the model in this step
  double seconds = 0.0;
};

class Trainer {
 public:
  // Attaches fresh adapters to `model` (it must have none) and prepares to
  // train on `train_ids` on options.device. Throws uq::Error for invalid options,
  // too little data, or --device cuda where the GPU or a weight's kernel is missing.
  Trainer(std::shared_ptr<Model> model, std::vector<std::int32_t> train_ids,
          FinetuneOptions options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  const FinetuneOptions& options() const { return options_; }
  // "cpu" or "cuda": where the steps run (options.device resolved).
  const std::string& device() const { return device_; }
  std::int64_t steps_done() const;
  bool finished() const { return steps_done() >= options_.steps; }

  // One optimizer step (gradient_accumulation batches).
  StepReport step();
  // Perplexity of `ids` (DESIGN.md §4.2 windows of ctx) under the adapted model.
  double perplexity(std::span<const std::int32_t> ids) const;

  // Adapters (PEFT layout), optimizer moments and progress, written atomically
  // as the directory `dir`.
  void save_checkpoint(const std::filesystem::path& dir) const;
  // Restores a checkpoint written with the same options and data; throws
  // uq::Error naming the file or the option that differs.
  void resume(const std::filesystem::path& dir);

  // The current adapters with their LoRA config, ready for save_adapters.
  AdapterSet adapters(AdapterFormat format) const;

 private:
  std::vector<std::int32_t> window_ids(std::int64_t sequence) const;

  std::shared_ptr<Model> model_;
  std::vector<std::int32_t> train_ids_;
  FinetuneOptions options_;
  LrSchedule schedule_;
  std::vector<std::string> paths_;
  std::vector<std::shared_ptr<LoraAdapter>> adapters_;
  std::string device_;
  std::unique_ptr<TrainableDecoder<float>> decoder_;  // on the CPU
  // Or on the GPU (shared_ptr: its deleter is bound where the type is complete, so builds
  // without CUDA never need it).
  std::shared_ptr<cuda::CudaTrainableDecoder> cuda_decoder_;
  AdamW optimizer_;
};

}  // namespace uq
