#include "kernels/cuda/copy_bandwidth.hpp"

#include <algorithm>
#include <vector>

#include "kernels/cuda/device_buffer.hpp"
#include "kernels/cuda/stream.hpp"

namespace uq::cuda {

double measure_copy_bandwidth(int megabytes) {
  const std::size_t bytes = static_cast<std::size_t>(megabytes) << 20;
  DeviceBuffer<unsigned char> source(bytes);
  DeviceBuffer<unsigned char> target(bytes);
  source.fill_bytes(0x5a);
  Stream stream;
  Event start;
  Event stop;
  std::vector<float> milliseconds;
  for (int run = 0; run < 12; ++run) {
    start.record(stream.get());
    UQ_CUDA_CHECK(cudaMemcpyAsync(target.data(), source.data(), bytes, cudaMemcpyDeviceToDevice,
                                  stream.get()));
    stop.record(stream.get());
    if (run >= 2) milliseconds.push_back(stop.elapsed_ms_since(start));  // 2 warm-up copies
  }
  std::nth_element(milliseconds.begin(), milliseconds.begin() + milliseconds.size() / 2,
                   milliseconds.end());
  return 2.0 * static_cast<double>(bytes) / (milliseconds[milliseconds.size() / 2] * 1e-3);
}

}  // namespace uq::cuda
