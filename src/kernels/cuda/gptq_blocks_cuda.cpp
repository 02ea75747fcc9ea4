#include "kernels/cuda/gptq_blocks_cuda.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include "calibration/block_linears.hpp"
#include "core/error.hpp"
#include "core/progress.hpp"
#include "kernels/cuda/cublas_library.hpp"
#include "kernels/cuda/decoder_kernels.hpp"
#include "kernels/cuda/gptq_cuda.hpp"
#include "kernels/cuda/gptq_kernels.hpp"
#include "model/decoder.hpp"
#include "model/rope.hpp"

namespace uq::cuda {
namespace {

constexpr std::int64_t kChunkTokens = 16384;  // rows of one chunked product (q|k|v, gate|up)
constexpr std::int64_t kHessianRows = 8192;   // rows of one fp32 partial Hessian

template <class T>
void reserve(DeviceBuffer<T>& buffer, std::size_t count) {
  if (buffer.size() < count) buffer = DeviceBuffer<T>(count);
}

std::size_t elements(std::int64_t rows, std::int64_t cols) {
  return static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
}

DeviceBuffer<float> upload(const std::vector<float>& values) {
  DeviceBuffer<float> buffer(values.size());
  buffer.upload(values);
  return buffer;
}

class DeviceCalibration {
 public:
  DeviceCalibration(Model& model, const std::vector<std::vector<std::int32_t>>& windows,
                    const GridFor& grid_for, const GptqOptions& options)
      : model_(model),
        config_(model.config()),
        grid_for_(grid_for),
        options_(options),
        gptq_(stream_.get(), cublas_.get()) {
    UQ_CUDA_CHECK(cublas_library().set_stream(cublas_.get(), stream_.get()));
    ctx_ = static_cast<std::int64_t>(windows.front().size());
    tokens_ = ctx_ * static_cast<std::int64_t>(windows.size());
    hidden_ = config_.hidden_size;
    inner_ = config_.intermediate_size;
    q_width_ = config_.num_attention_heads * config_.head_dim;
    kv_width_ = config_.num_key_value_heads * config_.head_dim;
    qkv_width_ = q_width_ + 2 * kv_width_;
    const std::int64_t windows_per_chunk = std::max<std::int64_t>(1, kChunkTokens / ctx_);
    chunk_rows_ = std::min(tokens_, windows_per_chunk * ctx_);
    x_ = DeviceBuffer<float>(elements(tokens_, hidden_));
    for (std::size_t w = 0; w < windows.size(); ++w) {
      if (static_cast<std::int64_t>(windows[w].size()) != ctx_)
        fail("gptq: calibration windows differ in length");
      const std::vector<float> states = model.embed(windows[w]);
      UQ_CUDA_CHECK(cudaMemcpy(x_.data() + elements(static_cast<std::int64_t>(w) * ctx_, hidden_),
                               states.data(), states.size() * sizeof(float),
                               cudaMemcpyHostToDevice));
    }
    normed_ = DeviceBuffer<float>(elements(tokens_, hidden_));
    attended_ = DeviceBuffer<float>(elements(tokens_, q_width_));
    activated_ = DeviceBuffer<float>(elements(tokens_, inner_));
    qkv_ = DeviceBuffer<float>(elements(chunk_rows_, qkv_width_));
    gate_up_ = DeviceBuffer<float>(elements(chunk_rows_, 2 * inner_));
    keys_ = DeviceBuffer<float>(elements(ctx_, kv_width_));
    values_ = DeviceBuffer<float>(elements(ctx_, kv_width_));
    position_ = DeviceBuffer<int>(1);
    position_.fill_bytes(0);  // every window starts at position 0
    inverse_frequencies_ = upload(Rope(config_).inverse_frequencies());
    // The uploads ran on the legacy stream, which stream_ (non-blocking) does not wait for.
    UQ_CUDA_CHECK(cudaDeviceSynchronize());
  }

  void run(std::int64_t index, std::vector<CalibratedLayer>& results, Progress& progress) {
    const auto& linears = block_linears();
    DecoderLayer& layer = model_.layer(index);
    results.assign(linears.size(), CalibratedLayer{});
    timed(stages_.upload_seconds, [&] {
      for (std::size_t m = 0; m < linears.size(); ++m) {
        const Weight& weight = *(layer.*linears[m].member);
        shapes_[m] = {weight.out_features(), weight.in_features()};
        DeviceBuffer<float>& target = weights_[m];
        reserve(target, elements(weight.out_features(), weight.in_features()));
        const std::vector<float> values = float_matrix(weight);
        UQ_CUDA_CHECK(cudaMemcpy(target.data(), values.data(), values.size() * sizeof(float),
                                 cudaMemcpyHostToDevice));
      }
    });
    const std::vector<float>* biases[] = {&layer.q_bias,   &layer.k_bias,    &layer.v_bias,
                                          &layer.o_bias,   &layer.gate_bias, &layer.up_bias,
                                          &layer.down_bias};
    for (std::size_t m = 0; m < linears.size(); ++m) biases_[m] = upload(*biases[m]);
    input_norm_ = upload(layer.input_norm);
    post_attention_norm_ = upload(layer.post_attention_norm);
    UQ_CUDA_CHECK(cudaDeviceSynchronize());  // the uploads are done before stream_ reads them
    const auto eps = static_cast<float>(config_.rms_norm_eps);
    const cudaStream_t stream = stream_.get();

    rms_norm(x_.data(), static_cast<int>(tokens_), static_cast<int>(hidden_), input_norm_.data(),
             eps, normed_.data(), stream);
    quantize_group(index, 0, normed_.data(), results, progress);
    attention_stage(index);
    quantize_group(index, 1, attended_.data(), results, progress);
    linear(attended_.data(), tokens_, 3, x_.data(), hidden_, true);
    rms_norm(x_.data(), static_cast<int>(tokens_), static_cast<int>(hidden_),
             post_attention_norm_.data(), eps, normed_.data(), stream);
    quantize_group(index, 2, normed_.data(), results, progress);
    for (std::int64_t first = 0; first < tokens_; first += chunk_rows_) {
      const std::int64_t rows = std::min(chunk_rows_, tokens_ - first);
      const float* x = normed_.data() + elements(first, hidden_);
      linear(x, rows, 4, gate_up_.data(), 2 * inner_, false);
      linear(x, rows, 5, gate_up_.data() + inner_, 2 * inner_, false);
      swiglu(gate_up_.data(), static_cast<int>(rows), static_cast<int>(inner_),
             activated_.data() + elements(first, inner_), stream);
    }
    quantize_group(index, 3, activated_.data(), results, progress);
    linear(activated_.data(), tokens_, 6, x_.data(), hidden_, true);
    stream_.synchronize();
    std::size_t free_bytes = 0, total_bytes = 0;
    UQ_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    peak_device_bytes_ = std::max(peak_device_bytes_, total_bytes - free_bytes);
  }

  // Stage times and peak memory so far.
  GptqBlocksRun stages() const {
    GptqBlocksRun run = stages_;
    run.peak_device_bytes = peak_device_bytes_;
    return run;
  }

 private:
  // Runs `work` and adds its wall time, the stream's work included, to `total` (the work
  // queued before it finishes first, so that it is not counted here).
  template <class Work>
  void timed(double& total, Work&& work) {
    stream_.synchronize();
    const auto start = std::chrono::steady_clock::now();
    work();
    stream_.synchronize();
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  // y (row stride `stride`) = (accumulate ? y : 0) + x · W_mᵀ + bias_m for x [rows, in_m].
  void linear(const float* x, std::int64_t rows, std::size_t m, float* y, std::int64_t stride,
              bool accumulate) {
    const auto out = static_cast<int>(shapes_[m].first);
    const auto in = static_cast<int>(shapes_[m].second);
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    UQ_CUDA_CHECK(cublas_library().sgemm(cublas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, out,
                                         static_cast<int>(rows), in, &one, weights_[m].data(), in,
                                         x, in, &beta, y, static_cast<int>(stride)));
    if (biases_[m].size() > 0)
      add_bias_rows(y, rows, out, stride, biases_[m].data(), stream_.get());
  }

  // q|k|v for every window (chunked), RoPE, and causal attention window by window.
  void attention_stage(std::int64_t index) {
    const cudaStream_t stream = stream_.get();
    AttentionShape shape{static_cast<int>(config_.num_attention_heads),
                         static_cast<int>(config_.num_key_value_heads),
                         static_cast<int>(config_.head_dim), 0};
    if (config_.layer_uses_sliding_window[static_cast<std::size_t>(index)] &&
        config_.sliding_window) {
      shape.sliding_window = static_cast<int>(*config_.sliding_window);
    }
    const int ctx = static_cast<int>(ctx_);
    const std::size_t attention_floats =
        std::max<std::size_t>(1, attention_workspace_floats(shape, ctx, ctx));
    if (attention_workspace_.size() < attention_floats) {
      attention_workspace_ = DeviceBuffer<float>(attention_floats);
      // Its counters start at zero; each attention call leaves them so.
      UQ_CUDA_CHECK(
          cudaMemsetAsync(attention_workspace_.data(), 0, attention_workspace_.bytes(), stream));
    }
    for (std::int64_t first = 0; first < tokens_; first += chunk_rows_) {
      const std::int64_t rows = std::min(chunk_rows_, tokens_ - first);
      const float* x = normed_.data() + elements(first, hidden_);
      linear(x, rows, 0, qkv_.data(), qkv_width_, false);
      linear(x, rows, 1, qkv_.data() + q_width_, qkv_width_, false);
      linear(x, rows, 2, qkv_.data() + q_width_ + kv_width_, qkv_width_, false);
      for (std::int64_t start = 0; start < rows; start += ctx_) {
        float* q = qkv_.data() + elements(start, qkv_width_);
        rope_attention(q, ctx, static_cast<int>(qkv_width_), inverse_frequencies_.data(),
                       position_.data(), ctx, keys_.data(), values_.data(), shape,
                       attention_workspace_.data(),
                       attended_.data() + elements(first + start, q_width_), stream);
      }
    }
  }

  // H of the group's shared input x [tokens, in], then GPTQ of its members in model order;
  // each quantized matrix replaces its float one on the device and in the model.
  void quantize_group(std::int64_t index, std::size_t group, const float* x,
                      std::vector<CalibratedLayer>& results, Progress& progress) {
    const auto& linears = block_linears();
    const std::vector<int>& members = shared_input_groups()[group];
    DecoderLayer& layer = model_.layer(index);
    std::vector<std::unique_ptr<QuantGrid>> grids;
    for (const int m : members) {
      CalibratedLayer& result = results[static_cast<std::size_t>(m)];
      result.path = linear_path(index, linears[static_cast<std::size_t>(m)]);
      grids.push_back(grid_for_(result.path, *(layer.*linears[static_cast<std::size_t>(m)].member),
                                result.note));
    }
    const std::int64_t in =
        (layer.*linears[static_cast<std::size_t>(members.front())].member)->in_features();
    timed(stages_.hessian_seconds, [&] { hessian(x, in); });
    for (std::size_t k = 0; k < members.size(); ++k) {
      const auto m = static_cast<std::size_t>(members[k]);
      CalibratedLayer& result = results[m];
      progress.advance(0, result.path);
      auto& slot = layer.*linears[m].member;
      if (grids[k]) {
        const std::int64_t out = slot->out_features();
        reserve(dequantized_, elements(out, in));
        GptqDevice::Result quantized{QuantizedMatrix(0, 1, 1), 0.0};
        timed(stages_.gptq_seconds, [&] {
          quantized = gptq_.quantize(weights_[m].data(), out, in, hessian_.data(), *grids[k],
                                     options_, dequantized_.data(), result.path);
        });
        std::swap(weights_[m], dequantized_);
        result.reconstruction_error = quantized.reconstruction_error;
        result.error_measure = "output";
        timed(stages_.build_seconds,
              [&] { result.weight = grids[k]->build(quantized.matrix, result.path + ".weight"); });
        slot = result.weight;
      }
      progress.advance();
    }
  }

  // hessian_ = 2/N XᵀX for x [tokens, in]: fp32 ssyrks of kHessianRows rows, float64 sum.
  void hessian(const float* x, std::int64_t in) {
    const cudaStream_t stream = stream_.get();
    const std::size_t count = elements(in, in);
    reserve(hessian_, count);
    reserve(partial_, count);
    UQ_CUDA_CHECK(cudaMemsetAsync(hessian_.data(), 0, count * sizeof(double), stream));
    // ssyrk writes one triangle (column-major lower = row-major upper); the other stays 0
    // until mirrored.
    UQ_CUDA_CHECK(cudaMemsetAsync(partial_.data(), 0, count * sizeof(float), stream));
    const float one = 1.0f, zero = 0.0f;
    for (std::int64_t first = 0; first < tokens_; first += kHessianRows) {
      const auto rows = static_cast<int>(std::min(kHessianRows, tokens_ - first));
      const float* part = x + elements(first, in);
      UQ_CUDA_CHECK(cublas_library().ssyrk(
          cublas_.get(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, static_cast<int>(in), rows, &one,
          part, static_cast<int>(in), &zero, partial_.data(), static_cast<int>(in)));
      accumulate_f64(partial_.data(), count, hessian_.data(), stream);
    }
    scale_f64(hessian_.data(), count, 2.0 / static_cast<double>(tokens_), stream);
    mirror_upper(hessian_.data(), in, stream);
  }

  Model& model_;
  const ModelConfig& config_;
  const GridFor& grid_for_;
  GptqOptions options_;
  Stream stream_;
  CublasHandle cublas_;
  GptqDevice gptq_;
  std::int64_t ctx_ = 0, tokens_ = 0, hidden_ = 0, inner_ = 0;
  std::int64_t q_width_ = 0, kv_width_ = 0, qkv_width_ = 0, chunk_rows_ = 0;
  DeviceBuffer<float> x_, normed_, attended_, activated_, qkv_, gate_up_, keys_, values_;
  DeviceBuffer<float> attention_workspace_, inverse_frequencies_;
  DeviceBuffer<int> position_;
  DeviceBuffer<float> weights_[7], biases_[7], dequantized_;
  std::pair<std::int64_t, std::int64_t> shapes_[7];  // (out, in) of the block's linears
  DeviceBuffer<float> input_norm_, post_attention_norm_;
  DeviceBuffer<double> hessian_;
  DeviceBuffer<float> partial_;
  std::size_t peak_device_bytes_ = 0;
  GptqBlocksRun stages_;
};

}  // namespace

GptqBlocksRun gptq_calibrate_blocks(Model& model,
                                    const std::vector<std::vector<std::int32_t>>& windows,
                                    const GridFor& grid_for, const GptqOptions& options,
                                    const BlockCalibrated& done) {
  if (windows.empty()) fail("gptq: no calibration windows");
  const std::int64_t blocks = model.config().num_hidden_layers;
  DeviceCalibration calibration(model, windows, grid_for, options);
  Progress progress("gptq (cuda)", blocks * static_cast<std::int64_t>(block_linears().size()));
  GptqBlocksRun run;
  for (std::int64_t b = 0; b < blocks; ++b) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<CalibratedLayer> results;
    calibration.run(b, results, progress);
    run.block_seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    done(b, std::move(results));
  }
  std::vector<double> block_seconds = std::move(run.block_seconds);
  run = calibration.stages();
  run.block_seconds = std::move(block_seconds);
  return run;
}

}  // namespace uq::cuda
