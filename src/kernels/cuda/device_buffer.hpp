#pragma once
// Device memory owned by one object: allocated on construction, freed on destruction.
#include <cstddef>
#include <span>
#include <utility>

#include "core/error.hpp"
#include "kernels/cuda/cuda_check.hpp"

namespace uq::cuda {

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t count) : count_(count) {
    if (count > 0) UQ_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), count * sizeof(T)));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      count_ = std::exchange(other.count_, 0);
    }
    return *this;
  }
  ~DeviceBuffer() { release(); }

  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return count_; }
  std::size_t bytes() const { return count_ * sizeof(T); }

  // Synchronous copies; the host span must have exactly size() elements.
  void upload(std::span<const T> host) {
    require_size(host.size(), "upload");
    if (count_ > 0) UQ_CUDA_CHECK(cudaMemcpy(data_, host.data(), bytes(), cudaMemcpyHostToDevice));
  }
  void download(std::span<T> host) const {
    require_size(host.size(), "download");
    if (count_ > 0) UQ_CUDA_CHECK(cudaMemcpy(host.data(), data_, bytes(), cudaMemcpyDeviceToHost));
  }
  // Sets every byte (tests poison outputs with this before a kernel runs).
  void fill_bytes(unsigned char value) {
    if (count_ > 0) UQ_CUDA_CHECK(cudaMemset(data_, value, bytes()));
  }

 private:
  void require_size(std::size_t host_count, const char* what) const {
    if (host_count != count_)
      fail("cuda: DeviceBuffer ", what, " of ", host_count, " elements into a buffer of ", count_);
  }
  void release() {
    if (data_ != nullptr) cudaFree(data_);  // cannot throw from a destructor; nothing to recover
    data_ = nullptr;
  }

  T* data_ = nullptr;
  std::size_t count_ = 0;
};

}  // namespace uq::cuda
