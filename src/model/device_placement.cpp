#include "model/device_placement.hpp"

#include "core/error.hpp"
#include "model/decoder.hpp"

#if defined(UQ_HAVE_CUDA)
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_model.hpp"
#include "kernels/cuda/device.hpp"
#endif

namespace uq {

bool cuda_available() {
#if defined(UQ_HAVE_CUDA)
  return cuda::cuda_device_count() > 0;
#else
  return false;
#endif
}

void check_device_option(const std::string& device) {
  if (device == "cuda") {
#if defined(UQ_HAVE_CUDA)
    if (!cuda_available()) fail("option --device cuda: no CUDA GPU found (use cpu or auto)");
#else
    fail("option --device cuda: this build has no CUDA support (use cpu or auto)");
#endif
  } else if (device != "cpu" && device != "auto") {
    fail("option --device: unknown device '", device, "' (expected cpu, cuda or auto)");
  }
}

PlacedModel place_model(std::shared_ptr<const Model> model, const std::string& device) {
  check_device_option(device);
#if defined(UQ_HAVE_CUDA)
  const bool use_cuda = device == "cuda" || (device == "auto" && cuda_available() &&
                                             !cuda::cuda_unsupported_reason(*model));
  if (use_cuda) {
    try {
      return {std::make_shared<const cuda::CudaModel>(std::move(model)), "cuda"};
    } catch (const Error& error) {
      fail("option --device ", device, ": ", error.what());
    }
  }
#endif
  return {std::move(model), "cpu"};
}

std::optional<std::string> device_unsupported_reason(const Model& model,
                                                     const std::string& device) {
  if (device != "cuda") {
    check_device_option(device);
    return std::nullopt;
  }
#if defined(UQ_HAVE_CUDA)
  if (!cuda_available()) return "no CUDA GPU found";
  return cuda::cuda_unsupported_reason(model);
#else
  (void)model;
  return "this build has no CUDA support";
#endif
}

std::int64_t cuda_memory_used_bytes() {
#if defined(UQ_HAVE_CUDA)
  if (!cuda_available()) return 0;
  std::size_t free_bytes = 0, total_bytes = 0;
  UQ_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return static_cast<std::int64_t>(total_bytes - free_bytes);
#else
  return 0;
#endif
}

}  // namespace uq
