#include "kernels/cuda/cublas_library.hpp"

#include <string>

#include "kernels/cuda/dynamic_library.hpp"

// The exported name behind cublas_v2.h's macros (cublasSgemm is cublasSgemm_v2).
#define UQ_SYMBOL_NAME(name) UQ_SYMBOL_NAME_EXPANDED(name)
#define UQ_SYMBOL_NAME_EXPANDED(name) #name

namespace uq::cuda {
namespace {

CublasLibrary load() {
  const DynamicLibrary library("libcublas.so." + std::to_string(CUBLAS_VER_MAJOR),
                               "matrix products on the GPU");
  CublasLibrary functions;
  library.bind(UQ_SYMBOL_NAME(cublasCreate), functions.create);
  library.bind(UQ_SYMBOL_NAME(cublasDestroy), functions.destroy);
  library.bind(UQ_SYMBOL_NAME(cublasSetStream), functions.set_stream);
  library.bind(UQ_SYMBOL_NAME(cublasSetWorkspace), functions.set_workspace);
  library.bind(UQ_SYMBOL_NAME(cublasGetStatusString), functions.get_status_string);
  library.bind(UQ_SYMBOL_NAME(cublasSgemm), functions.sgemm);
  library.bind(UQ_SYMBOL_NAME(cublasSgemmStridedBatched), functions.sgemm_strided_batched);
  library.bind(UQ_SYMBOL_NAME(cublasSsyrk), functions.ssyrk);
  library.bind(UQ_SYMBOL_NAME(cublasGemmEx), functions.gemm_ex);
  return functions;
}

}  // namespace

const CublasLibrary& cublas_library() {
  static const CublasLibrary functions = load();
  return functions;
}

}  // namespace uq::cuda
