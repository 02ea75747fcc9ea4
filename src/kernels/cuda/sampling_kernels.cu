#include <algorithm>
#include <climits>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

#include "core/error.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/sampling_kernels.hpp"

namespace uq::cuda {
namespace {

constexpr int kThreads = 256;  // row passes: blocks of kThreads, kItems logits per thread
constexpr int kItems = 4;
constexpr int kMaxBlocks = 256;
constexpr int kChooseThreads = 1024;  // the single block that scans the sorted row
constexpr int kChooseItems = 4;       // per thread and chunk: chunks of 4096 candidates

int row_blocks(int vocab) {
  return std::clamp((vocab + kThreads * kItems - 1) / (kThreads * kItems), 1, kMaxBlocks);
}

struct Slice {
  int begin;
  int end;
};
__device__ Slice block_slice(int count) {
  const int slice = (count + static_cast<int>(gridDim.x) - 1) / static_cast<int>(gridDim.x);
  const int begin = static_cast<int>(blockIdx.x) * slice;
  return {begin, min(count, begin + slice)};
}

struct Larger {
  __device__ float operator()(float a, float b) const { return b > a ? b : a; }
};

// Unsigned keys in the order of the floats; -0 is keyed as +0 (the CPU compares them equal).
__device__ unsigned ordered_key(float value) {
  if (value == 0.0f) value = 0.0f;
  const unsigned bits = __float_as_uint(value);
  return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}

__global__ void __launch_bounds__(kThreads)
    row_max_kernel(const float* logits, int vocab, float* partial_max) {
  using Reduce = cub::BlockReduce<float, kThreads>;
  __shared__ typename Reduce::TempStorage storage;
  const Slice slice = block_slice(vocab);
  float best = -INFINITY;
  for (int i = slice.begin + static_cast<int>(threadIdx.x); i < slice.end; i += kThreads) {
    best = Larger{}(best, logits[i]);
  }
  best = Reduce(storage).Reduce(best, Larger{});
  if (threadIdx.x == 0) partial_max[blockIdx.x] = best;
}

// keys[i] orders token i as the CPU's stable sort does ((logit - max) / temperature, or the
// logit itself when greedy), order[i] = i, exps[i] = exp of the scaled logit rounded to float
// (through double: the correctly rounded float, as glibc's expf gives), and each block's sum
// of its exps in double.
__global__ void __launch_bounds__(kThreads)
    scale_kernel(const float* logits, int vocab, const SamplingParameters* parameters,
                 const float* partial_max, int blocks, unsigned* keys, int* order, float* exps,
                 double* partial_total) {
  using Reduce = cub::BlockReduce<double, kThreads>;
  __shared__ typename Reduce::TempStorage storage;
  __shared__ float row_max;
  if (threadIdx.x == 0) {
    float best = -INFINITY;
    for (int b = 0; b < blocks; ++b) best = Larger{}(best, partial_max[b]);
    row_max = best;
  }
  __syncthreads();
  const float temperature = parameters->temperature;
  const Slice slice = block_slice(vocab);
  double total = 0.0;
  for (int i = slice.begin + static_cast<int>(threadIdx.x); i < slice.end; i += kThreads) {
    const float logit = logits[i];
    if (temperature == 0.0f) {
      keys[i] = ordered_key(logit);
      exps[i] = 0.0f;
    } else {
      const float value = (logit - row_max) / temperature;
      const auto e = static_cast<float>(exp(static_cast<double>(value)));
      keys[i] = ordered_key(value);
      exps[i] = e;
      total += e;
    }
    order[i] = i;
  }
  total = Reduce(storage).Sum(total);
  if (threadIdx.x == 0) partial_total[blockIdx.x] = total;
}

struct ChooseShared {
  union {
    cub::BlockScan<double, kChooseThreads>::TempStorage scan;
    cub::BlockReduce<double, kChooseThreads>::TempStorage reduce;
  };
  double total;
  double found_sum;
  int found;
};

// The first j in [0, count) whose running sum of value(0..j) satisfies reached(sum), or -1;
// *sum_at = that running sum (the whole sum when none reaches). Chunks of
// kChooseThreads * kChooseItems, stopping at the chunk where the sum is reached.
template <class Value, class Reached>
__device__ int first_reaching(int count, const Value& value, const Reached& reached, double* sum_at,
                              ChooseShared& shared) {
  using Scan = cub::BlockScan<double, kChooseThreads>;
  double carry = 0.0;
  for (int base = 0; base < count; base += kChooseThreads * kChooseItems) {
    const int first = base + static_cast<int>(threadIdx.x) * kChooseItems;
    double sums[kChooseItems];
    double running = 0.0;
    for (int s = 0; s < kChooseItems; ++s) {
      if (first + s < count) running += value(first + s);
      sums[s] = running;
    }
    double before = 0.0;
    double chunk_total = 0.0;
    Scan(shared.scan).ExclusiveSum(running, before, chunk_total);
    if (threadIdx.x == 0) shared.found = INT_MAX;
    __syncthreads();
    int mine = INT_MAX;
    double mine_sum = 0.0;
    for (int s = 0; s < kChooseItems && first + s < count; ++s) {
      const double sum = carry + before + sums[s];
      if (reached(sum)) {
        mine = first + s;
        mine_sum = sum;
        break;
      }
    }
    if (mine != INT_MAX) atomicMin(&shared.found, mine);
    __syncthreads();
    if (mine != INT_MAX && mine == shared.found) shared.found_sum = mine_sum;
    __syncthreads();
    const int found = shared.found;
    const double found_sum = shared.found_sum;
    __syncthreads();  // shared is rewritten by the next chunk
    if (found != INT_MAX) {
      *sum_at = found_sum;
      return found;
    }
    carry += chunk_total;
  }
  *sum_at = carry;
  return -1;
}

// One block over the tokens sorted most likely first (order): the CPU sampler's arithmetic —
// total of the top-k exps, float probabilities, the top-p cut where their running double sum
// first reaches top_p, renormalised float probabilities, and the first whose running sum
// exceeds the draw.
__global__ void __launch_bounds__(kChooseThreads)
    choose_kernel(const int* order, const float* exps, const double* partial_total, int blocks,
                  int vocab, const SamplingParameters* parameters, std::int32_t* result) {
  __shared__ ChooseShared shared;
  const SamplingParameters p = *parameters;
  if (p.temperature == 0.0f) {
    if (threadIdx.x == 0) *result = order[0];
    return;
  }
  const int count = p.top_k > 0 && p.top_k < vocab ? p.top_k : vocab;
  double total = 0.0;
  if (count == vocab) {
    for (int b = static_cast<int>(threadIdx.x); b < blocks; b += kChooseThreads) {
      total += partial_total[b];
    }
  } else {
    for (int j = static_cast<int>(threadIdx.x); j < count; j += kChooseThreads) {
      total += exps[order[j]];
    }
  }
  total = cub::BlockReduce<double, kChooseThreads>(shared.reduce).Sum(total);
  if (threadIdx.x == 0) shared.total = total;
  __syncthreads();
  total = shared.total;
  __syncthreads();
  const auto probability = [&](int j) {
    return static_cast<float>(static_cast<double>(exps[order[j]]) / total);
  };
  double kept_mass = 0.0;
  const int last_kept = first_reaching(
      count, [&](int j) { return static_cast<double>(probability(j)); },
      [&](double sum) { return sum >= static_cast<double>(p.top_p); }, &kept_mass, shared);
  const int kept = last_kept < 0 ? count : last_kept + 1;
  double reached_sum = 0.0;
  const int pick = first_reaching(
      kept,
      [&](int j) {
        return static_cast<double>(
            static_cast<float>(static_cast<double>(probability(j)) / kept_mass));
      },
      [&](double sum) { return p.draw < sum; }, &reached_sum, shared);
  if (threadIdx.x == 0) *result = order[pick < 0 ? kept - 1 : pick];
}

std::size_t aligned(std::size_t bytes) {
  return (bytes + 255) / 256 * 256;
}

// Byte offsets of the workspace's parts.
struct Layout {
  std::size_t keys_in, keys_out, order_in, order_out, exps, partial_max, partial_total, sort;
  std::size_t sort_bytes, total;
};

Layout layout(int vocab) {
  std::size_t sort_bytes = 0;
  UQ_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(
      nullptr, sort_bytes, static_cast<const unsigned*>(nullptr), static_cast<unsigned*>(nullptr),
      static_cast<const int*>(nullptr), static_cast<int*>(nullptr), vocab));
  const std::size_t row = aligned(static_cast<std::size_t>(vocab) * 4);
  Layout parts{};
  std::size_t at = 0;
  const auto take = [&at](std::size_t bytes) {
    const std::size_t offset = at;
    at += aligned(bytes);
    return offset;
  };
  parts.keys_in = take(row);
  parts.keys_out = take(row);
  parts.order_in = take(row);
  parts.order_out = take(row);
  parts.exps = take(row);
  parts.partial_max = take(kMaxBlocks * sizeof(float));
  parts.partial_total = take(kMaxBlocks * sizeof(double));
  parts.sort = take(sort_bytes);
  parts.sort_bytes = sort_bytes;
  parts.total = at;
  return parts;
}

}  // namespace

std::size_t sampling_workspace_bytes(int vocab) {
  if (vocab < 1) fail("cuda sampling: vocabulary of ", vocab, " tokens");
  return layout(vocab).total;
}

void sample_token(const float* logits, int vocab, const SamplingParameters* parameters,
                  void* workspace, std::size_t workspace_bytes, std::int32_t* result,
                  cudaStream_t stream) {
  if (vocab < 1) fail("cuda sampling: vocabulary of ", vocab, " tokens");
  const Layout parts = layout(vocab);
  if (workspace_bytes < parts.total) {
    fail("cuda sampling: workspace of ", workspace_bytes, " bytes, ", parts.total, " needed");
  }
  auto* base = static_cast<unsigned char*>(workspace);
  auto* keys_in = reinterpret_cast<unsigned*>(base + parts.keys_in);
  auto* keys_out = reinterpret_cast<unsigned*>(base + parts.keys_out);
  auto* order_in = reinterpret_cast<int*>(base + parts.order_in);
  auto* order_out = reinterpret_cast<int*>(base + parts.order_out);
  auto* exps = reinterpret_cast<float*>(base + parts.exps);
  auto* partial_max = reinterpret_cast<float*>(base + parts.partial_max);
  auto* partial_total = reinterpret_cast<double*>(base + parts.partial_total);
  const int blocks = row_blocks(vocab);
  row_max_kernel<<<blocks, kThreads, 0, stream>>>(logits, vocab, partial_max);
  UQ_CUDA_CHECK_LAUNCH("row_max_kernel");
  scale_kernel<<<blocks, kThreads, 0, stream>>>(logits, vocab, parameters, partial_max, blocks,
                                                keys_in, order_in, exps, partial_total);
  UQ_CUDA_CHECK_LAUNCH("scale_kernel");
  // Radix sort is stable: equal keys keep index order, as the CPU's stable_sort does.
  std::size_t sort_bytes = parts.sort_bytes;
  UQ_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(
      base + parts.sort, sort_bytes, keys_in, keys_out, order_in, order_out, vocab, 0, 32, stream));
  choose_kernel<<<1, kChooseThreads, 0, stream>>>(order_out, exps, partial_total, blocks, vocab,
                                                  parameters, result);
  UQ_CUDA_CHECK_LAUNCH("choose_kernel");
}

}  // namespace uq::cuda
