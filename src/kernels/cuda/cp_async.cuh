#pragma once
// cp.async (sm_80+): copies from global to shared memory that do not pass through registers, in
// commit groups a thread waits for by count. src_bytes < size zero-fills the rest (0: nothing is
// read, the destination becomes zeros).
#include <cstdint>

namespace uq::cuda::detail {

__device__ __forceinline__ void cp_async16(void* shared, const void* global, int src_bytes) {
  const auto address = static_cast<std::uint32_t>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(global),
               "r"(src_bytes)
               : "memory");
}

// 4, 8 or 16 bytes through L1 (.ca; .cg takes 16 only).
template <int BYTES>
__device__ __forceinline__ void cp_async_ca(void* shared, const void* global, int src_bytes) {
  static_assert(BYTES == 4 || BYTES == 8 || BYTES == 16);
  const auto address = static_cast<std::uint32_t>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(address), "l"(global),
               "n"(BYTES), "r"(src_bytes)
               : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}

// Waits until at most PENDING of this thread's committed groups are still in flight.
template <int PENDING>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
}

}  // namespace uq::cuda::detail
