#pragma once
// The cuSOLVER functions GPTQ on the GPU uses, loaded on first use (dynamic_library.hpp).
#include <cusolverDn.h>

namespace uq::cuda {

struct CusolverLibrary {
  decltype(&cusolverDnCreate) create = nullptr;
  decltype(&cusolverDnDestroy) destroy = nullptr;
  decltype(&cusolverDnSetStream) set_stream = nullptr;
  decltype(&cusolverDnDpotrf_bufferSize) dpotrf_buffer_size = nullptr;
  decltype(&cusolverDnDpotrf) dpotrf = nullptr;
  decltype(&cusolverDnDpotri_bufferSize) dpotri_buffer_size = nullptr;
  decltype(&cusolverDnDpotri) dpotri = nullptr;
};

// Loaded once (thread-safe); throws uq::Error when the library or a function is missing.
const CusolverLibrary& cusolver_library();

}  // namespace uq::cuda
