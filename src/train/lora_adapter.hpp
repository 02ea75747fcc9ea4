#pragma once
// One LoRA adapter on a frozen linear W [out, in]: y = W·x + scale·B(A·x) with
// A [rank, in], B [out, rank] and scale = alpha / rank (PEFT's convention).
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace uq {

// Which linears get adapters and how big they are.
struct LoraConfig {
  int rank = 16;
  double alpha = 32.0;
  double dropout = 0.0;  // on the adapter's input, training only
  // DESIGN.md §4.3 patterns over module paths; the default is all seven projections.
  std::vector<std::string> target_modules = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                             "gate_proj", "up_proj", "down_proj"};

  double scale() const { return alpha / rank; }
};

// Throws uq::Error naming the option (rank, alpha, dropout, target_modules) at fault.
void validate(const LoraConfig& config);

template <typename T>
struct BasicLoraAdapter {
  std::int64_t rank = 0;
  std::int64_t in_features = 0;
  std::int64_t out_features = 0;
  T scale = 0;
  std::vector<T> a;  // [rank, in], row-major
  std::vector<T> b;  // [out, rank], row-major

  BasicLoraAdapter() = default;
  // A zero adapter (A and B all zero) of the given shape.
  BasicLoraAdapter(std::int64_t rank_, std::int64_t in, std::int64_t out, T scale_)
      : rank(rank_),
        in_features(in),
        out_features(out),
        scale(scale_),
        a(static_cast<std::size_t>(rank_ * in)),
        b(static_cast<std::size_t>(out * rank_)) {}
};

using LoraAdapter = BasicLoraAdapter<float>;

// PEFT's initialisation: A ~ kaiming_uniform(a = sqrt(5)), i.e. uniform in
// ±1/sqrt(in_features); B = 0, so a fresh adapter leaves the model unchanged.
LoraAdapter make_lora_adapter(std::int64_t in_features, std::int64_t out_features,
                              const LoraConfig& config, std::mt19937_64& rng);

}  // namespace uq
