#pragma once
// The x prologue of the persistent affine GEMV: x [rows <= 16, in] (optionally computed on the
// fly from its input: RMSNorm or SwiGLU) becomes the B fragments of mma.sync m16n8k16 plus the
// per-group sums of x, in stream-ordered scratch that the main kernel reads.
//
// Columns: B column c = 8 * tile + g holds part (c % parts) of activation row (c / parts), the
// parts being the bf16 split of the f32 value: hi = bf16(x), mid = bf16(x - hi),
// lo = bf16(x - hi - mid). Three parts are exact to fp32 (products of exact bf16 codes summed in
// fp32 like a SIMT kernel), two keep 16 significant bits, one is bf16 x (exact for bf16 input).
//
// K order: in each group, lane t of a warp owns the group_size / 4 consecutive elements
// [t * group / 4, (t + 1) * group / 4) of every weight row it multiplies (contiguous code words,
// one vector load). Each k step of 16 takes 4 of them per lane; which 4, and in which A/B
// fragment slot, follows the cheapest code extraction of the width (`code_run`):
// - code_run 8 (2- and 4-bit codes: 8 codes per 32-bit unit, one mask yields codes s and s + 4):
//   step 2v + h of unit v uses slots {8v + 2h, 8v + 2h + 4, 8v + 2h + 1, 8v + 2h + 5};
// - code_run 4 (8-bit: 4 codes per word, codes s and s + 2 per mask):
//   step v uses {4v, 4v + 2, 4v + 1, 4v + 3};
// - code_run 0 (3, 5, 6 bits): step s uses {4s, 4s + 1, 4s + 2, 4s + 3}.
// Slot order: (k = 2t, 2t + 1) is the fragment's first register, (2t + 8, 2t + 9) the second.
//
// Layout: fragments[((kpair * tiles + tile) * 32 + lane)] = uint4 {b0, b1 of step 2 kpair,
// b0, b1 of step 2 kpair + 1} (one 16-byte load per lane for two k steps), kpair over `in / 32`;
// sums[group * 8 * tiles + c] = sum over the group of the bf16 values of column c (its part of
// x; 0 for columns past the rows). The main kernel adds (bias - F scale) * sums to every column:
// with the sum of exactly what the mma multiplied, F * scale * sum cancels the code bias F of
// C' (affine_gemv_persistent.cuh) to fp32 rounding, and the parts add up to bias * sum(x).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace uq::cuda::detail {

// How x is obtained from the kernel's input (see affine_gemv.hpp: GemvInput).
enum class FragmentMode : int { plain = 0, rmsnorm = 1, swiglu = 2 };

template <class XT>
struct FragmentArgs {
  const XT* input;               // plain / rmsnorm: [rows, in]; swiglu: [rows, 2 * in] (gate | up)
  const float* gamma = nullptr;  // rmsnorm weight [in]
  float eps = 0.0f;
  FragmentMode mode = FragmentMode::plain;
  int rows = 0, in = 0, group = 0, parts = 0, tiles = 0, code_run = 0;
  uint4* fragments = nullptr;  // in * tiles * 16 bytes
  float* sums = nullptr;       // in / group * 8 * tiles floats
  cudaStream_t stream = nullptr;
};

__host__ __device__ constexpr std::size_t fragment_bytes(int in, int tiles) {
  return static_cast<std::size_t>(in) * static_cast<std::size_t>(tiles) * 16u;
}
__host__ __device__ constexpr std::size_t sum_count(int in, int group, int tiles) {
  return static_cast<std::size_t>(in / group) * 8u * static_cast<std::size_t>(tiles);
}

// Slot `slot` (0..3) of k step `step` inside one lane's group slice.
__host__ __device__ constexpr int fragment_element(int code_run, int step, int slot) {
  if (code_run == 0) return 4 * step + slot;
  const int steps_per_run = code_run / 4;
  const int base = (step / steps_per_run) * code_run + 2 * (step % steps_per_run);
  return base + (slot & 1) * (code_run / 2) + (slot >> 1);
}

// Launched normally; calls griddepcontrol.launch_dependents so the main kernel, launched with
// programmatic stream serialization, starts fetching weights while this runs.
template <class XT>
void launch_affine_gemv_fragments(const FragmentArgs<XT>& args);

}  // namespace uq::cuda::detail
