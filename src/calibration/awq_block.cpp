#include "calibration/awq_block.hpp"

#include <array>
#include <cmath>
#include <limits>

#include "calibration/awq.hpp"
#include "calibration/block_linears.hpp"
#include "calibration/hessian.hpp"
#include "model/float_weight.hpp"

namespace uq {
namespace {

enum Linear { kQ, kK, kV, kO, kGate, kUp, kDown };
// The four distinct inputs of a block's linears, and which linear sees which.
enum Input { kAttentionIn, kAttentionOut, kMlpIn, kMlpOut };
constexpr std::array<Input, 7> kInputOf{kAttentionIn, kAttentionIn, kAttentionIn, kAttentionOut,
                                        kMlpIn,       kMlpIn,       kMlpOut};

// Hessian and mean magnitude per channel of one input.
struct InputStatistics {
  explicit InputStatistics(std::int64_t columns)
      : hessian(columns), magnitude_sum(static_cast<std::size_t>(columns), 0.0) {}
  void add(const float* x, std::int64_t rows) {
    hessian.add(x, rows);
    const auto columns = static_cast<std::int64_t>(magnitude_sum.size());
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = 0; c < columns; ++c) {
        magnitude_sum[static_cast<std::size_t>(c)] += std::fabs(x[r * columns + c]);
      }
    }
  }
  std::vector<double> mean_magnitude() const {
    std::vector<double> mean(magnitude_sum);
    for (auto& value : mean)
      value /= static_cast<double>(std::max<std::int64_t>(hessian.rows(), 1));
    return mean;
  }
  HessianAccumulator hessian;
  std::vector<double> magnitude_sum;
};

struct ScaleGroup {
  AwqGroup group;
  std::vector<Linear> members;
  Input input;
  int fold_linear;  // -1 when folded into a norm
};

const std::array<ScaleGroup, 4>& scale_groups() {
  static const std::array<ScaleGroup, 4> groups{{
      {AwqGroup::Attention, {kQ, kK, kV}, kAttentionIn, -1},
      {AwqGroup::Output, {kO}, kAttentionOut, kV},
      {AwqGroup::Mlp, {kGate, kUp}, kMlpIn, -1},
      {AwqGroup::Down, {kDown}, kMlpOut, kUp},
  }};
  return groups;
}

// o_proj's input channel j comes from v_proj row value_row(j); with grouped-query
// attention several heads share that row, so they share a scale.
std::int64_t value_row(const ModelConfig& config, std::int64_t j) {
  const std::int64_t heads_per_kv = config.num_attention_heads / config.num_key_value_heads;
  return (j / config.head_dim) / heads_per_kv * config.head_dim + j % config.head_dim;
}

// The scale of each input channel of the group's linears, from the scales of
// the operation folded into.
std::vector<float> input_channel_scales(const ModelConfig& config, AwqGroup group,
                                        const std::vector<float>& fold_scales,
                                        std::int64_t input_channels) {
  if (group != AwqGroup::Output) return fold_scales;
  std::vector<float> expanded(static_cast<std::size_t>(input_channels));
  for (std::int64_t j = 0; j < input_channels; ++j) {
    expanded[static_cast<std::size_t>(j)] =
        fold_scales[static_cast<std::size_t>(value_row(config, j))];
  }
  return expanded;
}

void scale_columns(std::vector<float>& weights, const std::vector<float>& scales, bool divide) {
  const auto in = scales.size();
  for (std::size_t i = 0; i < weights.size(); ++i) {
    weights[i] = divide ? weights[i] / scales[i % in] : weights[i] * scales[i % in];
  }
}

// W·diag(s) rounded to the grid, times diag(1/s): the float effect of scaling then quantizing.
std::vector<float> scaled_round_trip(const std::vector<float>& weights, std::int64_t out,
                                     std::int64_t in, const std::vector<float>& scales,
                                     const QuantGrid& grid) {
  std::vector<float> scaled = weights;
  scale_columns(scaled, scales, false);
  std::vector<float> result = round_to_nearest(scaled.data(), out, in, grid).dequantize();
  scale_columns(result, scales, true);
  return result;
}

double squared_distance(const std::vector<std::vector<float>>& a,
                        const std::vector<std::vector<float>>& b) {
  double sum = 0.0;
  for (std::size_t w = 0; w < a.size(); ++w) {
    for (std::size_t i = 0; i < a[w].size(); ++i) {
      const double d = static_cast<double>(a[w][i]) - b[w][i];
      sum += d * d;
    }
  }
  return sum;
}

}  // namespace

void fold_awq_scales(Model& model, std::int64_t index, AwqGroup group,
                     const std::vector<float>& scales) {
  const ModelConfig& config = model.config();
  DecoderLayer& layer = model.layer(index);
  const auto& linears = block_linears();
  const ScaleGroup& spec = scale_groups()[static_cast<std::size_t>(group)];
  const auto replace = [&](int m, const std::vector<float>& values) {
    auto& slot = layer.*linears[static_cast<std::size_t>(m)].member;
    slot = std::make_shared<FloatWeight>(DType::F32, slot->out_features(), slot->in_features(),
                                         values.data());
  };
  const Weight& first = *(layer.*linears[static_cast<std::size_t>(spec.members.front())].member);
  const auto channel_scales = input_channel_scales(config, group, scales, first.in_features());
  for (const Linear m : spec.members) {
    std::vector<float> values = float_matrix(*(layer.*linears[static_cast<std::size_t>(m)].member));
    scale_columns(values, channel_scales, false);
    replace(m, values);
  }
  if (spec.fold_linear < 0) {
    auto& norm = group == AwqGroup::Attention ? layer.input_norm : layer.post_attention_norm;
    for (std::size_t c = 0; c < norm.size(); ++c) {
      norm[c] = round_to_dtype(norm[c] / scales[c], config.dtype);
    }
    return;
  }
  const int target = spec.fold_linear;
  const Weight& weight = *(layer.*linears[static_cast<std::size_t>(target)].member);
  std::vector<float> values = float_matrix(weight);
  auto& bias = target == kV ? layer.v_bias : layer.up_bias;
  for (std::int64_t r = 0; r < weight.out_features(); ++r) {
    const float scale = scales[static_cast<std::size_t>(r)];
    for (std::int64_t i = 0; i < weight.in_features(); ++i) {
      values[static_cast<std::size_t>(r * weight.in_features() + i)] /= scale;
    }
    if (!bias.empty()) bias[static_cast<std::size_t>(r)] /= scale;
  }
  replace(target, values);
}

std::vector<CalibratedLayer> awq_block(Model& model, std::int64_t index, const BlockInputs& inputs,
                                       const GridFor& grid_for, const AwqOptions& options) {
  const ModelConfig& config = model.config();
  DecoderLayer& layer = model.layer(index);
  const auto& linears = block_linears();
  std::vector<CalibratedLayer> results(linears.size());
  std::array<std::unique_ptr<QuantGrid>, 7> grids;
  std::array<std::vector<float>, 7> weights;
  std::array<std::int64_t, 7> out{}, in{};
  const auto install = [&](int m, const std::vector<float>& values) {
    layer.*linears[static_cast<std::size_t>(m)].member =
        std::make_shared<FloatWeight>(DType::F32, out[m], in[m], values.data());
  };
  for (int m = 0; m < 7; ++m) {
    const Weight& weight = *(layer.*linears[static_cast<std::size_t>(m)].member);
    auto& result = results[static_cast<std::size_t>(m)];
    result.path = linear_path(index, linears[static_cast<std::size_t>(m)]);
    out[m] = weight.out_features();
    in[m] = weight.in_features();
    grids[m] = grid_for(result.path, weight, result.note);
    if (!grids[m]) continue;
    weights[m] = float_matrix(weight);
    install(m, weights[m]);
  }

  std::vector<InputStatistics> statistics{InputStatistics(in[kQ]), InputStatistics(in[kO]),
                                          InputStatistics(in[kGate]), InputStatistics(in[kDown])};
  const auto observe = [&statistics](Input input) {
    return [&statistics, input](const float* x, std::int64_t rows) {
      statistics[static_cast<std::size_t>(input)].add(x, rows);
    };
  };
  inputs.run(model, index,
             {{linears[kQ].member, observe(kAttentionIn)},
              {linears[kO].member, observe(kAttentionOut)},
              {linears[kGate].member, observe(kMlpIn)},
              {linears[kDown].member, observe(kMlpOut)}});
  const auto reference = inputs.run(model, index, {}, options.search_windows, true);

  // 1/s of each input once its group is scaled (ones otherwise).
  std::array<std::vector<float>, 4> input_scales;
  for (int i = 0; i < 4; ++i) {
    input_scales[static_cast<std::size_t>(i)].assign(
        statistics[static_cast<std::size_t>(i)].magnitude_sum.size(), 1.0f);
  }
  for (const auto& group : scale_groups()) {
    std::vector<int> needed(group.members.begin(), group.members.end());
    if (group.fold_linear >= 0) needed.push_back(group.fold_linear);
    bool calibrated = true;
    for (const int m : needed) calibrated = calibrated && grids[m] != nullptr;
    if (!calibrated) {
      for (const int m : group.members) {
        auto& note = results[static_cast<std::size_t>(m)].note;
        if (grids[m]) note = "awq: no scaling (a layer it folds into is not calibrated)";
      }
      continue;
    }
    std::vector<double> magnitude =
        statistics[static_cast<std::size_t>(group.input)].mean_magnitude();
    std::vector<const std::vector<float>*> member_weights;
    for (const Linear m : group.members) member_weights.push_back(&weights[m]);
    std::vector<double> weight_scale = weight_magnitude(member_weights, in[group.members.front()],
                                                        grids[group.members.front()]->group_size());
    if (group.group == AwqGroup::Output) {
      const std::int64_t heads_per_kv = config.num_attention_heads / config.num_key_value_heads;
      const auto per_value_row = [&](const std::vector<double>& values) {
        std::vector<double> per_row(static_cast<std::size_t>(out[kV]), 0.0);
        for (std::int64_t j = 0; j < in[kO]; ++j) {
          per_row[static_cast<std::size_t>(value_row(config, j))] +=
              values[static_cast<std::size_t>(j)] / static_cast<double>(heads_per_kv);
        }
        return per_row;
      };
      magnitude = per_value_row(magnitude);
      weight_scale = per_value_row(weight_scale);
    }
    const std::vector<double>* duo = options.duo_scaling ? &weight_scale : nullptr;
    const std::int64_t channels = in[group.members.front()];
    double best_error = std::numeric_limits<double>::max();
    double best_alpha = 0.0;
    for (int step = 0; step < options.alpha_steps; ++step) {
      const double alpha = static_cast<double>(step) / options.alpha_steps;
      const auto scales =
          input_channel_scales(config, group.group, awq_scales(magnitude, alpha, duo), channels);
      for (const Linear m : group.members) {
        install(m, scaled_round_trip(weights[m], out[m], in[m], scales, *grids[m]));
      }
      const double error =
          squared_distance(inputs.run(model, index, {}, options.search_windows, true), reference);
      if (error < best_error) {
        best_error = error;
        best_alpha = alpha;
      }
    }
    for (const Linear m : group.members) install(m, weights[m]);
    const auto fold_scales = awq_scales(magnitude, best_alpha, duo);
    fold_awq_scales(model, index, group.group, fold_scales);
    for (const int m : needed) {
      weights[m] = float_matrix(*(layer.*linears[static_cast<std::size_t>(m)].member));
    }
    for (const Linear m : group.members) {
      results[static_cast<std::size_t>(m)].note = "awq alpha " + std::to_string(best_alpha);
    }
    input_scales[static_cast<std::size_t>(group.input)] =
        input_channel_scales(config, group.group, fold_scales, channels);
  }

  std::array<std::vector<double>, 4> hessians;
  for (int i = 0; i < 4; ++i) {
    hessians[static_cast<std::size_t>(i)] =
        scale_hessian(statistics[static_cast<std::size_t>(i)].hessian.hessian(),
                      input_scales[static_cast<std::size_t>(i)]);
  }
  for (int m = 0; m < 7; ++m) {
    if (!grids[m]) continue;
    auto& result = results[static_cast<std::size_t>(m)];
    const auto& hessian = hessians[static_cast<std::size_t>(kInputOf[static_cast<std::size_t>(m)])];
    const std::vector<float> ratios =
        awq_clip_ratios(weights[m].data(), out[m], in[m], *grids[m], hessian, options.clip_steps);
    const QuantizedMatrix quantized =
        round_to_nearest(weights[m].data(), out[m], in[m], *grids[m], &ratios);
    const auto values = quantized.dequantize();
    result.reconstruction_error =
        relative_output_error(weights[m].data(), values.data(), out[m], in[m], hessian);
    result.error_measure = "output";
    result.weight = grids[m]->build(quantized, result.path + ".weight");
    layer.*linears[static_cast<std::size_t>(m)].member = result.weight;
  }
  return results;
}

}  // namespace uq
