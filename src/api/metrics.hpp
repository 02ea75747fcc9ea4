#pragma once
// Agreement between two models' outputs: the numbers `uq eval --reference`
// and compare_backends report.
#include <cstdint>
#include <span>

namespace uq {

// Cosine similarity of two equally long vectors (accumulated in double).
// Throws uq::Error when the lengths differ; 1 when both are zero.
float cosine_similarity(std::span<const float> a, std::span<const float> b);

// Mean over rows of KL(P || Q) where P = softmax(reference row) and
// Q = softmax(candidate row); both are [rows, vocab] logits, row-major.
double mean_kl_divergence(std::span<const float> reference_logits,
                          std::span<const float> candidate_logits, std::int64_t vocab);

}  // namespace uq
