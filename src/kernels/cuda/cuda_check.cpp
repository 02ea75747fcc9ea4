#include "kernels/cuda/cuda_check.hpp"

#include "core/error.hpp"

namespace uq::cuda {

void check(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  // Clear a sticky-free error so the next check does not report it again.
  cudaGetLastError();
  fail("cuda: ", call, " failed: ", cudaGetErrorString(status), " at ", file, ":", line);
}

void check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  fail("cuda: ", call, " failed: ", cublasGetStatusString(status), " at ", file, ":", line);
}

}  // namespace uq::cuda
