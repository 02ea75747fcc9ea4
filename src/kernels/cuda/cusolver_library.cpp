#include "kernels/cuda/cusolver_library.hpp"

#include <string>

#include "kernels/cuda/dynamic_library.hpp"

namespace uq::cuda {
namespace {

CusolverLibrary load() {
  const DynamicLibrary library("libcusolver.so." + std::to_string(CUSOLVER_VER_MAJOR),
                               "GPTQ on the GPU");
  CusolverLibrary functions;
  library.bind("cusolverDnCreate", functions.create);
  library.bind("cusolverDnDestroy", functions.destroy);
  library.bind("cusolverDnSetStream", functions.set_stream);
  library.bind("cusolverDnDpotrf_bufferSize", functions.dpotrf_buffer_size);
  library.bind("cusolverDnDpotrf", functions.dpotrf);
  library.bind("cusolverDnDpotri_bufferSize", functions.dpotri_buffer_size);
  library.bind("cusolverDnDpotri", functions.dpotri);
  return functions;
}

}  // namespace

const CusolverLibrary& cusolver_library() {
  static const CusolverLibrary functions = load();
  return functions;
}

}  // namespace uq::cuda
