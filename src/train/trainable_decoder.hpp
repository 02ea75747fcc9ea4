#pragma once
// The decoder run for training: a forward pass that keeps its activations and
// a backward pass through every op down to the embeddings. The base weights
// (and norms, biases) are frozen; only the LoRA adapters get gradients.
// T = float trains (frozen linears multiply through Weight, quantized or not);
// T = double runs on a float64 copy of the weights for gradient checking.
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "train/lora_adapter.hpp"

namespace uq {

class Model;

template <typename T>
struct LoraGradient {
  std::vector<T> a;  // ∂loss/∂A, [rank, in]
  std::vector<T> b;  // ∂loss/∂B, [out, rank]
};

template <typename T>
class TrainableDecoder {
 public:
  // `adapters` maps decoder projection paths ("model.layers.0.self_attn.q_proj")
  // to the adapters to train; they are shared, updates are seen by the caller.
  // `model` must outlive the decoder. Throws uq::Error for an unknown path or a
  // misfitting adapter.
  TrainableDecoder(const Model& model,
                   std::map<std::string, std::shared_ptr<BasicLoraAdapter<T>>> adapters,
                   double dropout = 0.0);
  ~TrainableDecoder();
  TrainableDecoder(const TrainableDecoder&) = delete;
  TrainableDecoder& operator=(const TrainableDecoder&) = delete;

  // Forward and backward of one sequence: loss = weight · Σ NLL of ids[1..n-1]
  // given the prefixes. Adds ∂loss/∂(A, B) into the gradients and returns the
  // unweighted Σ NLL. `dropout_seed` picks the dropout masks (ignored without
  // dropout). Starts from `input_embeddings` ([n, hidden]) instead of the
  // embedding rows of `ids` when given; writes ∂loss/∂(those inputs) into
  // `grad_input` when given.
  double accumulate(std::span<const std::int32_t> ids, double weight,
                    std::uint64_t dropout_seed = 0, const T* input_embeddings = nullptr,
                    T* grad_input = nullptr);
  // Σ NLL only (no backward); same inputs as accumulate.
  double loss(std::span<const std::int32_t> ids, std::uint64_t dropout_seed = 0,
              const T* input_embeddings = nullptr);
  // The embedding rows of ids ([n, hidden]).
  std::vector<T> embed(std::span<const std::int32_t> ids) const;

  void zero_gradients();
  // Paths in model order, with their adapters and gradients.
  const std::vector<std::string>& paths() const { return paths_; }
  BasicLoraAdapter<T>& adapter(std::size_t index);
  LoraGradient<T>& gradient(std::size_t index);

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::vector<std::string> paths_;
};

}  // namespace uq
