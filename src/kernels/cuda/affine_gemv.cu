#include "kernels/cuda/affine_gemv.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <type_traits>

#include "core/environment_switch.hpp"
#include "core/error.hpp"
#include "kernels/cuda/affine_gemv_kernel.cuh"
#include "kernels/cuda/affine_gemv_mma.cuh"
#include "kernels/cuda/affine_gemv_persistent.cuh"
#include "kernels/cuda/affine_gemv_segment.cuh"
#include "kernels/cuda/affine_gemv_stream.cuh"
#include "kernels/cuda/affine_gemv_stream_mma.cuh"
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
  extern template void launch_affine_gemv_persistent_bits<BITS>(const PersistentArgs&, int, int,  \
                                                                cudaStream_t);                    \
  extern template void launch_affine_gemv_stream_bits<BITS, float>(const StreamArgs<float>&, int, \
                                                                   cudaStream_t);                 \
  extern template void launch_affine_gemv_stream_bits<BITS, __nv_bfloat16>(                       \
      const StreamArgs<__nv_bfloat16>&, int, cudaStream_t);                                       \
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
#define UQ_EXTERN_AFFINE_GEMV_STREAM_MMA(BITS)                                                   \
  extern template void launch_affine_gemv_stream_mma_bits<BITS, float>(const StreamArgs<float>&, \
                                                                       int, cudaStream_t);       \
  extern template void launch_affine_gemv_stream_mma_bits<BITS, __nv_bfloat16>(                  \
      const StreamArgs<__nv_bfloat16>&, int, cudaStream_t);
UQ_EXTERN_AFFINE_GEMV_STREAM_MMA(2)
UQ_EXTERN_AFFINE_GEMV_STREAM_MMA(4)
UQ_EXTERN_AFFINE_GEMV_STREAM_MMA(8)
#undef UQ_EXTERN_AFFINE_GEMV_STREAM_MMA

}  // namespace detail

namespace {

// Which stream kernels a weight's shape allows.
struct Streams {
  bool simt, mma;
};

// Which kernel runs: automatic picks by rows and shape, from the measurements in
// docs/PERFORMANCE.md ("CUDA (H200)"): for 1-2 rows the tensor-core stream kernel where the
// weight's layout allows it (mma_stream_gemv_supported), else the stream kernel where it allows
// that (stream_gemv_supported), else the simt segment kernel where `in` is short against
// `out`, the persistent kernel where it is long (down_proj 4096x14336: its K split gives the
// short output enough warps, 30 vs 38 us); persistent for 3-16 rows; beyond, the tiled kernel,
// except for short outputs: its grid has out / 128 blocks per 128 rows, under ~64 of the 132
// SMs at out 4096, so there 16-row passes of the tensor-core kernel stay faster up to 64 rows
// (80.6 vs 102.6 us at 4096x4096, 64 rows).
GemvKernel resolve(GemvKernel kernel, int rows, int out, int in, Streams streams) {
  if (kernel == GemvKernel::automatic) {
    if (rows <= 2 && streams.mma) return GemvKernel::stream_mma;
    if (rows <= 2 && streams.simt) return GemvKernel::stream;
  }
  // Forced where its shape does not suit it, a stream kernel falls back to the next one.
  if (kernel == GemvKernel::stream_mma && !streams.mma) kernel = GemvKernel::stream;
  if (kernel == GemvKernel::stream && !streams.simt) kernel = GemvKernel::simt;
  if (kernel != GemvKernel::automatic) return kernel;
  if (rows <= 2) {
    return in >= 2 * out ? GemvKernel::persistent : GemvKernel::simt;
  }
  if (rows <= detail::kMaxRows) return GemvKernel::persistent;
  if (rows <= 64 && out < 8192) return GemvKernel::tensor_cores;
  return GemvKernel::tiled;
}

bool stream_supported(int in, int bits, int group_size) {
  using namespace detail;
  return in <= kStreamMaxWarps * kStreamSlice && static_cast<long long>(in) * bits % 128 == 0 &&
         (in / group_size) % 2 == 0 &&
         stream_shared_bytes(bits, group_size, in, 2, 1) <= current_device_shared_memory_optin();
}

bool mma_stream_supported(int in, int bits, int group_size) {
  using namespace detail;
  return mma_stream_width(bits, group_size) && in % kMmaStreamSlice == 0 &&
         in <= kMmaStreamMaxPasses * kMmaStreamMaxWarps * kMmaStreamSlice &&
         mma_stream_shared_bytes(bits, group_size, in, 2) <= current_device_shared_memory_optin();
}

// The stream kernels `mode` can run on: the tensor-core one fuses RMSNorm in one pass only.
Streams streams_of(int in, int bits, int group_size, GemvInputMode mode = GemvInputMode::plain) {
  const bool one_pass = in <= detail::kMmaStreamMaxWarps * detail::kMmaStreamSlice;
  return {stream_supported(in, bits, group_size), mma_stream_supported(in, bits, group_size) &&
                                                      (mode != GemvInputMode::rmsnorm || one_pass)};
}

// f(std::integral_constant<int, BITS>{}) for the weight's width: every kernel is instantiated
// per width.
template <class F>
void with_bits(const AffineDeviceWeight& w, F&& f) {
  switch (w.bits()) {
    case 2:
      return f(std::integral_constant<int, 2>{});
    case 3:
      return f(std::integral_constant<int, 3>{});
    case 4:
      return f(std::integral_constant<int, 4>{});
    case 5:
      return f(std::integral_constant<int, 5>{});
    case 6:
      return f(std::integral_constant<int, 6>{});
    case 8:
      return f(std::integral_constant<int, 8>{});
    default:
      fail("cuda affine gemv '", w.name(), "': bits ", w.bits(), " not supported");
  }
}

// 1-2 rows of a stream kernel (stream or stream_mma).
template <class XT>
void stream_pass(const AffineDeviceWeight& w, detail::StreamArgs<XT> args, GemvKernel kernel,
                 cudaStream_t stream) {
  args.codes = w.codes();
  args.scales = w.scales();
  args.biases = w.biases();
  args.out = w.out();
  args.in = w.in();
  with_bits(w, [&](auto width) {
    constexpr int kBits = decltype(width)::value;
    if constexpr (detail::mma_stream_bits(kBits)) {
      if (kernel == GemvKernel::stream_mma)
        return detail::launch_affine_gemv_stream_mma_bits<kBits>(args, w.group_size(), stream);
    }
    detail::launch_affine_gemv_stream_bits<kBits>(args, w.group_size(), stream);
  });
}

// B columns of the persistent kernel: bf16 parts per x row and n-tiles of 8 columns.
struct PersistentLayout {
  int parts, tiles;
};
PersistentLayout persistent_layout(int rows, bool bf16_x) {
  if (bf16_x) return {1, rows <= 8 ? 1 : 2};
  if (rows <= 2) return {3, 1};  // exact: the columns are free up to 8
  if (rows <= 4) return {2, 1};
  return {2, rows <= 8 ? 2 : 4};
}

// One pass (rows <= 16) of the persistent kernel: prologue into the caller's scratch (or
// stream-ordered memory), then the main kernel (PDL).
template <class XT>
void persistent_pass(const AffineDeviceWeight& w, detail::FragmentArgs<XT> fragments, float* y,
                     cudaStream_t stream, bool accumulate, GemvScratch* owned) {
  const PersistentLayout layout =
      persistent_layout(fragments.rows, std::is_same_v<XT, __nv_bfloat16>);
  const int bits = w.bits();
  fragments.in = w.in();
  fragments.group = w.group_size();
  fragments.parts = layout.parts;
  fragments.tiles = layout.tiles;
  fragments.code_run = (bits == 2 || bits == 4) ? 8 : bits == 8 ? 4 : 0;
  fragments.stream = stream;
  const std::size_t fragment_bytes = detail::fragment_bytes(w.in(), layout.tiles);
  const std::size_t sums = detail::sum_count(w.in(), w.group_size(), layout.tiles);
  const std::size_t bytes = fragment_bytes + sums * sizeof(float);
  void* memory = owned != nullptr ? owned->acquire(bytes, stream) : nullptr;
  std::optional<detail::StreamScratch> stream_ordered;
  if (memory == nullptr) memory = stream_ordered.emplace(bytes, stream).data();
  fragments.fragments = static_cast<uint4*>(memory);
  fragments.sums = reinterpret_cast<float*>(static_cast<char*>(memory) + fragment_bytes);
  detail::launch_affine_gemv_fragments(fragments);
  const detail::PersistentArgs args{
      w.codes(), w.scales(), w.biases(), fragments.fragments, fragments.sums,
      y,         w.out(),    w.in(),     fragments.rows,      layout.parts,
      1,         accumulate};
  with_bits(w, [&](auto width) {
    detail::launch_affine_gemv_persistent_bits<decltype(width)::value>(args, w.group_size(),
                                                                       layout.tiles, stream);
  });
}

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
              GemvKernel kernel, bool accumulate, GemvScratch* scratch) {
  if (rows < 0) fail("cuda affine gemv '", w.name(), "': rows ", rows, " is negative");
  if (rows == 0) return;
  if (x == nullptr || y == nullptr) fail("cuda affine gemv '", w.name(), "': null x or y");
  if (reinterpret_cast<std::uintptr_t>(x) % 16 != 0)
    fail("cuda affine gemv '", w.name(), "': x must be 16-byte aligned");
  kernel = resolve(kernel, rows, w.out(), w.in(), streams_of(w.in(), w.bits(), w.group_size()));
  if (accumulate && !gemv_kernel_accumulates(kernel, rows)) {
    fail("cuda affine gemv '", w.name(),
         "': accumulating is for the persistent kernel or 1-2 rows on the simt kernel");
  }
  if (is_stream_gemv_kernel(kernel)) {
    for (int done = 0; done < rows; done += 2) {
      detail::StreamArgs<XT> args{};
      args.input = x + static_cast<std::size_t>(done) * w.in();
      args.y = y + static_cast<std::size_t>(done) * w.out();
      args.rows = std::min(2, rows - done);
      args.accumulate = accumulate;
      stream_pass(w, args, kernel, stream);
    }
    return;
  }
  if (kernel == GemvKernel::persistent) {
    for (int done = 0; done < rows; done += detail::kMaxRows) {
      detail::FragmentArgs<XT> fragments{};
      fragments.input = x + static_cast<std::size_t>(done) * w.in();
      fragments.rows = std::min(detail::kMaxRows, rows - done);
      persistent_pass(w, fragments, y + static_cast<std::size_t>(done) * w.out(), stream,
                      accumulate, scratch);
    }
    return;
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
    with_bits(w, [&](auto width) {
      launch_bits<decltype(width)::value>(kernel, args, w.group_size(), x_part);
    });
  }
}

}  // namespace

void affine_gemv_cuda(const AffineDeviceWeight& w, const float* x_dev, int rows, float* y_dev,
                      cudaStream_t stream, GemvKernel kernel, bool accumulate,
                      GemvScratch* scratch) {
  dispatch(w, x_dev, rows, y_dev, stream, kernel, accumulate, scratch);
}

void affine_gemv_cuda(const AffineDeviceWeight& w, const __nv_bfloat16* x_dev, int rows,
                      float* y_dev, cudaStream_t stream, GemvKernel kernel, bool accumulate,
                      GemvScratch* scratch) {
  dispatch(w, x_dev, rows, y_dev, stream, kernel, accumulate, scratch);
}

bool stream_gemv_supported(const AffineDeviceWeight& w) {
  return stream_supported(w.in(), w.bits(), w.group_size());
}

namespace {
EnvironmentSwitch& pass_split_switch() {
  static EnvironmentSwitch on("UQ_GEMV_PASS_SPLIT", true);
  return on;
}
}  // namespace

bool mma_stream_pass_split_enabled() {
  return pass_split_switch().on();
}

void set_mma_stream_pass_split_enabled(bool enabled) {
  pass_split_switch().set(enabled);
}

bool mma_stream_gemv_supported(const AffineDeviceWeight& w) {
  return mma_stream_supported(w.in(), w.bits(), w.group_size());
}

GemvKernel automatic_gemv_kernel(int rows, int out, int in, int bits, int group_size) {
  return resolve(GemvKernel::automatic, rows, out, in, streams_of(in, bits, group_size));
}

bool is_stream_gemv_kernel(GemvKernel kernel) {
  return kernel == GemvKernel::stream || kernel == GemvKernel::stream_mma;
}

bool gemv_kernel_accumulates(GemvKernel kernel, int rows) {
  return kernel == GemvKernel::persistent || is_stream_gemv_kernel(kernel) ||
         (kernel == GemvKernel::simt && rows <= 2);
}

void affine_gemv_fused_cuda(const AffineDeviceWeight& w, const float* input, int rows, float* y_dev,
                            cudaStream_t stream, const GemvInput& how, bool accumulate,
                            GemvScratch* scratch, GemvKernel kernel) {
  if (rows < 1 || rows > detail::kMaxRows)
    fail("cuda affine gemv '", w.name(), "': the fused input modes take 1..", detail::kMaxRows,
         " rows, not ", rows);
  if (input == nullptr || y_dev == nullptr) fail("cuda affine gemv '", w.name(), "': null x or y");
  if (how.mode == GemvInputMode::rmsnorm && how.gamma == nullptr)
    fail("cuda affine gemv '", w.name(), "': rmsnorm needs its weight (gamma)");
  kernel = resolve(kernel, rows, w.out(), w.in(),
                   streams_of(w.in(), w.bits(), w.group_size(), how.mode));
  if (is_stream_gemv_kernel(kernel) && rows <= 2) {
    detail::StreamArgs<float> args{};
    args.input = input;
    args.gamma = how.gamma;
    args.eps = how.eps;
    args.mode = how.mode;
    args.y = y_dev;
    args.rows = rows;
    args.accumulate = accumulate;
    return stream_pass(w, args, kernel, stream);
  }
  detail::FragmentArgs<float> fragments{};
  fragments.input = input;
  fragments.gamma = how.gamma;
  fragments.eps = how.eps;
  fragments.mode = how.mode == GemvInputMode::rmsnorm  ? detail::FragmentMode::rmsnorm
                   : how.mode == GemvInputMode::swiglu ? detail::FragmentMode::swiglu
                                                       : detail::FragmentMode::plain;
  fragments.rows = rows;
  persistent_pass(w, fragments, y_dev, stream, accumulate, scratch);
}

}  // namespace uq::cuda
