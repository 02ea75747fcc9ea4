#pragma once
// QLoRA training on one NVIDIA GPU: the decoder's forward over a batch of windows [windows,
// tokens] keeping its activations in device memory, the backward through every op (lm_head,
// final RMSNorm, per layer down, SwiGLU, gate|up, RMSNorm, o, attention, RoPE, q|k|v, RMSNorm)
// and, for the adapters only, gradients, global-norm clipping and AdamW state, all on the
// device. The frozen weights are uploaded once in their own format (device_linear.hpp); each
// product with W or Wᵀ dequantizes a tile of rows at a time into float scratch (through the
// matrix's row gather) and multiplies it with cuBLAS, so another format only needs its gather.
// It computes the CPU TrainableDecoder<float>'s function; dropout masks come from a
// counter-based hash instead of the CPU's generator.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "train/adamw.hpp"
#include "train/lora_adapter.hpp"

namespace uq {
class Model;
}

namespace uq::cuda {

struct CudaTrainingOptions {
  double dropout = 0.0;
  // TF32 tensor cores for the frozen products (about 10 bits of mantissa: faster, less
  // exact); off: every product in full fp32. Attention and adapter products stay fp32.
  bool tf32 = false;
  // Floats of one dequantized tile of a frozen matrix (bounds its scratch).
  std::int64_t tile_floats = std::int64_t{1} << 24;
};

struct NamedDeviceAdapter {
  std::string path;  // "model.layers.0.self_attn.q_proj"
  const LoraAdapter* adapter = nullptr;
};

class CudaTrainableDecoder {
 public:
  // Uploads `model`'s frozen weights (LoraWeight slots contribute their base) and the
  // adapters' initial values; the gradients and optimizer state start at zero. Parameters are
  // laid out as (A, B) per adapter in the given order. Throws uq::Error naming a weight with
  // no CUDA kernel, an unknown path or a misfitting adapter.
  CudaTrainableDecoder(const Model& model, const std::vector<NamedDeviceAdapter>& adapters,
                       const CudaTrainingOptions& options = {});
  ~CudaTrainableDecoder();
  CudaTrainableDecoder(const CudaTrainableDecoder&) = delete;
  CudaTrainableDecoder& operator=(const CudaTrainableDecoder&) = delete;

  // Forward and backward of `windows` windows of `ids.size() / windows` tokens each:
  // loss = weight · Σ NLL, gradients added into the adapters'. Returns the unweighted Σ NLL.
  double accumulate(std::span<const std::int32_t> ids, std::int64_t windows, double weight,
                    std::uint64_t dropout_seed = 0);
  void zero_gradients();
  // Global L2 norm of the gradients; with max_norm > 0 and the norm above it, they are scaled
  // to max_norm (torch's clip_grad_norm_). Then one AdamW step at `lr`. Returns the norm
  // before clipping.
  double clip_and_step(double max_norm, double lr, const AdamWOptions& adamw);
  std::int64_t steps_taken() const;

  std::size_t adapter_count() const;
  // Copies adapter i's A and B (and its gradients) to the host.
  void download_adapter(std::size_t index, LoraAdapter& adapter) const;
  void download_gradient(std::size_t index, std::vector<float>& a, std::vector<float>& b) const;
  // AdamW moments, one vector per parameter (A0, B0, A1, ...), as uq::AdamW keeps them.
  void download_moments(std::vector<std::vector<float>>& m,
                        std::vector<std::vector<float>>& v) const;
  // Replaces the adapters' values (in constructor order), and the optimizer state when m and v
  // are not empty (a resumed checkpoint).
  void upload_state(std::span<const LoraAdapter* const> adapters, std::int64_t steps,
                    const std::vector<std::vector<float>>& m,
                    const std::vector<std::vector<float>>& v);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace uq::cuda
