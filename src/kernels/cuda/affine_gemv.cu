#include "kernels/cuda/affine_gemv.hpp"

#include <algorithm>
#include <cstdint>

#include "core/error.hpp"
#include "kernels/cuda/affine_gemv_kernel.cuh"
#include "kernels/cuda/affine_gemv_mma.cuh"
#include "kernels/cuda/affine_gemv_segment.cuh"
#include "kernels/cuda/affine_gemv_tiled.cuh"

namespace uq::cuda {

namespace detail {
#define UQ_EXTERN_AFFINE_GEMV(BITS)                                                               \
  extern template void launch_affine_gemv_simt_bits<BITS, float>(const GemvArgs&, int,            \
                                                                 const float*);                   \
  extern template void launch_affine_gemv_simt_bits<BITS, __nv_bfloat16>(const GemvArgs&, int,    \
                                                                         const __nv_bfloat16*);   \
  extern template void launch_affine_gemv_mma_bits<BITS, float>(const GemvArgs&, int,             \
                                                                const float*);                    \
  extern template void launch_affine_gemv_mma_bits<BITS, __nv_bfloat16>(const GemvArgs&, int,     \
                                                                        const __nv_bfloat16*);    \
  extern template void launch_affine_gemv_tiled<BITS, float>(const GemvArgs&, int, const float*); \
  extern template void launch_affine_gemv_tiled<BITS, __nv_bfloat16>(const GemvArgs&, int,        \
                                                                     const __nv_bfloat16*);
UQ_EXTERN_AFFINE_GEMV(2)
UQ_EXTERN_AFFINE_GEMV(3)
UQ_EXTERN_AFFINE_GEMV(4)
UQ_EXTERN_AFFINE_GEMV(5)
UQ_EXTERN_AFFINE_GEMV(6)
UQ_EXTERN_AFFINE_GEMV(8)
#undef UQ_EXTERN_AFFINE_GEMV
}  // namespace detail

namespace {

template <int BITS, class XT>
void launch_bits(GemvKernel kernel, const detail::GemvArgs& args, int group_size, const XT* x) {
  if (kernel == GemvKernel::tiled)
    detail::launch_affine_gemv_tiled<BITS>(args, group_size, x);
  else if (kernel == GemvKernel::tensor_cores)
    detail::launch_affine_gemv_mma_bits<BITS>(args, group_size, x);
  else
    detail::launch_affine_gemv_simt_bits<BITS>(args, group_size, x);
}

template <class XT>
void dispatch(const AffineDeviceWeight& w, const XT* x, int rows, float* y, cudaStream_t stream,
              GemvKernel kernel, bool accumulate) {
  if (rows < 0) fail("cuda affine gemv '", w.name(), "': rows ", rows, " is negative");
  if (rows == 0) return;
  if (x == nullptr || y == nullptr) fail("cuda affine gemv '", w.name(), "': null x or y");
  if (reinterpret_cast<std::uintptr_t>(x) % 16 != 0)
    fail("cuda affine gemv '", w.name(), "': x must be 16-byte aligned");
  if (kernel == GemvKernel::automatic) kernel = automatic_kernel(rows, w.out());
  if (accumulate && (kernel != GemvKernel::simt || rows > 2)) {
    fail("cuda affine gemv '", w.name(), "': accumulating is for 1-2 rows on the simt kernel");
  }
  // The tiled kernel takes every row in one launch; the others 16 rows per pass.
  const int pass_rows = kernel == GemvKernel::tiled ? rows : detail::kMaxRows;
  for (int done = 0; done < rows; done += pass_rows) {
    const detail::GemvArgs args{w.codes(),
                                w.scales(),
                                w.biases(),
                                y + static_cast<std::size_t>(done) * w.out(),
                                w.out(),
                                w.in(),
                                std::min(pass_rows, rows - done),
                                stream,
                                accumulate};
    const XT* x_part = x + static_cast<std::size_t>(done) * w.in();
    switch (w.bits()) {
      case 2:
        launch_bits<2>(kernel, args, w.group_size(), x_part);
        break;
      case 3:
        launch_bits<3>(kernel, args, w.group_size(), x_part);
        break;
      case 4:
        launch_bits<4>(kernel, args, w.group_size(), x_part);
        break;
      case 5:
        launch_bits<5>(kernel, args, w.group_size(), x_part);
        break;
      case 6:
        launch_bits<6>(kernel, args, w.group_size(), x_part);
        break;
      case 8:
        launch_bits<8>(kernel, args, w.group_size(), x_part);
        break;
      default:
        fail("cuda affine gemv '", w.name(), "': bits ", w.bits(), " not supported");
    }
  }
}

}  // namespace

GemvKernel automatic_kernel(int rows, int out) {
  if (rows <= 2) return GemvKernel::simt;
  if (rows <= detail::kMaxRows) return GemvKernel::tensor_cores;
  // The tiled grid has out / 128 blocks per 128 rows: under ~64 of the 132 SMs (out 4096),
  // 16-row passes stay faster up to 64 rows (docs/PERFORMANCE.md, "CUDA (H200)").
  if (rows <= 64 && out < 8192) return GemvKernel::tensor_cores;
  return GemvKernel::tiled;
}

void affine_gemv_cuda(const AffineDeviceWeight& w, const float* x_dev, int rows, float* y_dev,
                      cudaStream_t stream, GemvKernel kernel, bool accumulate) {
  dispatch(w, x_dev, rows, y_dev, stream, kernel, accumulate);
}

void affine_gemv_cuda(const AffineDeviceWeight& w, const __nv_bfloat16* x_dev, int rows,
                      float* y_dev, cudaStream_t stream, GemvKernel kernel, bool accumulate) {
  dispatch(w, x_dev, rows, y_dev, stream, kernel, accumulate);
}

}  // namespace uq::cuda
