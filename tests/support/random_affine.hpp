#pragma once
// Random inputs for the affine kernel tests: a weight with uniformly random
// codes and random scales/biases of `dtype`, and normal activations.
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "core/dtype.hpp"
#include "quant/affine_weight.hpp"

namespace uq::test {

std::unique_ptr<AffineWeight> random_affine_weight(std::int64_t out, std::int64_t in, int bits,
                                                   int group, DType dtype, std::mt19937& rng);

std::vector<float> random_activations(std::int64_t rows, std::int64_t in, std::mt19937& rng);

}  // namespace uq::test
