#include "core/cpu_features.hpp"

#include <cpuid.h>

namespace uq {

bool cpu_has_f16c() {
  static const bool has = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
    return (ecx & bit_F16C) != 0;
  }();
  return has;
}

}  // namespace uq
