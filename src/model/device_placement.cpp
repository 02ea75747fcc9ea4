#include "model/device_placement.hpp"

#include "core/error.hpp"
#include "model/decoder.hpp"

#if defined(UQ_HAVE_CUDA)
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

}  // namespace uq
