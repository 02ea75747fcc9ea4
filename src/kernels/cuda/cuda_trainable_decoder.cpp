#include "kernels/cuda/cuda_trainable_decoder.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.hpp"
#include "kernels/cuda/cublas_library.hpp"
#include "kernels/cuda/decoder_kernels.hpp"
#include "kernels/cuda/device_buffer.hpp"
#include "kernels/cuda/device_linear.hpp"
#include "kernels/cuda/stream.hpp"
#include "kernels/cuda/training_kernels.hpp"
#include "model/decoder.hpp"
#include "model/rope.hpp"
#include "train/lora_weight.hpp"

namespace uq::cuda {
namespace {

template <class T>
void reserve(DeviceBuffer<T>& buffer, std::size_t count) {
  if (buffer.size() < count) buffer = DeviceBuffer<T>(count);
}

std::size_t size_of(std::int64_t a, std::int64_t b) {
  return static_cast<std::size_t>(a * b);
}

// Copies on the training stream (a non-blocking stream does not wait for the legacy default
// stream that plain cudaMemcpy uses), complete on return.
void copy(void* to, const void* from, std::size_t bytes, cudaMemcpyKind kind,
          const Stream& stream) {
  UQ_CUDA_CHECK(cudaMemcpyAsync(to, from, bytes, kind, stream.get()));
  stream.synchronize();
}

DeviceBuffer<float> upload_vector(const std::vector<float>& values) {
  DeviceBuffer<float> buffer(values.size());
  buffer.upload(values);
  return buffer;
}

// The frozen weight under a LoraWeight slot, or the weight itself.
const Weight* frozen(const std::shared_ptr<Weight>& weight) {
  if (const auto* lora = dynamic_cast<const LoraWeight*>(weight.get())) return lora->base().get();
  return weight.get();
}

// An adapter on a column range of a (possibly fused) linear.
struct AdapterSlot {
  std::size_t index = 0;  // in constructor order
  int column = 0;         // first output column of its projection in the fused output
  int out = 0;
  int in = 0;
  int rank = 0;
  float scale = 0.0f;
  std::size_t a_offset = 0;  // into the flat parameters / gradients
  std::size_t b_offset = 0;
  std::size_t projected_offset = 0;  // per row, into the kept x·Aᵀ
  std::uint64_t module = 0;          // picks its dropout stream
};

struct TrainLinear {
  std::shared_ptr<const DeviceMatrix> matrix;
  int out = 0;
  int in = 0;
  DeviceBuffer<float> bias;  // empty: none
  std::vector<AdapterSlot> adapters;
};

struct LayerWeights {
  TrainLinear qkv, o, gate_up, down;
  DeviceBuffer<float> input_norm, post_attention_norm;
  int window = 0;  // sliding window, 0: none
};

// What the backward of one layer reads, kept from the forward.
struct LayerActivations {
  DeviceBuffer<float> x_in, normed1, q, k, v, probabilities, attended, x_mid, normed2, gate_up, act;
};

}  // namespace

struct CudaTrainableDecoder::State {
  ModelConfig config;
  CudaTrainingOptions options;
  Stream stream;
  CublasHandle cublas;
  DeviceBuffer<unsigned char> cublas_workspace;
  std::shared_ptr<const DeviceMatrix> embedding;
  TrainLinear head;
  DeviceBuffer<float> final_norm, inverse_frequencies;
  std::vector<LayerWeights> layers;
  DeviceBuffer<std::int32_t> row_indices;  // 0, 1, 2, ...: tile gathers
  DeviceBuffer<float> tile;

  // Adapters: (A, B) per adapter, flat.
  std::vector<std::size_t> a_offsets, b_offsets, a_sizes, b_sizes;
  std::size_t parameter_count = 0;
  std::size_t projected_width = 0;  // Σ rank over the adapters
  DeviceBuffer<float> parameters, gradients, first_moments, second_moments;
  std::int64_t steps = 0;

  // Activations and scratch for `rows` rows, grown on demand.
  WindowShape shape;
  std::vector<LayerActivations> activations;
  DeviceBuffer<std::int32_t> ids;
  DeviceBuffer<float> projected, qkv_rows, heads_out, grad_heads_out, grad_q, grad_k, grad_v,
      grad_probabilities, x_final, normed_final, logits, grad_residual, grad_normed, grad_act,
      grad_gate_up, grad_attended, grad_qkv, grad_projected, dropped;
  DeviceBuffer<float> nll;    // per row
  DeviceBuffer<double> norm;  // [0] Σ gradient², then the partial sums
  std::vector<float> host_nll;

  int q_width() const { return static_cast<int>(config.num_attention_heads * config.head_dim); }
  int kv_width() const { return static_cast<int>(config.num_key_value_heads * config.head_dim); }

  void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
            const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc,
            bool tf32) const {
    UQ_CUDA_CHECK(cublas_library().gemm_ex(cublas.get(), ta, tb, m, n, k, &alpha, a, CUDA_R_32F,
                                           lda, b, CUDA_R_32F, ldb, &beta, c, CUDA_R_32F, ldc,
                                           tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
                                           CUBLAS_GEMM_DEFAULT));
  }
  void batched(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
               const float* a, int lda, long long stride_a, const float* b, int ldb,
               long long stride_b, float beta, float* c, int ldc, long long stride_c,
               int count) const {
    UQ_CUDA_CHECK(cublas_library().sgemm_strided_batched(cublas.get(), ta, tb, m, n, k, &alpha, a,
                                                         lda, stride_a, b, ldb, stride_b, &beta, c,
                                                         ldc, stride_c, count));
  }

  int tile_rows(const TrainLinear& linear) const {
    const std::int64_t rows = std::max<std::int64_t>(1, options.tile_floats / linear.in);
    return static_cast<int>(std::min<std::int64_t>(rows, linear.out));
  }

  // y[:, 0..out) (+)= x·Wᵀ + bias, W dequantized a tile of rows at a time.
  void frozen_forward(const TrainLinear& linear, const float* x, int rows, float* y, int y_stride,
                      bool accumulate) {
    const int step = tile_rows(linear);
    for (int first = 0; first < linear.out; first += step) {
      const int count = std::min(step, linear.out - first);
      linear.matrix->gather(row_indices.data() + first, count, tile.data(), stream.get());
      gemm(CUBLAS_OP_T, CUBLAS_OP_N, count, rows, linear.in, 1.0f, tile.data(), linear.in, x,
           linear.in, accumulate ? 1.0f : 0.0f, y + first, y_stride, options.tf32);
    }
    if (linear.bias.size() > 0) {
      add_bias(y, rows, linear.out, y_stride, linear.bias.data(), stream.get());
    }
  }

  // grad_x (+)= grad_y·W, W dequantized a tile of rows at a time.
  void frozen_backward(const TrainLinear& linear, const float* grad_y, int g_stride, int rows,
                       float* grad_x, bool accumulate) {
    const int step = tile_rows(linear);
    for (int first = 0; first < linear.out; first += step) {
      const int count = std::min(step, linear.out - first);
      linear.matrix->gather(row_indices.data() + first, count, tile.data(), stream.get());
      const float beta = first == 0 && !accumulate ? 0.0f : 1.0f;
      gemm(CUBLAS_OP_N, CUBLAS_OP_N, linear.in, rows, count, 1.0f, tile.data(), linear.in,
           grad_y + first, g_stride, beta, grad_x, linear.in, options.tf32);
    }
  }

  std::uint64_t dropout_seed(std::uint64_t seed, const AdapterSlot& slot) const {
    return seed ^ (slot.module * 0x9E3779B97F4A7C15ULL);
  }

  // The adapter's input: x, or x through its dropout mask (into `dropped`).
  const float* adapter_input(const AdapterSlot& slot, const float* x, int rows,
                             std::uint64_t seed) {
    if (options.dropout <= 0.0) return x;
    dropout(x, static_cast<std::int64_t>(rows) * slot.in, static_cast<float>(options.dropout),
            dropout_seed(seed, slot), dropped.data(), false, stream.get());
    return dropped.data();
  }

  void linear_forward(const TrainLinear& linear, const float* x, int rows, float* y, int y_stride,
                      bool accumulate, std::uint64_t seed) {
    frozen_forward(linear, x, rows, y, y_stride, accumulate);
    for (const AdapterSlot& slot : linear.adapters) {
      const float* input = adapter_input(slot, x, rows, seed);
      float* kept =
          projected.data() + slot.projected_offset * static_cast<std::size_t>(shape.rows());
      const float* a = parameters.data() + slot.a_offset;
      const float* b = parameters.data() + slot.b_offset;
      // kept [rows, r] = input·Aᵀ; y[:, column..] += scale · kept·Bᵀ.
      gemm(CUBLAS_OP_T, CUBLAS_OP_N, slot.rank, rows, slot.in, 1.0f, a, slot.in, input, slot.in,
           0.0f, kept, slot.rank, false);
      gemm(CUBLAS_OP_T, CUBLAS_OP_N, slot.out, rows, slot.rank, slot.scale, b, slot.rank, kept,
           slot.rank, 1.0f, y + slot.column, y_stride, false);
    }
  }

  // grad_x (+)= ∂loss/∂x; adds into the adapters' gradients.
  void linear_backward(const TrainLinear& linear, const float* x, int rows, const float* grad_y,
                       int g_stride, float* grad_x, bool accumulate, std::uint64_t seed) {
    frozen_backward(linear, grad_y, g_stride, rows, grad_x, accumulate);
    for (const AdapterSlot& slot : linear.adapters) {
      const float* input = adapter_input(slot, x, rows, seed);
      const float* kept =
          projected.data() + slot.projected_offset * static_cast<std::size_t>(shape.rows());
      const float* a = parameters.data() + slot.a_offset;
      const float* b = parameters.data() + slot.b_offset;
      float* grad_a = gradients.data() + slot.a_offset;
      float* grad_b = gradients.data() + slot.b_offset;
      const float* g = grad_y + slot.column;
      // ∂B += scale·gᵀ·kept; grad_kept = scale·g·B; ∂A += grad_keptᵀ·input.
      gemm(CUBLAS_OP_N, CUBLAS_OP_T, slot.rank, slot.out, rows, slot.scale, kept, slot.rank, g,
           g_stride, 1.0f, grad_b, slot.rank, false);
      gemm(CUBLAS_OP_N, CUBLAS_OP_N, slot.rank, rows, slot.out, slot.scale, b, slot.rank, g,
           g_stride, 0.0f, grad_projected.data(), slot.rank, false);
      gemm(CUBLAS_OP_N, CUBLAS_OP_T, slot.in, slot.rank, rows, 1.0f, input, slot.in,
           grad_projected.data(), slot.rank, 1.0f, grad_a, slot.in, false);
      if (options.dropout <= 0.0) {
        gemm(CUBLAS_OP_N, CUBLAS_OP_N, slot.in, rows, slot.rank, 1.0f, a, slot.in,
             grad_projected.data(), slot.rank, 1.0f, grad_x, slot.in, false);
      } else {
        // grad_x += mask ⊙ (grad_kept·A); `dropped` is free again once ∂A has it.
        gemm(CUBLAS_OP_N, CUBLAS_OP_N, slot.in, rows, slot.rank, 1.0f, a, slot.in,
             grad_projected.data(), slot.rank, 0.0f, dropped.data(), slot.in, false);
        dropout(dropped.data(), static_cast<std::int64_t>(rows) * slot.in,
                static_cast<float>(options.dropout), dropout_seed(seed, slot), grad_x, true,
                stream.get());
      }
    }
  }

  void reserve_rows(const WindowShape& wanted);
  void attention_forward(const LayerWeights& layer, LayerActivations& a);
  void attention_backward(const LayerActivations& a);
};

void CudaTrainableDecoder::State::reserve_rows(const WindowShape& wanted) {
  if (wanted.windows == shape.windows && wanted.tokens == shape.tokens) return;
  shape = wanted;
  const std::int64_t n = shape.rows();
  const std::int64_t hidden = config.hidden_size;
  const std::int64_t inner = config.intermediate_size;
  const std::int64_t qkv = q_width() + 2 * kv_width();
  const std::size_t scores = static_cast<std::size_t>(shape.windows) *
                             static_cast<std::size_t>(config.num_attention_heads) *
                             size_of(shape.tokens, shape.tokens);
  activations.clear();  // frees before allocating anew
  activations.resize(layers.size());
  for (LayerActivations& a : activations) {
    a.x_in = DeviceBuffer<float>(size_of(n, hidden));
    a.normed1 = DeviceBuffer<float>(size_of(n, hidden));
    a.q = DeviceBuffer<float>(size_of(n, q_width()));
    a.k = DeviceBuffer<float>(size_of(n, kv_width()));
    a.v = DeviceBuffer<float>(size_of(n, kv_width()));
    a.probabilities = DeviceBuffer<float>(scores);
    a.attended = DeviceBuffer<float>(size_of(n, q_width()));
    a.x_mid = DeviceBuffer<float>(size_of(n, hidden));
    a.normed2 = DeviceBuffer<float>(size_of(n, hidden));
    a.gate_up = DeviceBuffer<float>(size_of(n, 2 * inner));
    a.act = DeviceBuffer<float>(size_of(n, inner));
  }
  const std::int64_t widest_in = std::max(hidden, inner);
  ids = DeviceBuffer<std::int32_t>(static_cast<std::size_t>(n));
  nll = DeviceBuffer<float>(static_cast<std::size_t>(n));
  host_nll.resize(static_cast<std::size_t>(n));
  projected = DeviceBuffer<float>(size_of(n, static_cast<std::int64_t>(projected_width)));
  qkv_rows = DeviceBuffer<float>(size_of(n, qkv));
  heads_out = DeviceBuffer<float>(size_of(n, q_width()));
  grad_heads_out = DeviceBuffer<float>(size_of(n, q_width()));
  grad_q = DeviceBuffer<float>(size_of(n, q_width()));
  grad_k = DeviceBuffer<float>(size_of(n, kv_width()));
  grad_v = DeviceBuffer<float>(size_of(n, kv_width()));
  grad_probabilities = DeviceBuffer<float>(scores);
  x_final = DeviceBuffer<float>(size_of(n, hidden));
  normed_final = DeviceBuffer<float>(size_of(n, hidden));
  logits = DeviceBuffer<float>(size_of(n, config.vocab_size));
  grad_residual = DeviceBuffer<float>(size_of(n, hidden));
  grad_normed = DeviceBuffer<float>(size_of(n, hidden));
  grad_act = DeviceBuffer<float>(size_of(n, inner));
  grad_gate_up = DeviceBuffer<float>(size_of(n, 2 * inner));
  grad_attended = DeviceBuffer<float>(size_of(n, q_width()));
  grad_qkv = DeviceBuffer<float>(size_of(n, qkv));
  std::int64_t widest_rank = 1;
  for (const LayerWeights& layer : layers) {
    for (const TrainLinear* linear : {&layer.qkv, &layer.o, &layer.gate_up, &layer.down}) {
      for (const AdapterSlot& slot : linear->adapters)
        widest_rank = std::max<std::int64_t>(widest_rank, slot.rank);
    }
  }
  grad_projected = DeviceBuffer<float>(size_of(n, widest_rank));
  if (options.dropout > 0.0) dropped = DeviceBuffer<float>(size_of(n, widest_in));
}

// Per window and key/value head, the `group` query heads sharing it are consecutive in the
// head-major q, so each attention product is one strided-batched GEMM over
// windows · kv_heads blocks of [group · tokens] query rows.
void CudaTrainableDecoder::State::attention_forward(const LayerWeights& layer,
                                                    LayerActivations& a) {
  const int tokens = shape.tokens;
  const int head_dim = static_cast<int>(config.head_dim);
  const int group = static_cast<int>(config.num_attention_heads / config.num_key_value_heads);
  const int blocks = shape.windows * static_cast<int>(config.num_key_value_heads);
  const int query_rows = group * tokens;
  const long long q_stride = static_cast<long long>(query_rows) * head_dim;
  const long long kv_stride = static_cast<long long>(tokens) * head_dim;
  const long long p_stride = static_cast<long long>(query_rows) * tokens;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  // scores [group·T, T] = Q·Kᵀ, softmax in place, out [group·T, hd] = P·V.
  batched(CUBLAS_OP_T, CUBLAS_OP_N, tokens, query_rows, head_dim, 1.0f, a.k.data(), head_dim,
          kv_stride, a.q.data(), head_dim, q_stride, 0.0f, a.probabilities.data(), tokens, p_stride,
          blocks);
  causal_softmax(a.probabilities.data(), static_cast<std::int64_t>(blocks) * query_rows, tokens,
                 scale, layer.window, stream.get());
  batched(CUBLAS_OP_N, CUBLAS_OP_N, head_dim, query_rows, tokens, 1.0f, a.v.data(), head_dim,
          kv_stride, a.probabilities.data(), tokens, p_stride, 0.0f, heads_out.data(), head_dim,
          q_stride, blocks);
  heads_to_rows(heads_out.data(), shape, static_cast<int>(config.num_attention_heads), head_dim,
                a.attended.data(), stream.get());
}

// From grad_attended (token rows) to grad_qkv (token rows, RoPE undone).
void CudaTrainableDecoder::State::attention_backward(const LayerActivations& a) {
  const int tokens = shape.tokens;
  const int heads = static_cast<int>(config.num_attention_heads);
  const int kv_heads = static_cast<int>(config.num_key_value_heads);
  const int head_dim = static_cast<int>(config.head_dim);
  const int group = heads / kv_heads;
  const int blocks = shape.windows * kv_heads;
  const int query_rows = group * tokens;
  const long long q_stride = static_cast<long long>(query_rows) * head_dim;
  const long long kv_stride = static_cast<long long>(tokens) * head_dim;
  const long long p_stride = static_cast<long long>(query_rows) * tokens;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  rows_to_heads(grad_attended.data(), shape, heads, head_dim, grad_heads_out.data(), stream.get());
  // ∂V [T, hd] = Pᵀ·∂O; ∂P [group·T, T] = ∂O·Vᵀ.
  batched(CUBLAS_OP_N, CUBLAS_OP_T, head_dim, tokens, query_rows, 1.0f, grad_heads_out.data(),
          head_dim, q_stride, a.probabilities.data(), tokens, p_stride, 0.0f, grad_v.data(),
          head_dim, kv_stride, blocks);
  batched(CUBLAS_OP_T, CUBLAS_OP_N, tokens, query_rows, head_dim, 1.0f, a.v.data(), head_dim,
          kv_stride, grad_heads_out.data(), head_dim, q_stride, 0.0f, grad_probabilities.data(),
          tokens, p_stride, blocks);
  softmax_backward(a.probabilities.data(), grad_probabilities.data(),
                   static_cast<std::int64_t>(blocks) * query_rows, tokens, scale, stream.get());
  // ∂Q = ∂S·K; ∂K = ∂Sᵀ·Q.
  batched(CUBLAS_OP_N, CUBLAS_OP_N, head_dim, query_rows, tokens, 1.0f, a.k.data(), head_dim,
          kv_stride, grad_probabilities.data(), tokens, p_stride, 0.0f, grad_q.data(), head_dim,
          q_stride, blocks);
  batched(CUBLAS_OP_N, CUBLAS_OP_T, head_dim, tokens, query_rows, 1.0f, a.q.data(), head_dim,
          q_stride, grad_probabilities.data(), tokens, p_stride, 0.0f, grad_k.data(), head_dim,
          kv_stride, blocks);
  heads_to_rope_rows(grad_q.data(), grad_k.data(), grad_v.data(), shape, heads, kv_heads, head_dim,
                     inverse_frequencies.data(), grad_qkv.data(), q_width() + 2 * kv_width(),
                     stream.get());
}

CudaTrainableDecoder::CudaTrainableDecoder(const Model& model,
                                           const std::vector<NamedDeviceAdapter>& adapters,
                                           const CudaTrainingOptions& options)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.config = model.config();
  s.options = options;
  if (!(options.dropout >= 0.0 && options.dropout < 1.0)) {
    fail("LoRA dropout must be in [0, 1), got ", options.dropout);
  }
  if (s.config.num_key_value_heads < 1 ||
      s.config.num_attention_heads % s.config.num_key_value_heads != 0) {
    fail("cuda training: ", s.config.num_attention_heads, " heads are not a multiple of ",
         s.config.num_key_value_heads, " key/value heads");
  }
  s.cublas_workspace = DeviceBuffer<unsigned char>(std::size_t{32} << 20);
  UQ_CUDA_CHECK(cublas_library().set_workspace(s.cublas.get(), s.cublas_workspace.data(),
                                               s.cublas_workspace.bytes()));
  UQ_CUDA_CHECK(cublas_library().set_stream(s.cublas.get(), s.stream.get()));

  std::map<std::string, std::size_t> by_path;
  for (std::size_t i = 0; i < adapters.size(); ++i) {
    if (adapters[i].adapter == nullptr) fail("LoRA adapter for '", adapters[i].path, "' is null");
    if (!by_path.emplace(adapters[i].path, i).second) {
      fail("LoRA adapter for '", adapters[i].path, "' given twice");
    }
    const LoraAdapter& adapter = *adapters[i].adapter;
    s.a_offsets.push_back(s.parameter_count);
    s.a_sizes.push_back(adapter.a.size());
    s.parameter_count += adapter.a.size();
    s.b_offsets.push_back(s.parameter_count);
    s.b_sizes.push_back(adapter.b.size());
    s.parameter_count += adapter.b.size();
  }
  std::size_t used = 0;
  std::uint64_t module = 0;
  const auto make_linear = [&](const std::vector<std::string>& paths,
                               const std::vector<const Weight*>& weights,
                               const std::vector<const std::vector<float>*>& biases) {
    TrainLinear linear;
    std::vector<NamedWeight> parts;
    bool any_bias = false;
    std::vector<float> bias;
    int column = 0;
    for (std::size_t p = 0; p < paths.size(); ++p) {
      parts.push_back({paths[p], weights[p]});
      const int out = static_cast<int>(weights[p]->out_features());
      const int in = static_cast<int>(weights[p]->in_features());
      if (!biases[p]->empty()) {
        any_bias = true;
        bias.insert(bias.end(), biases[p]->begin(), biases[p]->end());
      } else {
        bias.resize(bias.size() + static_cast<std::size_t>(out), 0.0f);
      }
      const auto found = by_path.find(paths[p]);
      const std::uint64_t this_module = module++;
      if (found != by_path.end()) {
        const LoraAdapter& adapter = *adapters[found->second].adapter;
        if (adapter.in_features != in || adapter.out_features != out || adapter.rank < 1 ||
            adapter.a.size() != size_of(adapter.rank, in) ||
            adapter.b.size() != size_of(out, adapter.rank)) {
          fail("LoRA adapter for '", paths[p], "' does not fit the weight's shape [", out, ", ", in,
               "]");
        }
        AdapterSlot slot;
        slot.index = found->second;
        slot.column = column;
        slot.out = out;
        slot.in = in;
        slot.rank = static_cast<int>(adapter.rank);
        slot.scale = adapter.scale;
        slot.a_offset = s.a_offsets[found->second];
        slot.b_offset = s.b_offsets[found->second];
        slot.projected_offset = s.projected_width;
        slot.module = this_module;
        s.projected_width += static_cast<std::size_t>(adapter.rank);
        linear.adapters.push_back(slot);
        ++used;
      }
      column += out;
    }
    linear.matrix = std::make_shared<const DeviceMatrix>(parts);
    linear.out = linear.matrix->out();
    linear.in = linear.matrix->in();
    if (any_bias) linear.bias = upload_vector(bias);
    return linear;
  };
  const auto& source_layers = model.layers();
  for (std::size_t i = 0; i < source_layers.size(); ++i) {
    const DecoderLayer& source = source_layers[i];
    const std::string prefix = "model.layers." + std::to_string(i) + ".";
    LayerWeights layer;
    layer.qkv = make_linear(
        {prefix + "self_attn.q_proj", prefix + "self_attn.k_proj", prefix + "self_attn.v_proj"},
        {frozen(source.q_proj), frozen(source.k_proj), frozen(source.v_proj)},
        {&source.q_bias, &source.k_bias, &source.v_bias});
    layer.o = make_linear({prefix + "self_attn.o_proj"}, {frozen(source.o_proj)}, {&source.o_bias});
    layer.gate_up = make_linear({prefix + "mlp.gate_proj", prefix + "mlp.up_proj"},
                                {frozen(source.gate_proj), frozen(source.up_proj)},
                                {&source.gate_bias, &source.up_bias});
    layer.down =
        make_linear({prefix + "mlp.down_proj"}, {frozen(source.down_proj)}, {&source.down_bias});
    layer.input_norm = upload_vector(source.input_norm);
    layer.post_attention_norm = upload_vector(source.post_attention_norm);
    if (s.config.layer_uses_sliding_window[i] && s.config.sliding_window) {
      layer.window = static_cast<int>(*s.config.sliding_window);
    }
    s.layers.push_back(std::move(layer));
  }
  if (used != adapters.size()) {
    for (const NamedDeviceAdapter& named : adapters) {
      bool found = false;
      for (const LayerWeights& layer : s.layers) {
        for (const TrainLinear* linear : {&layer.qkv, &layer.o, &layer.gate_up, &layer.down}) {
          for (const AdapterSlot& slot : linear->adapters) {
            found = found || adapters[slot.index].path == named.path;
          }
        }
      }
      if (!found) fail("LoRA adapter for '", named.path, "': the model has no such projection");
    }
  }
  s.embedding = std::make_shared<const DeviceMatrix>(
      std::vector<NamedWeight>{{"model.embed_tokens", &model.embed_tokens()}});
  if (s.config.tie_word_embeddings) {
    s.head.matrix = s.embedding;
  } else {
    s.head.matrix = std::make_shared<const DeviceMatrix>(
        std::vector<NamedWeight>{{"lm_head", &model.lm_head()}});
  }
  s.head.out = s.head.matrix->out();
  s.head.in = s.head.matrix->in();
  for (const auto& [name, values] : model.named_vectors()) {
    if (name == "model.norm.weight") s.final_norm = upload_vector(*values);
  }
  s.inverse_frequencies = upload_vector(Rope(s.config).inverse_frequencies());

  int widest_out = s.head.out;
  std::int64_t tile_floats = 1;
  for (const LayerWeights& layer : s.layers) {
    for (const TrainLinear* linear : {&layer.qkv, &layer.o, &layer.gate_up, &layer.down}) {
      widest_out = std::max(widest_out, linear->out);
      tile_floats =
          std::max<std::int64_t>(tile_floats, std::int64_t{s.tile_rows(*linear)} * linear->in);
    }
  }
  tile_floats = std::max<std::int64_t>(tile_floats, std::int64_t{s.tile_rows(s.head)} * s.head.in);
  s.tile = DeviceBuffer<float>(static_cast<std::size_t>(tile_floats));
  s.row_indices = DeviceBuffer<std::int32_t>(static_cast<std::size_t>(widest_out));
  iota(s.row_indices.data(), widest_out, s.stream.get());

  s.parameters = DeviceBuffer<float>(s.parameter_count);
  s.gradients = DeviceBuffer<float>(s.parameter_count);
  s.first_moments = DeviceBuffer<float>(s.parameter_count);
  s.second_moments = DeviceBuffer<float>(s.parameter_count);
  s.norm = DeviceBuffer<double>(1 + static_cast<std::size_t>(squared_norm_partials()));
  // The weights went up through the legacy default stream; the training stream does not wait.
  UQ_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<const LoraAdapter*> initial;
  for (const NamedDeviceAdapter& named : adapters) initial.push_back(named.adapter);
  upload_state(initial, 0, {}, {});
  zero_gradients();
}

CudaTrainableDecoder::~CudaTrainableDecoder() = default;

std::size_t CudaTrainableDecoder::adapter_count() const {
  return state_->a_offsets.size();
}
std::int64_t CudaTrainableDecoder::steps_taken() const {
  return state_->steps;
}

void CudaTrainableDecoder::zero_gradients() {
  State& s = *state_;
  if (s.parameter_count > 0) {
    UQ_CUDA_CHECK(cudaMemsetAsync(s.gradients.data(), 0, s.gradients.bytes(), s.stream.get()));
  }
}

double CudaTrainableDecoder::accumulate(std::span<const std::int32_t> ids, std::int64_t windows,
                                        double weight, std::uint64_t dropout_seed) {
  State& s = *state_;
  const ModelConfig& config = s.config;
  if (windows < 1 || ids.size() % static_cast<std::size_t>(windows) != 0) {
    fail("cuda training: ", ids.size(), " ids do not split into ", windows, " windows");
  }
  const auto tokens = static_cast<std::int64_t>(ids.size()) / windows;
  if (tokens < 2) fail("training sequence of ", tokens, " tokens: need at least 2");
  if (tokens > config.max_position_embeddings) {
    fail("training sequence of ", tokens, " tokens exceeds max_position_embeddings (",
         config.max_position_embeddings, ")");
  }
  for (const std::int32_t id : ids) {
    if (id < 0 || id >= config.vocab_size) {
      fail("token id ", id, " outside the vocabulary [0, ", config.vocab_size, ")");
    }
  }
  s.reserve_rows({static_cast<int>(windows), static_cast<int>(tokens)});
  const cudaStream_t stream = s.stream.get();
  const int rows = s.shape.rows();
  const int hidden = static_cast<int>(config.hidden_size);
  const int inner = static_cast<int>(config.intermediate_size);
  const int heads = static_cast<int>(config.num_attention_heads);
  const int kv_heads = static_cast<int>(config.num_key_value_heads);
  const int head_dim = static_cast<int>(config.head_dim);
  const int qkv_width = s.q_width() + 2 * s.kv_width();
  const auto eps = static_cast<float>(config.rms_norm_eps);
  const std::size_t row_bytes = static_cast<std::size_t>(rows) * hidden * sizeof(float);

  UQ_CUDA_CHECK(
      cudaMemcpyAsync(s.ids.data(), ids.data(), ids.size_bytes(), cudaMemcpyHostToDevice, stream));
  s.embedding->gather(s.ids.data(), rows, s.activations.front().x_in.data(), stream);
  for (std::size_t l = 0; l < s.layers.size(); ++l) {
    const LayerWeights& layer = s.layers[l];
    LayerActivations& a = s.activations[l];
    rms_norm(a.x_in.data(), rows, hidden, layer.input_norm.data(), eps, a.normed1.data(), stream);
    s.linear_forward(layer.qkv, a.normed1.data(), rows, s.qkv_rows.data(), qkv_width, false,
                     dropout_seed);
    rope_to_heads(s.qkv_rows.data(), qkv_width, s.shape, heads, kv_heads, head_dim,
                  s.inverse_frequencies.data(), a.q.data(), a.k.data(), a.v.data(), stream);
    s.attention_forward(layer, a);
    UQ_CUDA_CHECK(cudaMemcpyAsync(a.x_mid.data(), a.x_in.data(), row_bytes,
                                  cudaMemcpyDeviceToDevice, stream));
    s.linear_forward(layer.o, a.attended.data(), rows, a.x_mid.data(), hidden, true, dropout_seed);
    rms_norm(a.x_mid.data(), rows, hidden, layer.post_attention_norm.data(), eps, a.normed2.data(),
             stream);
    s.linear_forward(layer.gate_up, a.normed2.data(), rows, a.gate_up.data(), 2 * inner, false,
                     dropout_seed);
    swiglu(a.gate_up.data(), rows, inner, a.act.data(), stream);
    float* next = l + 1 < s.layers.size() ? s.activations[l + 1].x_in.data() : s.x_final.data();
    UQ_CUDA_CHECK(
        cudaMemcpyAsync(next, a.x_mid.data(), row_bytes, cudaMemcpyDeviceToDevice, stream));
    s.linear_forward(layer.down, a.act.data(), rows, next, hidden, true, dropout_seed);
  }
  rms_norm(s.x_final.data(), rows, hidden, s.final_norm.data(), eps, s.normed_final.data(), stream);
  const int vocab = static_cast<int>(config.vocab_size);
  s.frozen_forward(s.head, s.normed_final.data(), rows, s.logits.data(), vocab, false);
  cross_entropy(s.logits.data(), s.ids.data(), s.shape, vocab, static_cast<float>(weight),
                s.nll.data(), stream);

  // Backward: the logits now hold ∂loss/∂logits.
  s.frozen_backward(s.head, s.logits.data(), vocab, rows, s.grad_normed.data(), false);
  rms_norm_backward(s.x_final.data(), rows, hidden, s.final_norm.data(), eps, s.grad_normed.data(),
                    s.grad_residual.data(), false, stream);
  for (std::size_t l = s.layers.size(); l-- > 0;) {
    const LayerWeights& layer = s.layers[l];
    const LayerActivations& a = s.activations[l];
    s.linear_backward(layer.down, a.act.data(), rows, s.grad_residual.data(), hidden,
                      s.grad_act.data(), false, dropout_seed);
    swiglu_backward(a.gate_up.data(), s.grad_act.data(), rows, inner, s.grad_gate_up.data(),
                    stream);
    s.linear_backward(layer.gate_up, a.normed2.data(), rows, s.grad_gate_up.data(), 2 * inner,
                      s.grad_normed.data(), false, dropout_seed);
    rms_norm_backward(a.x_mid.data(), rows, hidden, layer.post_attention_norm.data(), eps,
                      s.grad_normed.data(), s.grad_residual.data(), true, stream);
    s.linear_backward(layer.o, a.attended.data(), rows, s.grad_residual.data(), hidden,
                      s.grad_attended.data(), false, dropout_seed);
    s.attention_backward(a);
    s.linear_backward(layer.qkv, a.normed1.data(), rows, s.grad_qkv.data(), qkv_width,
                      s.grad_normed.data(), false, dropout_seed);
    rms_norm_backward(a.x_in.data(), rows, hidden, layer.input_norm.data(), eps,
                      s.grad_normed.data(), s.grad_residual.data(), true, stream);
  }
  copy(s.host_nll.data(), s.nll.data(), s.host_nll.size() * sizeof(float), cudaMemcpyDeviceToHost,
       s.stream);
  double nll = 0.0;
  for (const float value : s.host_nll) nll += value;
  return nll;
}

double CudaTrainableDecoder::clip_and_step(double max_norm, double lr,
                                           const AdamWOptions& adamw_options) {
  State& s = *state_;
  const cudaStream_t stream = s.stream.get();
  const auto count = static_cast<std::int64_t>(s.parameter_count);
  double squares = 0.0;
  if (count > 0) {
    squared_norm(s.gradients.data(), count, s.norm.data() + 1, s.norm.data(), stream);
    copy(&squares, s.norm.data(), sizeof(double), cudaMemcpyDeviceToHost, s.stream);
  }
  const double norm = std::sqrt(squares);
  ++s.steps;
  AdamWStep step;
  step.lr = static_cast<float>(lr);
  step.beta1 = static_cast<float>(adamw_options.beta1);
  step.beta2 = static_cast<float>(adamw_options.beta2);
  step.eps = static_cast<float>(adamw_options.eps);
  step.weight_decay = static_cast<float>(adamw_options.weight_decay);
  step.correction1 = 1.0 - std::pow(adamw_options.beta1, static_cast<double>(s.steps));
  step.correction2 = 1.0 - std::pow(adamw_options.beta2, static_cast<double>(s.steps));
  // As uq::clip_gradient_norm: scaled to max_norm / (norm + 1e-6) when above max_norm.
  if (max_norm > 0.0 && norm > max_norm) {
    step.gradient_scale = static_cast<float>(max_norm / (norm + 1e-6));
  }
  if (count > 0) {
    adamw(s.parameters.data(), s.gradients.data(), s.first_moments.data(), s.second_moments.data(),
          count, step, stream);
  }
  s.stream.synchronize();
  return norm;
}

void CudaTrainableDecoder::download_adapter(std::size_t index, LoraAdapter& adapter) const {
  const State& s = *state_;
  if (index >= s.a_offsets.size()) fail("cuda training: no adapter ", index);
  adapter.a.resize(s.a_sizes[index]);
  adapter.b.resize(s.b_sizes[index]);
  copy(adapter.a.data(), s.parameters.data() + s.a_offsets[index], s.a_sizes[index] * sizeof(float),
       cudaMemcpyDeviceToHost, s.stream);
  copy(adapter.b.data(), s.parameters.data() + s.b_offsets[index], s.b_sizes[index] * sizeof(float),
       cudaMemcpyDeviceToHost, s.stream);
}

void CudaTrainableDecoder::download_gradient(std::size_t index, std::vector<float>& a,
                                             std::vector<float>& b) const {
  const State& s = *state_;
  if (index >= s.a_offsets.size()) fail("cuda training: no adapter ", index);
  a.resize(s.a_sizes[index]);
  b.resize(s.b_sizes[index]);
  copy(a.data(), s.gradients.data() + s.a_offsets[index], a.size() * sizeof(float),
       cudaMemcpyDeviceToHost, s.stream);
  copy(b.data(), s.gradients.data() + s.b_offsets[index], b.size() * sizeof(float),
       cudaMemcpyDeviceToHost, s.stream);
}

void CudaTrainableDecoder::download_moments(std::vector<std::vector<float>>& m,
                                            std::vector<std::vector<float>>& v) const {
  const State& s = *state_;
  m.clear();
  v.clear();
  if (s.steps == 0) return;  // as uq::AdamW: no moments before the first step
  for (std::size_t i = 0; i < s.a_offsets.size(); ++i) {
    for (const auto& [offset, size] :
         {std::pair{s.a_offsets[i], s.a_sizes[i]}, std::pair{s.b_offsets[i], s.b_sizes[i]}}) {
      m.emplace_back(size);
      v.emplace_back(size);
      copy(m.back().data(), s.first_moments.data() + offset, size * sizeof(float),
           cudaMemcpyDeviceToHost, s.stream);
      copy(v.back().data(), s.second_moments.data() + offset, size * sizeof(float),
           cudaMemcpyDeviceToHost, s.stream);
    }
  }
}

void CudaTrainableDecoder::upload_state(std::span<const LoraAdapter* const> adapters,
                                        std::int64_t steps,
                                        const std::vector<std::vector<float>>& m,
                                        const std::vector<std::vector<float>>& v) {
  State& s = *state_;
  if (adapters.size() != s.a_offsets.size()) {
    fail("cuda training: ", adapters.size(), " adapters given, ", s.a_offsets.size(), " trained");
  }
  const bool moments = !m.empty();
  if (moments && (m.size() != 2 * adapters.size() || v.size() != m.size())) {
    fail("cuda training: optimizer moments do not pair with the adapters");
  }
  if (steps < 0) fail("cuda training: negative step count");
  s.stream.synchronize();
  for (std::size_t i = 0; i < adapters.size(); ++i) {
    const std::pair<const std::vector<float>*, std::size_t> parts[] = {
        {&adapters[i]->a, s.a_offsets[i]}, {&adapters[i]->b, s.b_offsets[i]}};
    for (std::size_t p = 0; p < 2; ++p) {
      const auto& [values, offset] = parts[p];
      const std::size_t expected = p == 0 ? s.a_sizes[i] : s.b_sizes[i];
      if (values->size() != expected ||
          (moments && (m[2 * i + p].size() != expected || v[2 * i + p].size() != expected))) {
        fail("cuda training: adapter ", i, " changed size");
      }
      copy(s.parameters.data() + offset, values->data(), expected * sizeof(float),
           cudaMemcpyHostToDevice, s.stream);
      if (moments) {
        copy(s.first_moments.data() + offset, m[2 * i + p].data(), expected * sizeof(float),
             cudaMemcpyHostToDevice, s.stream);
        copy(s.second_moments.data() + offset, v[2 * i + p].data(), expected * sizeof(float),
             cudaMemcpyHostToDevice, s.stream);
      }
    }
  }
  if (!moments && s.parameter_count > 0) {
    UQ_CUDA_CHECK(
        cudaMemsetAsync(s.first_moments.data(), 0, s.first_moments.bytes(), s.stream.get()));
    UQ_CUDA_CHECK(
        cudaMemsetAsync(s.second_moments.data(), 0, s.second_moments.bytes(), s.stream.get()));
    s.stream.synchronize();
  }
  s.steps = steps;
}

}  // namespace uq::cuda
