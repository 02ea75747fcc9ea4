#pragma once
// LLM.int8 (bitsandbytes Linear8bitLt) products on the device with the CPU's numerics
// (src/quant/int8_rowwise_weight.cpp): outlier columns are those with any |x| >= threshold in
// the batch; every input row is quantized to int8 with its absmax over the other columns; the
// int32 products are scaled by row absmax * SCB / 127^2 and the outlier columns are added in
// float against the dequantized weight, in column order.
#include <cuda_runtime.h>

#include <cstdint>

namespace uq::cuda {

struct Int8RowwiseWorkspace {
  std::int8_t* quantized_x = nullptr;  // [rows, in]
  float* row_absmax = nullptr;         // [rows]
  std::int32_t* outliers = nullptr;    // [2 * in + 1]: count, column list, flags
};

void int8_rowwise_matmul(const std::int8_t* codes, const float* scb, int out, int in,
                         float threshold, const float* x, int rows, float* y,
                         const Int8RowwiseWorkspace& workspace, cudaStream_t stream);

}  // namespace uq::cuda
