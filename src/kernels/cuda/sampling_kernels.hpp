#pragma once
// Picking the next token on the device from a float32 logits row (vocab up to 2^31), with
// src/model/sampling's semantics: greedy at temperature 0, else softmax(logits / temperature)
// restricted by top-k then top-p, and the token where the running probability (most likely
// first, equal values in index order) first exceeds a uniform number the host draws from the
// Sampler's stream. Only the id is written; the parameters are read from device memory, so a
// captured CUDA graph replays with new ones (the decode graph of CudaModel).
//
// Work per token: a max reduction and a scaling pass over the row (multi-block), a stable
// 4-pass radix sort of the vocab (value, index) pairs (CUB onesweep, multi-block), then one
// block scans the sorted probabilities only as far as the top-k / top-p cut and the draw reach
// (1 chunk of 4096 for peaked rows, the whole row for flat ones). No candidate cap: every
// top-k and top-p is exact.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace uq::cuda {

// Lives in device memory; written before each launch or graph replay.
struct SamplingParameters {
  double draw = 0.0;         // uniform in [0, 1): Sampler::next_draw()
  float temperature = 0.0f;  // 0: greedy (the first largest logit)
  std::int32_t top_k = 0;    // 0: no limit
  float top_p = 1.0f;        // in (0, 1]
};

// Bytes of device workspace sample_token needs for `vocab` logits (needs a CUDA device).
std::size_t sampling_workspace_bytes(int vocab);

// *result = the token Sampler picks from logits[0..vocab) with *parameters (the same draw
// gives the same token; the float sums differ from the CPU's only in summation order, ~1e-16).
void sample_token(const float* logits, int vocab, const SamplingParameters* parameters,
                  void* workspace, std::size_t workspace_bytes, std::int32_t* result,
                  cudaStream_t stream);

}  // namespace uq::cuda
