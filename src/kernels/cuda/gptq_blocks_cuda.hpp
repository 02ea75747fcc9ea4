#pragma once
// GPTQ over the decoder blocks on the GPU: calibrate_blocks' GPTQ walk (calibration/
// calibrate_model.hpp) with the activations, Hessians and GPTQ itself in device memory.
// Every calibration window's hidden states live on the GPU; per block the seven float
// matrices are uploaded, and in model order:
//   H(q|k|v) from RMSNorm(x); GPTQ q, k, v;
//   attention with the quantized q, k, v -> H(o); GPTQ o;  x += attended·Ŵoᵀ
//   H(gate|up) from RMSNorm(x); GPTQ gate, up;  SwiGLU with them -> H(down); GPTQ down;
//   x += act·Ŵdownᵀ: the next block's inputs,
// the same inputs the CPU's repeated block runs record. H = 2/N XᵀX from cuBLAS ssyrks of
// 8192 rows (fp32) summed in float64; products are cuBLAS sgemm (fp32, no TF32). Held on the
// GPU: one block of activations for all windows (x, RMSNorm(x), the attention outputs and
// the SwiGLU outputs), one block's matrices and the largest Hessian.
#include <cstdint>
#include <vector>

#include "calibration/calibrate_model.hpp"
#include "calibration/gptq.hpp"

namespace uq::cuda {

struct GptqBlocksRun {
  std::vector<double> block_seconds;  // wall time of each block, upload to results
  std::size_t peak_device_bytes = 0;  // device memory in use at the fullest point (all users)
  // Summed over the blocks (the rest of a block is the forward: products, attention):
  double upload_seconds = 0.0;   // float matrices to f32 on the host, and to the device
  double hessian_seconds = 0.0;  // H = 2/N XᵀX of the four shared inputs
  double gptq_seconds = 0.0;     // Cholesky, column loops, refits, error measure
  double build_seconds = 0.0;    // the format's Weight from the codes (host)
};

// Quantizes the decoder linears of `model` in place on the current GPU, block by block,
// handing each block to `done` (as calibrate_blocks). Throws uq::Error naming the layer whose
// grid the GPU cannot run (gptq_cuda_unsupported_reason), or a failed CUDA call.
GptqBlocksRun gptq_calibrate_blocks(Model& model,
                                    const std::vector<std::vector<std::int32_t>>& windows,
                                    const GridFor& grid_for, const GptqOptions& options,
                                    const BlockCalibrated& done);

}  // namespace uq::cuda
