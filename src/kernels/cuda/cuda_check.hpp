#pragma once
// Every CUDA runtime and cuBLAS call goes through UQ_CUDA_CHECK: a failure becomes
// uq::Error("cuda: <call> failed: <error string> at file:line").
#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace uq::cuda {

void check(cudaError_t status, const char* call, const char* file, int line);
void check(cublasStatus_t status, const char* call, const char* file, int line);

}  // namespace uq::cuda

#define UQ_CUDA_CHECK(call) ::uq::cuda::check((call), #call, __FILE__, __LINE__)
// After a kernel launch: catches bad launch configurations (the launch itself returns nothing).
#define UQ_CUDA_CHECK_LAUNCH(kernel_name) \
  ::uq::cuda::check(cudaGetLastError(), kernel_name, __FILE__, __LINE__)
