#pragma once
// The cuBLAS functions the CUDA code uses, loaded on first use (dynamic_library.hpp): call
// cublas_library().sgemm(...) where cublasSgemm(...) would be linked.
#include <cublas_v2.h>

namespace uq::cuda {

// cublas_api.h overloads cublasGemmEx in C++ (computeType as a cudaDataType): the exported one.
using CublasGemmEx = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
                                        int, int, const void*, const void*, cudaDataType, int,
                                        const void*, cudaDataType, int, const void*, void*,
                                        cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);

struct CublasLibrary {
  decltype(&cublasCreate) create = nullptr;
  decltype(&cublasDestroy) destroy = nullptr;
  decltype(&cublasSetStream) set_stream = nullptr;
  decltype(&cublasSetWorkspace) set_workspace = nullptr;
  decltype(&cublasGetStatusString) get_status_string = nullptr;
  decltype(&cublasSgemm) sgemm = nullptr;
  decltype(&cublasSgemmStridedBatched) sgemm_strided_batched = nullptr;
  decltype(&cublasSsyrk) ssyrk = nullptr;
  CublasGemmEx gemm_ex = nullptr;
};

// Loaded once (thread-safe); throws uq::Error when the library or a function is missing.
const CublasLibrary& cublas_library();

}  // namespace uq::cuda
