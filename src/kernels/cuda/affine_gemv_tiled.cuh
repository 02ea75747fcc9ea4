#pragma once
// Prompt-sized affine product on the tensor cores: y[rows, out] = x[rows, in] . W^T, one launch
// for any row count, every weight byte read once per 128 activation rows (the 1..16-row kernels
// re-read all weights for every 16 rows).
//
// A block owns a 128 (weight rows) x 128 (activation rows) output tile and walks `in` in steps
// of 64. Each step its 256 threads dequantize the 128 x 64 weight tile (bf16x2 fma of exact bf16
// codes: scale * q + bias rounded once to bf16, two weights per instruction) and convert the
// 128 x 64 activation tile to bf16 into shared memory; 8 warps (2 along out x 4 along rows,
// 64 x 32 each) run mma.sync m16n8k16 (bf16 in, fp32 accumulate) on fragments read with
// ldmatrix. Two shared-memory stages: the global loads of step k + 1 are issued before the mmas
// of step k, and its dequantized chunks are stored between them (one chunk after each k16 slice
// of mmas, so the integer/bf16 work overlaps the tensor cores); one barrier per step.
// Inside each 8-element chunk both tiles hold elements in the order 0 4 1 5 2 6 3 7: the pairs
// one 4-bit code word yields with a single mask (the dot product does not depend on k order).
// Tile rows are 128 bytes (8 chunks of 16); chunk c of row r sits at c ^ (r % 8), so the 8 rows
// an ldmatrix reads hit 8 different bank groups.
// Accuracy is that of a bf16 matmul (weights and x rounded to bf16 once; f32 x is rounded into
// stream-ordered scratch first), unlike the exact-code 1..16-row kernels.
#include <cuda_bf16.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <type_traits>

#include "core/error.hpp"
#include "kernels/cuda/affine_gemv_kernel.cuh"
#include "kernels/cuda/affine_gemv_mma.cuh"
#include "kernels/cuda/affine_gemv_segment.cuh"
#include "kernels/cuda/cuda_check.hpp"

namespace uq::cuda::detail {

constexpr int kTileOut = 128;   // weight rows per block (mma M)
constexpr int kTileRows = 128;  // activation rows per block (mma N)
constexpr int kTileK = 64;      // elements of `in` per step
constexpr int kTileThreads = 256;
constexpr int kTileStageElements = (kTileOut + kTileRows) * kTileK;  // bf16
constexpr int kTileSharedBytes = 2 * kTileStageElements * 2;         // two stages: 64 KiB

// bf16 offset of 16-byte chunk `chunk` (0..7) of tile row `row`.
__device__ __forceinline__ int tile_offset(int row, int chunk) {
  return row * kTileK + ((chunk ^ (row & 7)) << 3);
}

__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const __nv_bfloat16* p) {
  const auto address = static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// Run c (codes 8c..8c+7, c a compile-time constant once loops unroll) of 32 codes packed from
// bit 0 of w, shifted down to bit 0 of (low, high).
template <int BITS>
__device__ __forceinline__ void segment_run(const std::uint32_t (&w)[BITS], int c,
                                            std::uint32_t& low, std::uint32_t& high) {
  const int bit = 8 * c * BITS, word = bit / 32, offset = bit % 32;
  const std::uint32_t next = word + 1 < BITS ? w[word + 1] : 0u;
  low = __funnelshift_r(w[word], next, offset);
  high = next >> offset;
}

__device__ __forceinline__ std::uint32_t fma_bf16x2(std::uint32_t a, std::uint32_t b,
                                                    std::uint32_t c) {
  std::uint32_t d;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

// One thread's share of a step: 32 consecutive elements of one weight row and of one
// activation row, held in registers between the global loads and the shared-memory stores.
template <int BITS>
struct TileSlice {
  std::uint32_t words[BITS];
  std::uint32_t scale, bias;  // bf16x2: the bf16 value twice
  uint4 x[4];
  __device__ __forceinline__ void load_x(const __nv_bfloat16* src) {
#pragma unroll
    for (int v = 0; v < 4; ++v) x[v] = __ldg(reinterpret_cast<const uint4*>(src) + v);
  }
  __device__ __forceinline__ void zero_x() {
#pragma unroll
    for (int v = 0; v < 4; ++v) x[v] = make_uint4(0u, 0u, 0u, 0u);
  }
  // Chunk c as bf16x2 pairs {x[p], x[p + 4]}: element e is half e % 2 of word e / 2.
  __device__ __forceinline__ uint4 x_chunk(int c) const {
    const uint4 u = x[c];
    return make_uint4(__byte_perm(u.x, u.z, 0x5410), __byte_perm(u.x, u.z, 0x7632),
                      __byte_perm(u.y, u.w, 0x5410), __byte_perm(u.y, u.w, 0x7632));
  }
};

// f32 x is rounded to bf16 once, by this kernel, rather than in the tiled kernel: its 32 f32
// registers of prefetched x made that kernel spill at two blocks per SM (v5: 717 us against
// 341 with bf16 x at 512 rows). Eight elements per thread; n is a multiple of 32.
// A template only so that every file including this header may define it.
template <class F>
__global__ void __launch_bounds__(256)
    round_x_to_bf16_kernel(const F* __restrict__ x, uint4* __restrict__ x_bf16,
                           std::size_t octets) {
  const std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= octets) return;
  const float4 a = __ldg(reinterpret_cast<const float4*>(x) + 2 * k);
  const float4 b = __ldg(reinterpret_cast<const float4*>(x) + 2 * k + 1);
  x_bf16[k] = make_uint4(pack_bf16x2(a.x, a.y), pack_bf16x2(a.z, a.w), pack_bf16x2(b.x, b.y),
                         pack_bf16x2(b.z, b.w));
}

template <int BITS>
__global__ void __launch_bounds__(kTileThreads, 2)
    affine_gemv_tiled_kernel(const std::uint32_t* __restrict__ codes,
                             const std::uint16_t* __restrict__ scales,
                             const std::uint16_t* __restrict__ biases,
                             const __nv_bfloat16* __restrict__ x, float* __restrict__ y, int out,
                             int in, int rows, int group_shift) {
  extern __shared__ uint4 shared_words[];
  auto* const shared = reinterpret_cast<__nv_bfloat16*>(shared_words);

  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid % 32, warp = tid / 32;
  const int row0 = static_cast<int>(blockIdx.x) * kTileRows;  // first activation row
  const int out0 = static_cast<int>(blockIdx.y) * kTileOut;   // first weight row

  // Loader role: tile row tid / 2 (weight and activation), elements 32 * (tid % 2) .. + 31.
  const int load_row = tid / 2, load_half = tid % 2;
  // Rows past `out` re-read the last row; their sums are never stored.
  const std::size_t w_row = static_cast<std::size_t>(min(out0 + load_row, out - 1));
  const bool x_row_valid = row0 + load_row < rows;
  const std::uint32_t* const w_codes = codes + w_row * static_cast<std::size_t>(in) * BITS / 32;
  const std::size_t w_groups = w_row * (static_cast<std::size_t>(in) >> group_shift);
  const __nv_bfloat16* const x_src =
      x + static_cast<std::size_t>(x_row_valid ? row0 + load_row : 0) * in;

  TileSlice<BITS> slice;
  const auto load = [&](int step) {
    const int k = step * kTileK + 32 * load_half;
    if (k >= in) return;  // `in` % 64 == 32: the second half of the last step is zeros
    load_code_words<BITS>(w_codes + static_cast<std::size_t>(k) * BITS / 32, slice.words);
    const std::size_t group = w_groups + (static_cast<std::size_t>(k) >> group_shift);
    slice.scale = __ldg(scales + group) * 0x10001u;
    slice.bias = __ldg(biases + group) * 0x10001u;
    if (x_row_valid)
      slice.load_x(x_src + k);
    else
      slice.zero_x();
  };
  // Chunk 4 * load_half + c of the thread's tile rows into stage `stage`.
  const auto store_chunk = [&](int step, int stage, int c) {
    __nv_bfloat16* const w_tile = shared + stage * kTileStageElements;
    __nv_bfloat16* const x_tile = w_tile + kTileOut * kTileK;
    uint4 w = make_uint4(0u, 0u, 0u, 0u), xv = w;
    if (step * kTileK + 32 * load_half < in) {
      std::uint32_t low, high, pairs[4];
      segment_run<BITS>(slice.words, c, low, high);
#pragma unroll
      for (int p = 0; p < 4; ++p)
        pairs[p] = fma_bf16x2(code_pair<BITS>(low, high, p), slice.scale, slice.bias);
      w = make_uint4(pairs[0], pairs[1], pairs[2], pairs[3]);
      xv = slice.x_chunk(c);
    }
    const int chunk = 4 * load_half + c;
    *reinterpret_cast<uint4*>(w_tile + tile_offset(load_row, chunk)) = w;
    *reinterpret_cast<uint4*>(x_tile + tile_offset(load_row, chunk)) = xv;
  };

  // Compute role: warp tile of 64 weight rows (4 m16 tiles) x 32 activation rows (4 n8 tiles).
  const int warp_out = (warp % 2) * 64, warp_rows = (warp / 2) * 32;
  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int k = 0; k < 4; ++k) acc[i][j][k] = 0.0f;

  const int steps = (in + kTileK - 1) / kTileK;
  load(0);
#pragma unroll
  for (int c = 0; c < 4; ++c) store_chunk(0, 0, c);
  __syncthreads();
  for (int step = 0; step < steps; ++step) {
    const bool more = step + 1 < steps;
    if (more) load(step + 1);
    const __nv_bfloat16* const w_tile = shared + (step % 2) * kTileStageElements;
    const __nv_bfloat16* const x_tile = w_tile + kTileOut * kTileK;
#pragma unroll
    for (int ks = 0; ks < kTileK / 16; ++ks) {
      // ldmatrix: lane l addresses row l % 8 of 8x8 matrix l / 8.
      std::uint32_t b[4][2];
#pragma unroll
      for (int jj = 0; jj < 2; ++jj) {  // matrices: n 0-7 x k 0-7, k 8-15, then n 8-15
        std::uint32_t r[4];
        ldmatrix_x4(r, x_tile + tile_offset(warp_rows + 16 * jj + lane % 8 + 8 * (lane / 16),
                                            2 * ks + (lane / 8) % 2));
        b[2 * jj][0] = r[0], b[2 * jj][1] = r[1], b[2 * jj + 1][0] = r[2], b[2 * jj + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) {  // matrices: rows 0-7 / 8-15 x k 0-7, then x k 8-15
        std::uint32_t a[4];
        ldmatrix_x4(a, w_tile + tile_offset(warp_out + 16 * i + lane % 8 + 8 * ((lane / 8) % 2),
                                            2 * ks + lane / 16));
#pragma unroll
        for (int j = 0; j < 4; ++j) mma_bf16_16816(acc[i][j], a, b[j][0], b[j][1]);
      }
      if (more) store_chunk(step + 1, (step + 1) % 2, ks);
    }
    __syncthreads();
  }

  // acc[i][j]: {weight row g, g + 8} x {activation row 2t, 2t + 1} of m-tile i, n-tile j.
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int o = out0 + warp_out + 16 * i + g + 8 * (k / 2);
        const int r = row0 + warp_rows + 8 * j + 2 * t + k % 2;
        if (o < out && r < rows) y[static_cast<std::size_t>(r) * out + o] = acc[i][j][k];
      }
}

// Stream-ordered scratch memory (cudaMallocAsync: also valid inside graph capture), freed in
// stream order when the owner leaves scope.
class StreamScratch {
 public:
  StreamScratch(std::size_t bytes, cudaStream_t stream) : stream_(stream) {
    UQ_CUDA_CHECK(cudaMallocAsync(&data_, bytes, stream));
  }
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;
  ~StreamScratch() { cudaFreeAsync(data_, stream_); }
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
  cudaStream_t stream_;
};

template <int BITS>
void launch_affine_gemv_tiled_bf16(const GemvArgs& a, int group_size, const __nv_bfloat16* x) {
  const auto kernel = affine_gemv_tiled_kernel<BITS>;
  // The shared-memory limit is read off the device once per instantiation.
  static std::once_flag raised;
  std::call_once(raised, [&] {
    int device = 0, optin = 0;
    UQ_CUDA_CHECK(cudaGetDevice(&device));
    UQ_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    if (optin < kTileSharedBytes)
      fail("cuda affine gemv: the tiled kernel needs ", kTileSharedBytes,
           " bytes of shared memory per block, device ", device, " allows ", optin);
    UQ_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       kTileSharedBytes));
  });
  const int group_shift = group_size == 32 ? 5 : group_size == 64 ? 6 : 7;
  const dim3 grid(static_cast<unsigned>((a.rows + kTileRows - 1) / kTileRows),
                  static_cast<unsigned>((a.out + kTileOut - 1) / kTileOut));
  kernel<<<grid, kTileThreads, kTileSharedBytes, a.stream>>>(a.codes, a.scales, a.biases, x, a.y,
                                                             a.out, a.in, a.rows, group_shift);
  UQ_CUDA_CHECK_LAUNCH("affine_gemv_tiled_kernel");
}

template <int BITS, class XT>
void launch_affine_gemv_tiled(const GemvArgs& a, int group_size, const XT* x) {
  if constexpr (std::is_same_v<XT, float>) {
    const std::size_t octets = static_cast<std::size_t>(a.rows) * a.in / 8;
    const StreamScratch x_bf16(octets * sizeof(uint4), a.stream);
    round_x_to_bf16_kernel<float>
        <<<static_cast<unsigned>((octets + 255) / 256), 256, 0, a.stream>>>(
            x, static_cast<uint4*>(x_bf16.data()), octets);
    UQ_CUDA_CHECK_LAUNCH("round_x_to_bf16_kernel");
    launch_affine_gemv_tiled_bf16<BITS>(a, group_size,
                                        static_cast<const __nv_bfloat16*>(x_bf16.data()));
  } else {
    launch_affine_gemv_tiled_bf16<BITS>(a, group_size, x);
  }
}

}  // namespace uq::cuda::detail
