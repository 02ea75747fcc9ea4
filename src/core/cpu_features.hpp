#pragma once
// CPU features the kernels dispatch on, read once with cpuid.
namespace uq {

// F16C (half <-> float conversion instructions). Clang 14's
// __builtin_cpu_supports has no name for it, so it is read from CPUID leaf 1.
bool cpu_has_f16c();

}  // namespace uq
