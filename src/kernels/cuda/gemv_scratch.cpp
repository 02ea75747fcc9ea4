#include "kernels/cuda/gemv_scratch.hpp"

#include <algorithm>

#include "kernels/cuda/cuda_check.hpp"

namespace uq::cuda {

void* GemvScratch::acquire(std::size_t bytes, cudaStream_t stream) {
  if (capacity() >= bytes) return buffers_.back().data();
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  UQ_CUDA_CHECK(cudaStreamIsCapturing(stream, &capturing));
  if (capturing != cudaStreamCaptureStatusNone) return nullptr;
  // Doubling bounds the buffers kept alive to twice the largest request.
  buffers_.emplace_back(std::max(bytes, 2 * capacity()));
  return buffers_.back().data();
}

}  // namespace uq::cuda
