#include "kernels/cuda/cuda_check.hpp"

#include "core/error.hpp"
#include "kernels/cuda/cublas_library.hpp"

namespace uq::cuda {

void check(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  // Reset the runtime's last-error state so a later check does not report this error again.
  cudaGetLastError();
  fail("cuda: ", call, " failed: ", cudaGetErrorString(status), " at ", file, ":", line);
}

void check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  fail("cuda: ", call, " failed: ", cublas_library().get_status_string(status), " at ", file, ":",
       line);
}

}  // namespace uq::cuda
