#pragma once
// An MLX affine-quantized matrix W [out, in] uploaded to the GPU once.
// Layout (as MLX stores it): each row's codes are one little-endian bit stream in uint32
// words, element i at bits [i*bits, (i+1)*bits) (codes may straddle words for 3, 5, 6 bits);
// scales and biases are bf16 [out, in / group_size]; w = scale * q + bias.
#include <cstdint>
#include <span>
#include <string>

#include "kernels/cuda/device_buffer.hpp"

namespace uq::cuda {

struct AffineHostWeight {
  std::string name;  // names the tensor in error messages
  int out = 0;
  int in = 0;
  int bits = 0;
  int group_size = 0;
  std::span<const std::uint32_t> codes;   // out * in * bits / 32 words
  std::span<const std::uint16_t> scales;  // bf16 bits, out * in / group_size
  std::span<const std::uint16_t> biases;  // bf16 bits, out * in / group_size
};

// Bits 2, 3, 4, 5, 6, 8; group size 32, 64, 128; in a multiple of the group size.
// Throws uq::Error naming the tensor for any other shape, or sizes that do not match it.
void validate_affine_weight(const AffineHostWeight& host);

class AffineDeviceWeight {
 public:
  explicit AffineDeviceWeight(const AffineHostWeight& host);

  const std::string& name() const { return name_; }
  int out() const { return out_; }
  int in() const { return in_; }
  int bits() const { return bits_; }
  int group_size() const { return group_size_; }
  const std::uint32_t* codes() const { return codes_.data(); }
  const std::uint16_t* scales() const { return scales_.data(); }
  const std::uint16_t* biases() const { return biases_.data(); }
  // Bytes a matrix-vector product must read: codes + scales + biases.
  std::size_t bytes() const { return codes_.bytes() + scales_.bytes() + biases_.bytes(); }

 private:
  std::string name_;
  int out_, in_, bits_, group_size_;
  DeviceBuffer<std::uint32_t> codes_;
  DeviceBuffer<std::uint16_t> scales_;
  DeviceBuffer<std::uint16_t> biases_;
};

}  // namespace uq::cuda
