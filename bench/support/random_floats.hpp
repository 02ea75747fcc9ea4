#pragma once
// Benchmark inputs: normally distributed floats from a fixed seed, so that no
// kernel is ever timed on zeros and every run times the same values.
#include <cstddef>
#include <random>
#include <vector>

namespace uq::bench {

inline std::vector<float> random_floats(std::size_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(count);
  for (auto& v : values) v = normal(rng);
  return values;
}

}  // namespace uq::bench
