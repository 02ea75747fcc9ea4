// The 2-bit instantiations of the affine GEMV kernels (one file per width: parallel builds).
#include "kernels/cuda/affine_gemv_mma.cuh"
#include "kernels/cuda/affine_gemv_persistent.cuh"
#include "kernels/cuda/affine_gemv_segment.cuh"
#include "kernels/cuda/affine_gemv_stream.cuh"
#include "kernels/cuda/affine_gemv_stream_mma.cuh"
#include "kernels/cuda/affine_gemv_tiled.cuh"

namespace uq::cuda::detail {

template void launch_affine_gemv_simt_bits<2, float>(const GemvArgs&, int, const float*);
template void launch_affine_gemv_simt_bits<2, __nv_bfloat16>(const GemvArgs&, int,
                                                             const __nv_bfloat16*);
template void launch_affine_gemv_mma_bits<2, float>(const GemvArgs&, int, const float*);
template void launch_affine_gemv_mma_bits<2, __nv_bfloat16>(const GemvArgs&, int,
                                                            const __nv_bfloat16*);
template void launch_affine_gemv_tiled<2, float>(const GemvArgs&, int, const float*);
template void launch_affine_gemv_tiled<2, __nv_bfloat16>(const GemvArgs&, int,
                                                         const __nv_bfloat16*);
template void launch_affine_gemv_stream_bits<2, float>(const StreamArgs<float>&, int, cudaStream_t);
template void launch_affine_gemv_stream_bits<2, __nv_bfloat16>(const StreamArgs<__nv_bfloat16>&,
                                                               int, cudaStream_t);
template void launch_affine_gemv_stream_mma_bits<2, float>(const StreamArgs<float>&, int,
                                                           cudaStream_t);
template void launch_affine_gemv_stream_mma_bits<2, __nv_bfloat16>(const StreamArgs<__nv_bfloat16>&,
                                                                   int, cudaStream_t);
template void launch_affine_gemv_persistent_bits<2>(const PersistentArgs&, int, int, cudaStream_t);

}  // namespace uq::cuda::detail
