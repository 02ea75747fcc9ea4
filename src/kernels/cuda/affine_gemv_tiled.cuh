#pragma once
// Prompt-sized affine product on the tensor cores: y[rows, out] = x[rows, in] . W^T, one launch
// for any row count, every weight byte read once per 128 activation rows.
//
// A block owns a 128 (weight rows) x 128 (activation rows) output tile and walks `in` in steps
// of 64. A 4-stage cp.async pipeline copies, 3 steps ahead, the step's *packed* codes, its
// scale/bias pairs and its bf16 x tile into shared memory; nothing waits on a global load.
// Scales and biases are first regrouped per call, step-major ([step][out] bf16 pairs, one
// pass over them): read in place, each block step touched 4-byte pieces of 256 different cache
// lines (512 rows of 14336x4096 4-bit on an H200: 349 us reading them in place, 259 with this
// and two smaller changes; what still bounds the kernel: bench/cuda/NOTES.md, session 4).
// 8 warps (4 along out x 2 along rows, 32 x 64 each) each dequantize their own A fragments
// straight from the packed codes in shared memory (Marlin-style: exact bf16 codes, then one
// bf16x2 fma s * q + b, rounded once, per pair of weights) and read B fragments (x) with
// ldmatrix; mma.sync m16n8k16, fp32 accumulation. One barrier per step.
//
// The sum over k is order-free, so within each 64-element step the mma's logical k order is
// chosen to make lane t's A fragments come from its own 16 consecutive codes 16t .. 16t + 15
// (one group, a few shared-memory words); x is permuted to the same order (and rounded to bf16,
// zero-padded to a multiple of 64) by a small kernel into stream-ordered scratch first.
// x tile rows are 128 bytes (8 chunks of 16); chunk c of row r sits at c ^ (r % 8), so the 8
// rows an ldmatrix reads hit 8 different bank groups.
// Accuracy is that of a bf16 matmul (weights and x rounded to bf16 once), unlike the exact-code
// 1..16-row kernels.
#include <cuda_bf16.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <type_traits>

#include "core/error.hpp"
#include "kernels/cuda/affine_gemv_kernel.cuh"
#include "kernels/cuda/affine_gemv_mma.cuh"
#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/cuda_check.hpp"

namespace uq::cuda::detail {

constexpr int kTileOut = 128;   // weight rows per block (mma M)
constexpr int kTileRows = 128;  // activation rows per block (mma N)
constexpr int kTileK = 64;      // elements of `in` per step
constexpr int kTileThreads = 256;
constexpr int kTileStages = 4;
constexpr int kWarpOut = 32;   // weight rows per warp: 2 m16 tiles
constexpr int kWarpRows = 64;  // activation rows per warp: 8 n8 tiles

// Shared memory of one stage: x tile, then codes, then scale/bias pairs.
template <int BITS>
struct TileStage {
  static constexpr int kCodeWords = 2 * BITS;  // one weight row's codes for one step
  // Rows start on 16 bytes (cp.async of 16 bytes).
  static constexpr int kCodeStride = (kCodeWords + 3) / 4 * 4;
  static constexpr int kXBytes = kTileRows * kTileK * 2;
  static constexpr int kCodeBytes = kTileOut * kCodeStride * 4;
  // Per weight row the (scale, bias) bf16 pair of each group of the step: 1 or 2 (group 32).
  static constexpr int kScaleBytes = kTileOut * 2 * 4;
  static constexpr int kBytes = kXBytes + kCodeBytes + kScaleBytes;
  static constexpr int kSharedBytes = kTileStages * kBytes;
};

// Physical element (within a 64-element step) at logical mma position `logical`: slice
// s = logical / 16 of lane t reads its codes 16t + 8r + e (low half) and + 4 (high half), the
// pairs code_pair(run r, e) yields, for a0/a1 (k 2t, 2t+1: e = 2(s % 2)) and a2/a3 (k 2t + 8,
// 2t + 9: e + 1).
__host__ __device__ constexpr int tile_physical_k(int logical) {
  const int s = logical >> 4, l = logical & 15;
  const int t = (l & 7) >> 1, h = l & 1, upper = l >> 3;
  return 16 * t + 8 * (s >> 1) + 2 * (s & 1) + upper + 4 * h;
}

__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const void* p) {
  const auto address = static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

__device__ __forceinline__ std::uint32_t fma_bf16x2(std::uint32_t a, std::uint32_t b,
                                                    std::uint32_t c) {
  std::uint32_t d;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

// Run r (codes 8r .. 8r + 7) of lane t's 16 codes of one weight row in a step, shifted to bit 0
// of (low, high): 8 * BITS bits from bit 16 * BITS * t + 8 * BITS * r of the row's code words,
// never more than two words (the second may be the next row's, unused then).
template <int BITS>
__device__ __forceinline__ void lane_run(const std::uint32_t* row_codes, int t, int r,
                                         std::uint32_t& low, std::uint32_t& high) {
  const int bit = 16 * BITS * t + 8 * BITS * r, word = bit / 32, offset = bit % 32;
  const std::uint32_t w0 = row_codes[word], w1 = row_codes[word + 1];
  low = __funnelshift_r(w0, w1, offset);
  high = w1 >> offset;
}

template <int BITS>
__global__ void __launch_bounds__(kTileThreads, 2)
    affine_gemv_tiled_kernel(const std::uint32_t* __restrict__ codes,
                             const std::uint32_t* __restrict__ scale_bias,
                             const __nv_bfloat16* __restrict__ x, float* __restrict__ y, int out,
                             int in, int rows, int group_shift) {
  using Stage = TileStage<BITS>;
  extern __shared__ uint4 shared_words[];
  auto* const shared = reinterpret_cast<unsigned char*>(shared_words);

  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid % 32, warp = tid / 32;
  const int row0 = static_cast<int>(blockIdx.x) * kTileRows;  // first activation row
  const int out0 = static_cast<int>(blockIdx.y) * kTileOut;   // first weight row
  const int in_padded = (in + kTileK - 1) / kTileK * kTileK;
  const int steps = in_padded / kTileK;
  const int row_words = in / 32 * BITS;
  const int pairs = group_shift == 5 ? 2 : 1;  // scale/bias pairs per row and step
  // 16-byte code copies where every row's step starts on 16 bytes; else word by word.
  const bool wide_codes = BITS % 2 == 0 && row_words % 4 == 0;

  // Weight row `r` of the tile; rows past `out` re-read the last row, their sums never stored.
  const auto weight_row = [&](int r) { return min(out0 + r, out - 1); };

  // Loader role, fixed per thread (few registers live across the loop): x rows tid / 8 + 32i,
  // chunk tid % 8; codes of weight row tid / 2; 16 bytes of the step's scale/bias pairs.
  const int x_rows = min(kTileRows, rows - row0);  // rows of x in this tile
  const int x_row = tid / 8, x_chunk = tid % 8;
  const int x_live = max(0, min(4, (x_rows - x_row + 31) / 32));  // copies i < x_live
  const __nv_bfloat16* const x_src =
      x + std::size_t(min(row0 + x_row, rows - 1)) * in_padded + 8 * x_chunk;
  const int x_dst = x_row * 128 + ((x_chunk ^ (x_row & 7)) << 4);
  const int load_row = tid / 2, load_half = tid % 2;
  const std::uint32_t* const row_codes = codes + std::size_t(weight_row(load_row)) * row_words;
  // scale_bias is [steps][out rounded up to 4][pairs]: 16-byte aligned per step.
  const int pair_bytes = 4 * pairs * min(kTileOut, out - out0);  // this tile's, per step
  const std::size_t pair_stride = std::size_t((out + 3) / 4 * 4) * pairs;

  // x rows past `rows` are never copied: zero them in every stage once.
  for (int c = tid; c < kTileStages * kTileRows * 8; c += kTileThreads) {
    const int stage = c / (kTileRows * 8), r = c / 8 % kTileRows;
    if (r >= x_rows)
      *reinterpret_cast<uint4*>(shared + stage * Stage::kBytes + r * 128 + (c % 8) * 16) =
          make_uint4(0u, 0u, 0u, 0u);
  }

  const auto load_stage = [&](int step, int stage) {
    unsigned char* const base = shared + stage * Stage::kBytes;
    const int k0 = step * kTileK;
    // x: 128 rows x 8 chunks of 16 bytes, rows before `rows` only.
#pragma unroll
    for (int i = 0; i < 4; ++i)
      if (i < x_live)
        cp_async16(base + x_dst + i * 32 * 128, x_src + std::size_t(32 * i) * in_padded + k0, 16);
    // Codes: the step's words of the row, units load_half, load_half + 2, ...; past `in` (a
    // half step) they are zeros (a zero-byte copy still gets an address inside the buffer).
    unsigned char* const code_dst = base + Stage::kXBytes + load_row * Stage::kCodeStride * 4;
    const std::uint32_t* const code_src = row_codes + step * 2 * BITS;
    const int real_words = min(kTileK, in - k0) / 32 * BITS;
    if (wide_codes) {
      for (int word = 4 * load_half; word < Stage::kCodeWords; word += 8) {
        const int bytes = 4 * max(0, min(4, real_words - word));
        cp_async16(code_dst + 4 * word, bytes > 0 ? code_src + word : codes, bytes);
      }
    } else {
      for (int word = load_half; word < Stage::kCodeWords; word += 2) {
        const bool live = word < real_words;
        cp_async_ca<4>(code_dst + 4 * word, live ? code_src + word : codes, live ? 4 : 0);
      }
    }
    // Scale/bias pairs: the tile's rows of the step, one contiguous run of 512 or 1024 bytes;
    // rows past `out` are zeros.
    if (tid < kTileOut / 4 * pairs) {  // 16 bytes: 4 rows of pairs
      const int bytes = max(0, min(16, pair_bytes - 16 * tid));
      const std::uint32_t* src = scale_bias + step * pair_stride + std::size_t(out0) * pairs;
      cp_async16(base + Stage::kXBytes + Stage::kCodeBytes + 16 * tid,
                 bytes > 0 ? src + 4 * tid : scale_bias, bytes);
    }
  };

  // Compute role: warp tile of 32 weight rows (2 m16 tiles) x 64 activation rows (8 n8 tiles).
  const int warp_out = (warp % 4) * kWarpOut, warp_rows = (warp / 4) * kWarpRows;
  const int g = lane / 4, t = lane % 4;
  // n8 tiles holding at least one real activation row (warp-uniform).
  const int live_tiles = max(0, min(kWarpRows / 8, (rows - row0 - warp_rows + 7) / 8));
  float acc[2][8][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int k = 0; k < 4; ++k) acc[i][j][k] = 0.0f;

  // all_live (std::true_type when all 8 n8 tiles hold real rows): mmas without branches.
  const auto compute_stage = [&](int step, int stage, auto all_live) {
    constexpr bool kAllLive = decltype(all_live)::value;
    const unsigned char* const base = shared + stage * Stage::kBytes;
    const auto* const x_tile = base;
    const auto* const code_tile = reinterpret_cast<const std::uint32_t*>(base + Stage::kXBytes);
    const auto* const pair_tile =
        reinterpret_cast<const std::uint32_t*>(base + Stage::kXBytes + Stage::kCodeBytes);
    const int k0 = step * kTileK;
    // Lane t's 16 codes (16t .. 16t + 15 of the step) are in one group: its scale and bias as
    // bf16x2 (the value twice) for rows g, g + 8 of m tiles 0, 1.
    const int group_in_step = ((k0 + 16 * t) >> group_shift) - (k0 >> group_shift);
    std::uint32_t scale[2][2], bias[2][2];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const std::uint32_t pair =
            pair_tile[(warp_out + 16 * i + 8 * h + g) * pairs + group_in_step];
        scale[i][h] = __byte_perm(pair, 0u, 0x1010);
        bias[i][h] = __byte_perm(pair, 0u, 0x3232);
      }
#pragma unroll
    for (int s = 0; s < kTileK / 16; ++s) {
      // B: ldmatrix lane l addresses row l % 8 of 8x8 matrix l / 8 (n 0-7 x k 0-7, k 8-15,
      // then n 8-15).
      std::uint32_t b[8][2];
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) {
        if (!kAllLive && 2 * jj >= live_tiles) break;
        const int r = warp_rows + 16 * jj + lane % 8 + 8 * (lane / 16);
        const int chunk = 2 * s + (lane / 8) % 2;
        std::uint32_t q[4];
        ldmatrix_x4(q, x_tile + r * 128 + ((chunk ^ (r & 7)) << 4));
        b[2 * jj][0] = q[0], b[2 * jj][1] = q[1], b[2 * jj + 1][0] = q[2], b[2 * jj + 1][1] = q[3];
      }
      // A: rows g / g + 8 of m tile i, logical k (2t, 2t + 1) and (2t + 8, 2t + 9).
      const int e = 2 * (s % 2);
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        std::uint32_t a[4];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          std::uint32_t low, high;
          lane_run<BITS>(code_tile + (warp_out + 16 * i + 8 * h + g) * Stage::kCodeStride, t, s / 2,
                         low, high);
          a[h] = fma_bf16x2(code_pair<BITS>(low, high, e), scale[i][h], bias[i][h]);
          a[2 + h] = fma_bf16x2(code_pair<BITS>(low, high, e + 1), scale[i][h], bias[i][h]);
        }
#pragma unroll
        for (int j = 0; j < 8; ++j)
          if (kAllLive || j < live_tiles) mma_bf16_16816(acc[i][j], a, b[j][0], b[j][1]);
      }
    }
  };

#pragma unroll
  for (int s = 0; s < kTileStages - 1; ++s) {
    if (s < steps) load_stage(s, s);
    cp_async_commit();
  }
  for (int step = 0; step < steps; ++step) {
    cp_async_wait<kTileStages - 2>();
    __syncthreads();  // step's stage is visible; the stage refilled below is no longer read
    const int next = step + kTileStages - 1;
    if (next < steps) load_stage(next, next % kTileStages);
    cp_async_commit();
    if (live_tiles == kWarpRows / 8)
      compute_stage(step, step % kTileStages, std::true_type{});
    else if (live_tiles > 0)
      compute_stage(step, step % kTileStages, std::false_type{});
  }

  // acc[i][j]: {weight row g, g + 8} x {activation row 2t, 2t + 1} of m-tile i, n-tile j.
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int o = out0 + warp_out + 16 * i + g + 8 * (k / 2);
        const int r = row0 + warp_rows + 8 * j + 2 * t + k % 2;
        if (o < out && r < rows) y[std::size_t(r) * out + o] = acc[i][j][k];
      }
}

// x [rows, in] (f32 or bf16) to bf16 [rows, in_padded] in the tiled kernel's k order
// (tile_physical_k within each 64-element step), zeros past `in`. One 16-byte chunk per thread.
// A template so that every file including this header may define it.
template <class XT>
__global__ void __launch_bounds__(256)
    tile_x_kernel(const XT* __restrict__ x, uint4* __restrict__ tiled, int in, int in_padded,
                  std::size_t chunks) {
  const std::size_t c = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= chunks) return;
  const std::size_t row = c / (in_padded / 8);
  const int k = static_cast<int>(c % (in_padded / 8)) * 8;  // logical position of element 0
  const int step0 = k / kTileK * kTileK;
  float v[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    const int physical = step0 + tile_physical_k(k % kTileK + e);
    v[e] = physical < in ? static_cast<float>(x[row * in + physical]) : 0.0f;
  }
  tiled[c] = make_uint4(pack_bf16x2(v[0], v[1]), pack_bf16x2(v[2], v[3]), pack_bf16x2(v[4], v[5]),
                        pack_bf16x2(v[6], v[7]));
}

// scale/bias pairs [step][out rounded up to 4][PAIRS] (PAIRS = 2 for group 32, else 1): for
// weight row o the bf16 (scale, bias) of elements 64 step + 32 p, zeros past `in`. A template
// (as tile_x_kernel) so that every file including this header may define it.
template <int PAIRS>
__global__ void __launch_bounds__(256)
    tile_scales_kernel(const std::uint16_t* __restrict__ scales,
                       const std::uint16_t* __restrict__ biases,
                       std::uint32_t* __restrict__ scale_bias, int out, int in, int group_shift,
                       std::size_t count) {
  const std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= count) return;
  const int out_stride = (out + 3) / 4 * 4;
  const int p = static_cast<int>(k % PAIRS), o = static_cast<int>(k / PAIRS % out_stride);
  const int element = static_cast<int>(k / PAIRS / out_stride) * kTileK + 32 * p;
  std::uint32_t pair = 0;
  if (o < out && element < in) {
    const std::size_t group = std::size_t(o) * (in >> group_shift) + (element >> group_shift);
    pair = __ldg(scales + group) | static_cast<std::uint32_t>(__ldg(biases + group)) << 16;
  }
  scale_bias[k] = pair;
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

template <int BITS, class XT>
void launch_affine_gemv_tiled(const GemvArgs& a, int group_size, const XT* x) {
  constexpr int kShared = TileStage<BITS>::kSharedBytes;
  const auto kernel = affine_gemv_tiled_kernel<BITS>;
  // The shared-memory limit is read off the device once per instantiation.
  static std::once_flag raised;
  std::call_once(raised, [&] {
    int device = 0, optin = 0;
    UQ_CUDA_CHECK(cudaGetDevice(&device));
    UQ_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    if (optin < kShared)
      fail("cuda affine gemv: the tiled kernel needs ", kShared,
           " bytes of shared memory per block, device ", device, " allows ", optin);
    UQ_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kShared));
  });
  const int in_padded = (a.in + kTileK - 1) / kTileK * kTileK;
  const std::size_t chunks = std::size_t(a.rows) * in_padded / 8;
  const StreamScratch x_tiled(chunks * sizeof(uint4), a.stream);
  tile_x_kernel<XT><<<static_cast<unsigned>((chunks + 255) / 256), 256, 0, a.stream>>>(
      x, static_cast<uint4*>(x_tiled.data()), a.in, in_padded, chunks);
  UQ_CUDA_CHECK_LAUNCH("tile_x_kernel");
  const int group_shift = group_size == 32 ? 5 : group_size == 64 ? 6 : 7;
  const std::size_t pairs =
      std::size_t(in_padded / kTileK) * ((a.out + 3) / 4 * 4) * (group_size == 32 ? 2 : 1);
  const StreamScratch scale_bias(pairs * 4, a.stream);
  const auto tile_scales = group_size == 32 ? tile_scales_kernel<2> : tile_scales_kernel<1>;
  tile_scales<<<static_cast<unsigned>((pairs + 255) / 256), 256, 0, a.stream>>>(
      a.scales, a.biases, static_cast<std::uint32_t*>(scale_bias.data()), a.out, a.in, group_shift,
      pairs);
  UQ_CUDA_CHECK_LAUNCH("tile_scales_kernel");
  const dim3 grid(static_cast<unsigned>((a.rows + kTileRows - 1) / kTileRows),
                  static_cast<unsigned>((a.out + kTileOut - 1) / kTileOut));
  kernel<<<grid, kTileThreads, kShared, a.stream>>>(
      a.codes, static_cast<const std::uint32_t*>(scale_bias.data()),
      static_cast<const __nv_bfloat16*>(x_tiled.data()), a.y, a.out, a.in, a.rows, group_shift);
  UQ_CUDA_CHECK_LAUNCH("affine_gemv_tiled_kernel");
}

}  // namespace uq::cuda::detail
