// The CUDA decoder stages (kernels/cuda/decoder_kernels.hpp, device_linear.hpp) against CPU
// references on fresh random inputs, outputs and unwritten cache positions poisoned (NaN bytes)
// before each launch, odd sizes included. Bounds: fp32 arithmetic on both sides gives relative L2
// errors near 1e-7..1e-6; attention and products are checked at 1e-5 against float64, linears with
// bf16-split inputs at 1e-4 (16 significant bits of x). A wrong index or an unwritten element is
// O(1).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.hpp"
#include "kernels/cuda/affine_gemv.hpp"
#include "kernels/cuda/bf16_gemv.hpp"
#include "kernels/cuda/cuda_graph.hpp"
#include "kernels/cuda/cuda_model.hpp"
#include "kernels/cuda/decoder_kernels.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/device_linear.hpp"
#include "kernels/cuda/pdl_launch.hpp"
#include "kernels/cuda/stream.hpp"
#include "model/float_weight.hpp"
#include "model/rms_norm.hpp"
#include "model/rope.hpp"
#include "quant/affine_weight.hpp"

namespace {

using uq::cuda::DeviceBuffer;
using uq::cuda::GemvKernel;

class CudaDecoderKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (uq::cuda::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
  }
  std::mt19937 random_{std::random_device{}()};

  std::vector<float> normal(std::size_t count, float sigma = 1.0f) {
    std::normal_distribution<float> draw(0.0f, sigma);
    std::vector<float> values(count);
    for (auto& v : values) v = draw(random_);
    return values;
  }
};

template <class T>
DeviceBuffer<T> to_device(const std::vector<T>& host) {
  DeviceBuffer<T> buffer(host.size());
  buffer.upload(host);
  return buffer;
}

std::vector<float> from_device(const DeviceBuffer<float>& buffer) {
  std::vector<float> host(buffer.size());
  buffer.download(host);
  return host;
}

DeviceBuffer<float> poisoned(std::size_t count) {
  DeviceBuffer<float> buffer(count);
  buffer.fill_bytes(0xff);  // NaN
  return buffer;
}

template <class A, class B>
double relative_l2(const std::vector<A>& got, const std::vector<B>& want) {
  double error = 0.0;
  double norm = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double g = static_cast<double>(got[i]);
    if (!std::isfinite(g)) return std::numeric_limits<double>::infinity();
    error += (g - static_cast<double>(want[i])) * (g - static_cast<double>(want[i]));
    norm += static_cast<double>(want[i]) * static_cast<double>(want[i]);
  }
  return std::sqrt(error / norm);
}

// Copies and fills of DeviceBuffer go through the default stream, which the tests' non-blocking
// streams do not wait for: done before a launch reads them.
void settle() {
  UQ_CUDA_CHECK(cudaDeviceSynchronize());
}

// A llama3-scaled rope (Llama 3.1's constants) with heads of head_dim.
uq::ModelConfig llama3_rope_config(int head_dim) {
  uq::ModelConfig config;
  config.head_dim = head_dim;
  config.rope_theta = 500000.0;
  config.rope_scaling.kind = uq::RopeScaling::Kind::Llama3;
  config.rope_scaling.factor = 8.0;
  config.rope_scaling.low_freq_factor = 1.0;
  config.rope_scaling.high_freq_factor = 4.0;
  config.rope_scaling.original_max_position_embeddings = 8192;
  return config;
}

struct AttentionCase {
  int heads, kv_heads, head_dim, count, first_position, window;
};

// One rope_attention call's inputs on the host and on the device: q|k|v rows (wider than
// q|k|v, as in the decoder), a cache of `capacity` positions holding random keys and values
// before first_position and NaN from there on, RoPE frequencies of a llama3-scaled rope.
struct AttentionInputs {
  AttentionInputs(const AttentionCase& c, int capacity, std::mt19937& random)
      : shape{c.heads, c.kv_heads, c.head_dim, c.window},
        count(c.count),
        first_position(c.first_position),
        q_width(c.heads * c.head_dim),
        kv_width(c.kv_heads * c.head_dim),
        stride(q_width + 2 * kv_width + 13),
        rope(llama3_rope_config(c.head_dim)) {
    std::normal_distribution<float> draw(0.0f, 1.0f);
    const auto fill = [&](std::vector<float>& target, std::size_t size) {
      target.resize(size);
      for (auto& v : target) v = draw(random);
    };
    fill(qkv, static_cast<std::size_t>(count) * stride);
    fill(keys, static_cast<std::size_t>(capacity) * kv_width);
    fill(values, static_cast<std::size_t>(capacity) * kv_width);
    for (std::size_t i = static_cast<std::size_t>(first_position) * kv_width; i < keys.size();
         ++i) {
      keys[i] = std::numeric_limits<float>::quiet_NaN();
      values[i] = std::numeric_limits<float>::quiet_NaN();
    }
    qkv_dev = to_device(qkv);
    k_cache = to_device(keys);
    v_cache = to_device(values);
    frequencies = to_device(rope.inverse_frequencies());
    position = to_device(std::vector<int>{first_position});
    settle();
  }

  void run(int max_keys, float* workspace, float* out, cudaStream_t stream) {
    uq::cuda::rope_attention(qkv_dev.data(), count, stride, frequencies.data(), position.data(),
                             max_keys, k_cache.data(), v_cache.data(), shape, workspace, out,
                             stream);
  }

  // The rows' keys rotated by uq::Rope, [count][kv_width].
  std::vector<float> rotated_new_keys() const {
    std::vector<float> k(static_cast<std::size_t>(count) * kv_width);
    for (int r = 0; r < count; ++r)
      std::copy_n(qkv.begin() + r * stride + q_width, kv_width, k.begin() + r * kv_width);
    rope.apply(k.data(), count, shape.kv_heads, first_position);
    return k;
  }

  // softmax(q k^T / sqrt(head_dim)) v in float64 from the CPU-rotated queries and keys.
  std::vector<double> expected() const {
    std::vector<float> q(static_cast<std::size_t>(count) * q_width);
    for (int r = 0; r < count; ++r)
      std::copy_n(qkv.begin() + r * stride, q_width, q.begin() + r * q_width);
    rope.apply(q.data(), count, shape.heads, first_position);
    const auto new_keys = rotated_new_keys();
    const int head_dim = shape.head_dim;
    const auto key = [&](int p, int g, int d) -> double {
      return p < first_position ? keys[static_cast<std::size_t>(p) * kv_width + g * head_dim + d]
                                : new_keys[(p - first_position) * kv_width + g * head_dim + d];
    };
    const auto value = [&](int p, int g, int d) -> double {
      return p < first_position
                 ? values[static_cast<std::size_t>(p) * kv_width + g * head_dim + d]
                 : qkv[(p - first_position) * stride + q_width + kv_width + g * head_dim + d];
    };
    std::vector<double> want(static_cast<std::size_t>(count) * q_width);
    const int group = shape.heads / shape.kv_heads;
    const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
    for (int r = 0; r < count; ++r) {
      const int p = first_position + r;
      const int first = shape.sliding_window > 0 ? std::max(0, p - shape.sliding_window + 1) : 0;
      for (int h = 0; h < shape.heads; ++h) {
        const int g = h / group;
        std::vector<double> scores;
        double top = -1e300;
        for (int k = first; k <= p; ++k) {
          double dot = 0.0;
          for (int d = 0; d < head_dim; ++d)
            dot += double(q[r * q_width + h * head_dim + d]) * key(k, g, d);
          scores.push_back(dot * scale);
          top = std::max(top, dot * scale);
        }
        double total = 0.0;
        for (auto& s : scores) total += (s = std::exp(s - top));
        for (int d = 0; d < head_dim; ++d) {
          double sum = 0.0;
          for (int k = first; k <= p; ++k) sum += scores[k - first] * value(k, g, d);
          want[r * q_width + h * head_dim + d] = sum / total;
        }
      }
    }
    return want;
  }

  // The cache after the call: unchanged before first_position, the rows' rotated keys and
  // their values at their positions, NaN (untouched) after them.
  void expect_cache_stored() const {
    const auto got_keys = from_device(k_cache);
    const auto got_values = from_device(v_cache);
    const auto new_keys = rotated_new_keys();
    for (std::size_t slot = 0; slot < keys.size(); ++slot) {
      const auto p = static_cast<int>(slot / kv_width);
      const auto i = static_cast<int>(slot % kv_width);
      if (p < first_position) {
        ASSERT_EQ(got_keys[slot], keys[slot]) << p;
        ASSERT_EQ(got_values[slot], values[slot]) << p;
      } else if (p < first_position + count) {
        const int r = p - first_position;
        const float want_key = new_keys[r * kv_width + i];
        ASSERT_NEAR(got_keys[slot], want_key, 1e-5f * (1.0f + std::fabs(want_key))) << p;
        ASSERT_EQ(got_values[slot], qkv[r * stride + q_width + kv_width + i]) << p;
      } else {
        ASSERT_TRUE(std::isnan(got_keys[slot]) && std::isnan(got_values[slot])) << p;
      }
    }
  }

  uq::cuda::AttentionShape shape;
  int count, first_position, q_width, kv_width, stride;
  uq::Rope rope;
  std::vector<float> qkv, keys, values;
  DeviceBuffer<float> qkv_dev, k_cache, v_cache, frequencies;
  DeviceBuffer<int> position;
};

// A zeroed attention workspace (its counters must start at zero).
DeviceBuffer<float> attention_workspace(const uq::cuda::AttentionShape& shape, int count,
                                        int max_keys) {
  DeviceBuffer<float> workspace(
      std::max<std::size_t>(1, uq::cuda::attention_workspace_floats(shape, count, max_keys)));
  workspace.fill_bytes(0);
  settle();
  return workspace;
}

TEST_F(CudaDecoderKernels, RopeAttentionMatchesFloat64Reference) {
  // Decode (count < 8, one kernel): every head_dim from 32 to 256 in steps of 32, GQA groups
  // 1..16 (several chunks of query heads where a block holds fewer), 0 to 4600 cached keys,
  // new rows straddling a split (32 keys at head_dim 128), sliding windows that start mid-split,
  // on a split boundary, cover exactly the keys, or hold one key. Prompts: RoPE + KV store, then
  // the tiled kernel.
  const AttentionCase cases[] = {
      {8, 4, 32, 1, 0, 0},       {8, 4, 32, 1, 700, 0},    {4, 1, 64, 3, 37, 0},
      {32, 8, 128, 1, 300, 0},   {8, 2, 128, 7, 513, 0},   {8, 4, 32, 37, 0, 0},
      {4, 2, 64, 100, 29, 0},    {8, 8, 128, 70, 0, 0},    {2, 1, 96, 45, 11, 0},
      {8, 4, 64, 33, 40, 20},    {8, 4, 64, 1, 600, 50},   {4, 4, 256, 19, 5, 0},
      {32, 8, 128, 1, 2047, 0},  {32, 8, 128, 2, 4600, 0}, {24, 3, 160, 1, 1000, 0},
      {14, 2, 192, 1, 333, 0},   {40, 5, 224, 2, 777, 0},  {16, 16, 256, 1, 1500, 0},
      {16, 2, 64, 1, 95, 0},     {32, 2, 32, 3, 1300, 0},  {6, 6, 96, 1, 31, 0},
      {8, 1, 128, 1, 2500, 700}, {8, 2, 256, 4, 900, 333}, {4, 2, 128, 1, 1, 0},
      {32, 8, 128, 1, 0, 0},     {32, 8, 128, 3, 0, 0},    {32, 8, 128, 1, 512, 0},
      {32, 8, 128, 1, 2048, 0},  {32, 8, 128, 1, 4600, 0}, {32, 8, 128, 3, 30, 0},
      {32, 8, 128, 7, 60, 0},    {16, 1, 128, 1, 200, 0},  {8, 4, 128, 1, 100, 32},
      {8, 4, 128, 2, 63, 64},    {8, 4, 128, 1, 500, 1},   {8, 2, 64, 5, 40, 3},
      {12, 4, 96, 2, 79, 40},    {10, 2, 160, 1, 47, 0},   {64, 8, 128, 1, 1000, 0}};
  uq::cuda::Stream stream;
  for (const auto& c : cases) {
    SCOPED_TRACE(::testing::Message()
                 << "heads " << c.heads << "/" << c.kv_heads << " dim " << c.head_dim << " count "
                 << c.count << " first " << c.first_position << " window " << c.window);
    // Decode-sized calls bound the keys above what is stored, as a replayed CUDA graph does:
    // the splits past the last key must contribute nothing.
    const int keys = c.first_position + c.count;
    const int max_keys = c.count < 8 ? keys + 300 : keys;
    AttentionInputs inputs(c, max_keys, random_);
    auto workspace = attention_workspace(inputs.shape, c.count, max_keys);
    auto out = poisoned(static_cast<std::size_t>(c.count) * inputs.q_width);
    settle();
    inputs.run(max_keys, workspace.data(), out.data(), stream.get());
    stream.synchronize();
    EXPECT_LT(relative_l2(from_device(out), inputs.expected()), 1e-5);
    inputs.expect_cache_stored();
    if (c.count < 8) {
      // Again on the same workspace (the decode kernel's counters must be back at zero) and
      // the cache as the call left it: the same bits.
      const auto first = from_device(out);
      out.fill_bytes(0xff);
      settle();
      inputs.run(max_keys, workspace.data(), out.data(), stream.get());
      stream.synchronize();
      EXPECT_EQ(from_device(out), first);
    }
  }
}

// The decode step as the decoder replays it: one graph captured at one position, replayed at
// others (earlier and later, cache bound at its capacity), several times in a row without a
// synchronization between (each replay must find the per-head counters reset by the one
// before: out is poisoned before each, so a replay that never combines leaves NaN). Every
// replay equals the eager call bit for bit, with programmatic launch on and off.
TEST_F(CudaDecoderKernels, RopeAttentionGraphReplaysResetTheirCounters) {
  uq::cuda::Stream stream;
  const int capacity = 2304;
  for (const bool pdl : {true, false}) {
    SCOPED_TRACE(::testing::Message() << "pdl " << pdl);
    uq::cuda::set_programmatic_launch_enabled(pdl);
    AttentionInputs inputs(AttentionCase{32, 8, 128, 1, 2200, 0}, capacity, random_);
    auto workspace = attention_workspace(inputs.shape, 1, capacity);
    auto out = poisoned(static_cast<std::size_t>(inputs.q_width));
    uq::cuda::CapturedGraph graph;
    graph.capture(stream.get(),
                  [&] { inputs.run(capacity, workspace.data(), out.data(), stream.get()); });
    const std::vector<float> cached_keys = inputs.keys;
    const std::vector<float> cached_values = inputs.values;
    for (const int position : {2200, 511, 512, 0, 33, 2047, 2200}) {
      SCOPED_TRACE(::testing::Message() << "position " << position);
      // The cache from `position` on is NaN again (as a fresh step finds it).
      std::vector<float> keys(cached_keys), values(cached_values);
      for (std::size_t i = static_cast<std::size_t>(position) * inputs.kv_width; i < keys.size();
           ++i) {
        keys[i] = values[i] = std::numeric_limits<float>::quiet_NaN();
      }
      inputs.keys = keys;
      inputs.values = values;
      inputs.k_cache.upload(keys);
      inputs.v_cache.upload(values);
      inputs.first_position = position;
      inputs.position.upload(std::vector<int>{position});
      settle();
      for (int replay = 0; replay < 3; ++replay) {
        UQ_CUDA_CHECK(cudaMemsetAsync(out.data(), 0xff, out.bytes(), stream.get()));
        graph.launch(stream.get());
      }
      stream.synchronize();
      const auto replayed = from_device(out);
      EXPECT_LT(relative_l2(replayed, inputs.expected()), 1e-5);
      inputs.expect_cache_stored();
      out.fill_bytes(0xff);
      settle();
      inputs.run(capacity, workspace.data(), out.data(), stream.get());
      stream.synchronize();
      EXPECT_EQ(from_device(out), replayed);
    }
  }
  uq::cuda::set_programmatic_launch_enabled(true);
}

// Shapes the kernels do not take and misaligned buffers fail before any launch, naming them.
TEST_F(CudaDecoderKernels, RopeAttentionRejectsBadArguments) {
  uq::cuda::Stream stream;
  AttentionInputs inputs(AttentionCase{8, 4, 64, 1, 10, 0}, 64, random_);
  auto workspace = attention_workspace(inputs.shape, 1, 64);
  auto out = poisoned(static_cast<std::size_t>(inputs.q_width) + 4);
  const auto call = [&](uq::cuda::AttentionShape shape, int count, float* result) {
    uq::cuda::rope_attention(inputs.qkv_dev.data(), count, inputs.stride, inputs.frequencies.data(),
                             inputs.position.data(), 64, inputs.k_cache.data(),
                             inputs.v_cache.data(), shape, workspace.data(), result, stream.get());
  };
  const auto message = [&](uq::cuda::AttentionShape shape, int count, float* result) {
    try {
      call(shape, count, result);
    } catch (const uq::Error& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({8, 4, 48, 0}, 1, out.data()).find("head_dim 48"), std::string::npos);
  EXPECT_NE(message({8, 4, 288, 0}, 1, out.data()).find("head_dim 288"), std::string::npos);
  EXPECT_NE(message({6, 4, 64, 0}, 1, out.data()).find("6 heads"), std::string::npos);
  EXPECT_NE(message(inputs.shape, 0, out.data()).find("no rows"), std::string::npos);
  EXPECT_NE(message(inputs.shape, 1, out.data() + 1).find("16-byte aligned"), std::string::npos);
  stream.synchronize();
}

TEST_F(CudaDecoderKernels, NormSwigluMatchCpu) {
  uq::cuda::Stream stream;
  // RMSNorm, odd widths and widths past one element per thread of the 1024-thread block.
  const int rows = 5;
  for (const int dim : {333, 4096, 5003, 8192}) {
    const auto x = normal(static_cast<std::size_t>(rows) * dim);
    const auto weight = normal(static_cast<std::size_t>(dim));
    std::vector<float> want(x.size());
    uq::rms_norm(x.data(), rows, dim, weight.data(), 1e-5f, want.data());
    auto x_dev = to_device(x);
    auto weight_dev = to_device(weight);
    auto out = poisoned(x.size());
    uq::cuda::rms_norm(x_dev.data(), rows, dim, weight_dev.data(), 1e-5f, out.data(), stream.get());
    stream.synchronize();
    EXPECT_LT(relative_l2(from_device(out), want), 1e-6) << dim;
  }

  // SwiGLU, odd width.
  const int width = 77;
  const auto gate_up = normal(static_cast<std::size_t>(rows) * 2 * width, 3.0f);
  auto gate_up_dev = to_device(gate_up);
  auto activated = poisoned(static_cast<std::size_t>(rows) * width);
  uq::cuda::swiglu(gate_up_dev.data(), rows, width, activated.data(), stream.get());
  stream.synchronize();
  std::vector<double> expected(activated.size());
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < width; ++i) {
      const double g = gate_up[r * 2 * width + i];
      expected[r * width + i] = g / (1.0 + std::exp(-g)) * gate_up[r * 2 * width + width + i];
    }
  EXPECT_LT(relative_l2(from_device(activated), expected), 1e-6);
}

// RoPE (llama3 scaling, large positions) of the query and key heads of the fused q|k|v rows,
// rotated keys and values stored in the cache at an offset: against uq::Rope, every stored
// element checked, nothing else in the cache touched, the queries rotated in place.
TEST_F(CudaDecoderKernels, RopeStoreKvMatchesCpu) {
  uq::cuda::Stream stream;
  const uq::Rope rope(llama3_rope_config(128));
  const int rows = 5, heads = 6, kv_heads = 2, head_dim = 128;
  const int q_width = heads * head_dim, kv_width = kv_heads * head_dim;
  const int stride = q_width + 2 * kv_width + 64;
  const int first = 9000, capacity = first + rows + 3;
  const auto qkv = normal(static_cast<std::size_t>(rows) * stride);
  auto qkv_dev = to_device(qkv);
  auto frequencies = to_device(rope.inverse_frequencies());
  const auto position = to_device(std::vector<int>{first});
  auto k_cache = poisoned(static_cast<std::size_t>(capacity) * kv_width);
  auto v_cache = poisoned(static_cast<std::size_t>(capacity) * kv_width);
  uq::cuda::rope_store_kv(qkv_dev.data(), rows, stride, heads, kv_heads, head_dim,
                          frequencies.data(), position.data(), k_cache.data(), v_cache.data(),
                          stream.get());
  stream.synchronize();
  const auto got = from_device(qkv_dev);
  const auto keys = from_device(k_cache);
  const auto values = from_device(v_cache);

  std::vector<float> q(static_cast<std::size_t>(rows) * q_width);
  std::vector<float> k(static_cast<std::size_t>(rows) * kv_width);
  for (int r = 0; r < rows; ++r) {
    std::copy_n(qkv.begin() + r * stride, q_width, q.begin() + r * q_width);
    std::copy_n(qkv.begin() + r * stride + q_width, kv_width, k.begin() + r * kv_width);
  }
  rope.apply(q.data(), rows, heads, first);
  rope.apply(k.data(), rows, kv_heads, first);
  for (int r = 0; r < rows; ++r) {
    for (int i = 0; i < stride; ++i) {
      const float expected = i < q_width ? q[r * q_width + i] : qkv[r * stride + i];
      ASSERT_NEAR(got[r * stride + i], expected, 1e-5f * (1.0f + std::fabs(expected))) << i;
    }
  }
  for (int p = 0; p < capacity; ++p) {
    for (int i = 0; i < kv_width; ++i) {
      const std::size_t slot = static_cast<std::size_t>(p) * kv_width + i;
      if (p < first) {
        ASSERT_TRUE(std::isnan(keys[slot]) && std::isnan(values[slot])) << p;
        continue;
      }
      if (p >= first + rows) {
        ASSERT_TRUE(std::isnan(keys[slot]) && std::isnan(values[slot])) << p;
        continue;
      }
      const int r = p - first;
      const float want_key = k[r * kv_width + i];
      ASSERT_NEAR(keys[slot], want_key, 1e-5f * (1.0f + std::fabs(want_key)));
      ASSERT_EQ(values[slot], qkv[r * stride + q_width + kv_width + i]);
    }
  }
}

TEST_F(CudaDecoderKernels, ArgmaxTakesFirstOfTies) {
  uq::cuda::Stream stream;
  for (const int count : {1, 5, 4097, 128256}) {
    auto values = normal(static_cast<std::size_t>(count));
    std::uniform_int_distribution<int> pick(0, count - 1);
    const int first = pick(random_);
    const int second = std::max(first, pick(random_));
    values[first] = 100.0f;
    values[second] = 100.0f;
    auto values_dev = to_device(values);
    DeviceBuffer<std::int32_t> result(1);
    result.fill_bytes(0xff);
    DeviceBuffer<float> workspace(uq::cuda::argmax_workspace_floats());
    uq::cuda::argmax(values_dev.data(), count, workspace.data(), result.data(), stream.get());
    stream.synchronize();
    std::vector<std::int32_t> got(1);
    result.download(got);
    EXPECT_EQ(got[0], first) << count;
  }
}

// A linear of fused parts in different formats (bf16, affine 4-bit, affine 3-bit, f32) with
// biases on some parts, accumulating into a strided output: against the CPU matmul.
TEST_F(CudaDecoderKernels, FusedLinearMatchesCpu) {
  uq::cuda::Stream stream;
  uq::cuda::CublasHandle cublas;
  uq::cuda::LinearScratch scratch;
  const uq::cuda::LinearContext context{stream.get(), cublas.get(), &scratch};
  const int in = 192;
  const auto make_bf16 = [&](int out) {
    std::vector<std::uint16_t> bits(static_cast<std::size_t>(out) * in);
    for (auto& b : bits) b = uq::f32_to_bf16(normal(1, 0.05f)[0]);
    return std::make_shared<uq::FloatWeight>(uq::DType::BF16, out, in, bits.data());
  };
  const auto make_affine = [&](int out, int bits) {
    const auto values = normal(static_cast<std::size_t>(out) * in, 0.05f);
    std::vector<std::uint16_t> bf16(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) bf16[i] = uq::f32_to_bf16(values[i]);
    return std::shared_ptr<uq::Weight>(
        uq::AffineWeight::quantize(bf16.data(), uq::DType::BF16, out, in, bits, 64, "test"));
  };
  const auto f32_values = normal(static_cast<std::size_t>(21) * in, 0.05f);
  const std::vector<std::shared_ptr<uq::Weight>> weights = {
      make_bf16(37), make_bf16(11), make_affine(40, 4), make_affine(24, 3),
      std::make_shared<uq::FloatWeight>(uq::DType::F32, 21, in, f32_values.data())};
  const std::vector<std::vector<float>> biases = {normal(37), {}, normal(40), {}, normal(21)};
  std::vector<uq::cuda::DeviceLinear::Part> parts;
  int out = 0;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    parts.push_back({{"part" + std::to_string(i), weights[i].get()}, &biases[i]});
    out += static_cast<int>(weights[i]->out_features());
  }
  const uq::cuda::DeviceLinear linear(parts);
  ASSERT_EQ(linear.out(), out);
  for (const int rows : {1, 3, 17}) {
    const auto x = normal(static_cast<std::size_t>(rows) * in);
    const int stride = out + 5;
    const auto initial = normal(static_cast<std::size_t>(rows) * stride);
    auto x_dev = to_device(x);
    auto y_dev = to_device(initial);
    linear.apply(x_dev.data(), rows, y_dev.data(), stride, true, context);
    stream.synchronize();
    const auto got = from_device(y_dev);
    std::vector<double> want(initial.begin(), initial.end());
    int column = 0;
    for (std::size_t p = 0; p < weights.size(); ++p) {
      const int width = static_cast<int>(weights[p]->out_features());
      std::vector<float> w(static_cast<std::size_t>(width) * in);
      weights[p]->dequantize_rows(0, width, w.data());
      for (int r = 0; r < rows; ++r)
        for (int o = 0; o < width; ++o) {
          double sum = biases[p].empty() ? 0.0 : biases[p][o];
          for (int i = 0; i < in; ++i) sum += double(x[r * in + i]) * w[o * in + i];
          want[r * stride + column + o] += sum;
        }
      column += width;
    }
    // Beyond 16 rows the affine parts may run the tiled kernel (automatic's choice by rows and
    // out), which rounds x and the weights to bf16 (a bf16 matmul's accuracy, affine_gemv.hpp):
    // 6.3e-4 seen on an H200; 16-row passes are exact and within the same bound.
    EXPECT_LT(relative_l2(got, want), rows > 16 ? 3e-3 : 1e-4) << rows << " rows";
  }
}

// One matrix, no bias: at 1-2 rows the product goes straight into y, added to it for the
// residual (bf16: bf16_gemv_cuda; affine: the persistent kernel at any rows where in >= 2 out,
// the simt segment kernel at 1-2 rows where in < 2 out, like o_proj, and at 3 rows there the
// persistent kernel too); bf16 at 3 rows through scratch and the epilogue. Against the CPU in
// float64.
TEST_F(CudaDecoderKernels, LinearAccumulatesInPlace) {
  uq::cuda::Stream stream;
  uq::cuda::CublasHandle cublas;
  uq::cuda::LinearScratch scratch;
  const uq::cuda::LinearContext context{stream.get(), cublas.get(), &scratch};
  for (const auto& [in, out] : {std::pair{320, 77}, std::pair{192, 320}}) {
    SCOPED_TRACE(::testing::Message() << "in " << in << " out " << out);
    for (const int rows : {1, 2}) {
      const auto expected = in >= 2 * out ? GemvKernel::persistent : GemvKernel::simt;
      // 5 and 3 groups of 64 per row: too few (odd) for the stream kernel.
      for (const int b : {4, 3})
        EXPECT_EQ(uq::cuda::automatic_gemv_kernel(rows, out, in, b, 64), expected)
            << rows << " rows";
    }
    std::vector<std::shared_ptr<uq::Weight>> weights;
    {
      std::vector<std::uint16_t> bits(static_cast<std::size_t>(out) * in);
      for (auto& b : bits) b = uq::f32_to_bf16(normal(1, 0.05f)[0]);
      weights.push_back(std::make_shared<uq::FloatWeight>(uq::DType::BF16, out, in, bits.data()));
      for (const int b : {4, 3}) {
        weights.push_back(std::shared_ptr<uq::Weight>(
            uq::AffineWeight::quantize(bits.data(), uq::DType::BF16, out, in, b, 64, "test")));
      }
    }
    for (const auto& weight : weights) {
      const uq::cuda::DeviceLinear linear({{{"w", weight.get()}, nullptr}});
      std::vector<float> w(static_cast<std::size_t>(out) * in);
      weight->dequantize_rows(0, out, w.data());
      for (const int rows : {1, 2, 3}) {
        for (const bool accumulate : {true, false}) {
          SCOPED_TRACE(::testing::Message() << weight->describe() << " rows " << rows
                                            << (accumulate ? " accumulate" : " overwrite"));
          const auto x = normal(static_cast<std::size_t>(rows) * in);
          const auto initial = normal(static_cast<std::size_t>(rows) * out);
          auto x_dev = to_device(x);
          auto y_dev = to_device(initial);
          if (!accumulate) y_dev.fill_bytes(0xff);
          linear.apply(x_dev.data(), rows, y_dev.data(), out, accumulate, context);
          stream.synchronize();
          std::vector<double> want(initial.size());
          for (int r = 0; r < rows; ++r)
            for (int o = 0; o < out; ++o) {
              double sum = accumulate ? initial[r * out + o] : 0.0;
              for (int i = 0; i < in; ++i) sum += double(x[r * in + i]) * w[o * in + i];
              want[r * out + o] = sum;
            }
          // 1-2 rows: exact products in fp32; 3 rows of bf16 through cuBLAS and of affine on the
          // persistent kernel (2 bf16 parts of x): 16 bits of x.
          EXPECT_LT(relative_l2(from_device(y_dev), want), rows <= 2 ? 1e-5 : 1e-4);
        }
      }
    }
  }
}

// Two dependent bf16 GEMVs back to back, y1 = W1 x (y1 poisoned first), y2 += W2 y1, with
// programmatic dependent launch on and off (with it, the second kernel starts while the first
// drains: a missing wait reads NaN or stale y1). Shapes take whole unrolled batches per lane
// (4096, 14336) and ragged tails (4104, 88, 320). Both give the same bits, within 1e-5 of
// float64.
TEST_F(CudaDecoderKernels, Bf16GemvChainSameWithAndWithoutPdl) {
  uq::cuda::Stream stream;
  struct Shape {
    int in, mid, out;
  };
  for (const Shape shape :
       {Shape{4096, 14336, 1000}, Shape{14336, 4104, 300}, Shape{320, 88, 40}}) {
    for (const int rows : {1, 2}) {
      SCOPED_TRACE(::testing::Message()
                   << shape.in << " -> " << shape.mid << " -> " << shape.out << ", rows " << rows);
      const auto bf16_matrix = [&](int out, int in, std::vector<float>& values) {
        std::vector<std::uint16_t> bits(static_cast<std::size_t>(out) * in);
        values.resize(bits.size());
        const auto drawn = normal(bits.size(), 0.02f);
        for (std::size_t i = 0; i < bits.size(); ++i) {
          bits[i] = uq::f32_to_bf16(drawn[i]);
          values[i] = uq::bf16_to_f32(bits[i]);
        }
        return to_device(bits);
      };
      const auto as_bf16 = [](const DeviceBuffer<std::uint16_t>& buffer) {
        return reinterpret_cast<const __nv_bfloat16*>(buffer.data());
      };
      std::vector<float> w1, w2;
      const auto w1_dev = bf16_matrix(shape.mid, shape.in, w1);
      const auto w2_dev = bf16_matrix(shape.out, shape.mid, w2);
      const auto x = normal(static_cast<std::size_t>(rows) * shape.in);
      const auto initial = normal(static_cast<std::size_t>(rows) * shape.out);
      const auto x_dev = to_device(x);
      std::vector<double> y1(static_cast<std::size_t>(rows) * shape.mid);
      std::vector<double> want(initial.begin(), initial.end());
      for (int r = 0; r < rows; ++r) {
        for (int o = 0; o < shape.mid; ++o) {
          double sum = 0.0;
          for (int i = 0; i < shape.in; ++i)
            sum += double(x[r * shape.in + i]) * w1[static_cast<std::size_t>(o) * shape.in + i];
          y1[r * shape.mid + o] = sum;
        }
        for (int o = 0; o < shape.out; ++o) {
          for (int i = 0; i < shape.mid; ++i)
            want[r * shape.out + o] +=
                y1[r * shape.mid + i] * w2[static_cast<std::size_t>(o) * shape.mid + i];
        }
      }
      std::vector<float> first_result;
      for (const bool pdl : {true, false}) {
        SCOPED_TRACE(::testing::Message() << "pdl " << pdl);
        uq::cuda::set_programmatic_launch_enabled(pdl);
        auto y1_dev = poisoned(y1.size());
        auto y2_dev = to_device(initial);
        uq::cuda::bf16_gemv_cuda(as_bf16(w1_dev), shape.mid, shape.in, x_dev.data(), rows,
                                 y1_dev.data(), false, stream.get());
        uq::cuda::bf16_gemv_cuda(as_bf16(w2_dev), shape.out, shape.mid, y1_dev.data(), rows,
                                 y2_dev.data(), true, stream.get());
        stream.synchronize();
        const auto got = from_device(y2_dev);
        EXPECT_LT(relative_l2(got, want), 1e-5);
        if (first_result.empty()) first_result = got;
        EXPECT_EQ(got, first_result);
      }
      uq::cuda::set_programmatic_launch_enabled(true);
    }
  }
}

}  // namespace
