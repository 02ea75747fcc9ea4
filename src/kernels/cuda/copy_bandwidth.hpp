#pragma once
// The device-to-device copy bandwidth of the current GPU, measured: the memory-bound ceiling
// that decode speeds are compared with (bytes read plus bytes written per second).
namespace uq::cuda {

// Median of 10 timed copies of a `megabytes` buffer (after 2 warm-up copies), in bytes per
// second counting the read and the write.
double measure_copy_bandwidth(int megabytes = 1024);

}  // namespace uq::cuda
