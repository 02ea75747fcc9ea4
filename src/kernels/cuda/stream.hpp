#pragma once
// RAII owners of a CUDA stream, a CUDA event and a cuBLAS handle.
#include <utility>

#include "kernels/cuda/cublas_library.hpp"
#include "kernels/cuda/cuda_check.hpp"

namespace uq::cuda {

class Stream {
 public:
  Stream() { UQ_CUDA_CHECK(cudaStreamCreateWithFlags(&handle_, cudaStreamNonBlocking)); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() { cudaStreamDestroy(handle_); }
  cudaStream_t get() const { return handle_; }
  void synchronize() const { UQ_CUDA_CHECK(cudaStreamSynchronize(handle_)); }

 private:
  cudaStream_t handle_ = nullptr;
};

class Event {
 public:
  Event() { UQ_CUDA_CHECK(cudaEventCreate(&handle_)); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() { cudaEventDestroy(handle_); }
  cudaEvent_t get() const { return handle_; }
  void record(cudaStream_t stream) { UQ_CUDA_CHECK(cudaEventRecord(handle_, stream)); }
  // Milliseconds from `start` to this event; both must have completed.
  float elapsed_ms_since(const Event& start) const {
    UQ_CUDA_CHECK(cudaEventSynchronize(handle_));
    float ms = 0.0f;
    UQ_CUDA_CHECK(cudaEventElapsedTime(&ms, start.handle_, handle_));
    return ms;
  }

 private:
  cudaEvent_t handle_ = nullptr;
};

class CublasHandle {
 public:
  CublasHandle() { UQ_CUDA_CHECK(cublas_library().create(&handle_)); }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  ~CublasHandle() { cublas_library().destroy(handle_); }
  cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

}  // namespace uq::cuda
