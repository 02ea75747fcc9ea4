#pragma once
// Programmatic dependent launch (PDL, sm_90): a kernel launched through launch_pdl may start
// while the kernel before it on the stream is still draining, instead of after it has finished
// and its memory is flushed. The dependency moves into the kernels:
//   pdl_wait()              blocks until every earlier grid the launch depends on has finished
//                           and its writes are visible. Call it before the first read of
//                           anything a predecessor writes and before the first write (a
//                           predecessor may still read what is overwritten). A block with
//                           nothing to do may leave without it, as long as one block of the
//                           grid always waits: a grid must not finish before its predecessors,
//                           or the next kernel's wait would not cover them.
//   pdl_launch_dependents() lets the next launch's blocks be scheduled once every block of this
//                           grid has called it or exited. It never makes the next kernel read
//                           early (that one waits with pdl_wait), so calling it first is
//                           memory-safe; it only shares the SMs sooner.
// Work that touches only data no kernel of the step writes (weights, norm weights, RoPE
// frequencies, addresses) may go before pdl_wait to overlap the predecessor's tail; it pays only
// where it costs no occupancy (docs/PERFORMANCE.md, "CUDA decoder (H200)": the bf16 GEMV's try).
// Stream capture keeps the attribute as a programmatic edge of the CUDA graph. Without the
// attribute (programmatic_launch_enabled() false) both instructions are no-ops and launches are
// ordinary stream-ordered launches: the same results.
#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "kernels/cuda/cuda_check.hpp"

namespace uq::cuda {

// On unless the environment sets UQ_CUDA_PDL=0; tests switch it to compare the two.
bool programmatic_launch_enabled();
void set_programmatic_launch_enabled(bool enabled);

// The launch attribute for thread block clusters of `cluster` blocks.
inline cudaLaunchAttribute cluster_dimension(dim3 cluster) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeClusterDimension;
  attribute.val.clusterDim.x = cluster.x;
  attribute.val.clusterDim.y = cluster.y;
  attribute.val.clusterDim.z = cluster.z;
  return attribute;
}

// kernel<<<grid, block, shared, stream>>>(args...) with the PDL attribute when enabled, in
// thread block clusters of `cluster` blocks where that is not (1, 1, 1); checked like every
// launch (`name` in the error).
template <class... Params, class... Args>
void launch_pdl_cluster(const char* name, void (*kernel)(Params...), dim3 grid, dim3 cluster,
                        dim3 block, std::size_t shared, cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attributes[2]{};
  unsigned count = 0;
  if (programmatic_launch_enabled()) {
    attributes[count].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attributes[count++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (cluster.x * cluster.y * cluster.z > 1) attributes[count++] = cluster_dimension(cluster);
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  config.attrs = attributes;
  config.numAttrs = count;
  check(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...), name, __FILE__, __LINE__);
  UQ_CUDA_CHECK_LAUNCH(name);
}

template <class... Params, class... Args>
void launch_pdl(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block,
                std::size_t shared, cudaStream_t stream, Args&&... args) {
  launch_pdl_cluster(name, kernel, grid, dim3(1, 1, 1), block, shared, stream,
                     std::forward<Args>(args)...);
}

#ifdef __CUDACC__
__device__ __forceinline__ void pdl_wait() {
  asm volatile("griddepcontrol.wait;" ::: "memory");
}
__device__ __forceinline__ void pdl_launch_dependents() {
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}
#endif

}  // namespace uq::cuda
