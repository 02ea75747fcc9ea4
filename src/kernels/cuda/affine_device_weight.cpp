#include "kernels/cuda/affine_device_weight.hpp"

#include <cstddef>

#include "core/error.hpp"

namespace uq::cuda {

void validate_affine_weight(const AffineHostWeight& host) {
  const std::string& name = host.name;
  if (host.bits != 2 && host.bits != 3 && host.bits != 4 && host.bits != 5 && host.bits != 6 &&
      host.bits != 8)
    fail("cuda affine weight '", name, "': bits ", host.bits, " not supported (2, 3, 4, 5, 6, 8)");
  if (host.group_size != 32 && host.group_size != 64 && host.group_size != 128)
    fail("cuda affine weight '", name, "': group size ", host.group_size,
         " not supported (32, 64, 128)");
  if (host.out <= 0 || host.in <= 0)
    fail("cuda affine weight '", name, "': shape [", host.out, ", ", host.in, "] is empty");
  if (host.in % host.group_size != 0)
    fail("cuda affine weight '", name, "': in ", host.in, " is not a multiple of the group size ",
         host.group_size);
  const auto out = static_cast<std::size_t>(host.out);
  const auto in = static_cast<std::size_t>(host.in);
  const std::size_t words = out * in * static_cast<std::size_t>(host.bits) / 32;
  const std::size_t groups = out * in / static_cast<std::size_t>(host.group_size);
  if (host.codes.size() != words)
    fail("cuda affine weight '", name, "': ", host.codes.size(), " code words, expected ", words);
  if (host.scales.size() != groups)
    fail("cuda affine weight '", name, "': ", host.scales.size(), " scales, expected ", groups);
  if (host.biases.size() != groups)
    fail("cuda affine weight '", name, "': ", host.biases.size(), " biases, expected ", groups);
}

AffineDeviceWeight::AffineDeviceWeight(const AffineHostWeight& host)
    : name_(host.name),
      out_(host.out),
      in_(host.in),
      bits_(host.bits),
      group_size_(host.group_size) {
  validate_affine_weight(host);
  codes_ = DeviceBuffer<std::uint32_t>(host.codes.size());
  scales_ = DeviceBuffer<std::uint16_t>(host.scales.size());
  biases_ = DeviceBuffer<std::uint16_t>(host.biases.size());
  codes_.upload(host.codes);
  scales_.upload(host.scales);
  biases_.upload(host.biases);
}

}  // namespace uq::cuda
