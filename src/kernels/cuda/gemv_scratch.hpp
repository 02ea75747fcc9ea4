#pragma once
// Device scratch of the persistent affine GEMV (its x fragments and group sums), owned by the
// caller and reused by every product it enqueues, instead of a cudaMallocAsync / cudaFreeAsync
// pair per product (alloc and free nodes per product in a captured graph).
//
// Reuse on one stream is safe: a product's prologue writes the scratch with a plain launch, so it
// starts only after the previous product's main kernel has finished reading it (only the main
// kernel is launched programmatically, and it waits for its prologue before reading). Products
// on two streams at once need two owners.
// Growing never frees a buffer while the owner lives: a graph captured earlier may still point at
// it. While `stream` is being captured the scratch does not grow (allocating is not a stream
// operation); acquire then returns nullptr and the caller falls back to stream-ordered memory.
#include <cuda_runtime.h>

#include <cstddef>
#include <vector>

#include "kernels/cuda/device_buffer.hpp"

namespace uq::cuda {

class GemvScratch {
 public:
  // At least `bytes` (16-byte aligned) for a product enqueued on `stream`, or nullptr (see above).
  void* acquire(std::size_t bytes, cudaStream_t stream);
  // Bytes of the current buffer (0 before the first product).
  std::size_t capacity() const { return buffers_.empty() ? 0 : buffers_.back().size(); }

 private:
  std::vector<DeviceBuffer<unsigned char>> buffers_;  // the last one is current
};

}  // namespace uq::cuda
