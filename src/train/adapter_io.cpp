#include "train/adapter_io.hpp"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"

namespace uq {
namespace {

using nlohmann::json;

constexpr const char* kPeftWeights = "adapter_model.safetensors";
constexpr const char* kMlxWeights = "adapters.safetensors";
constexpr const char* kConfig = "adapter_config.json";
constexpr const char* kPeftPrefix = "base_model.model.";

std::span<const std::byte> bytes_of(const std::vector<float>& values) {
  return std::as_bytes(std::span<const float>(values));
}

std::vector<float> transposed(const std::vector<float>& values, std::int64_t rows,
                              std::int64_t columns) {
  std::vector<float> result(values.size());
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < columns; ++c) result[c * rows + r] = values[r * columns + c];
  }
  return result;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The module names relative to a layer ("self_attn.q_proj").
std::string layer_relative(const std::string& path) {
  const std::string prefix = "model.layers.";
  if (path.rfind(prefix, 0) != 0) return path;
  const std::size_t dot = path.find('.', prefix.size());
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

std::string last_component(const std::string& path) {
  const std::size_t dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

// PEFT's target_modules: the short names when every layer adapts the same
// ones (the usual case), else the exact module paths.
json peft_target_modules(const AdapterSet& set) {
  std::map<std::string, std::set<std::string>> per_layer;
  std::set<std::string> names;
  for (const auto& entry : set.adapters) {
    const std::string relative = layer_relative(entry.first);
    per_layer[entry.first.substr(0, entry.first.size() - relative.size())].insert(
        last_component(entry.first));
    names.insert(last_component(entry.first));
  }
  bool uniform = true;
  for (const auto& [layer, layer_names] : per_layer) uniform = uniform && layer_names == names;
  json modules = json::array();
  if (uniform) {
    for (const auto& name : names) modules.push_back(name);
  } else {
    for (const auto& entry : set.adapters) modules.push_back(entry.first);
  }
  return modules;
}

void check_consistent(const AdapterSet& set) {
  if (set.adapters.empty()) fail("no LoRA adapters to save");
  const float scale = static_cast<float>(set.config.scale());
  for (const auto& [path, adapter] : set.adapters) {
    if (adapter.rank != set.config.rank) {
      fail("LoRA adapter for '", path, "' has rank ", adapter.rank, ", the config ",
           set.config.rank);
    }
    if (std::fabs(adapter.scale - scale) > 1e-6f * std::fabs(scale)) {
      fail("LoRA adapter for '", path, "' has scale ", adapter.scale, ", the config ", scale);
    }
  }
}

json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) fail(path.string(), ": cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception& error) {
    fail(path.string(), ": invalid JSON (", error.what(), ")");
  }
}

template <typename Value>
Value field(const json& object, const char* key, const std::filesystem::path& origin) {
  if (!object.contains(key)) fail(origin.string(), ": missing \"", key, "\"");
  try {
    return object.at(key).get<Value>();
  } catch (const json::exception&) {
    fail(origin.string(), ": \"", key, "\" has the wrong type");
  }
}

std::vector<float> matrix(const SafetensorsFile& file, const std::string& name, std::int64_t& rows,
                          std::int64_t& columns) {
  const TensorView tensor = file.tensor(name);
  if (tensor.shape.size() != 2 || !is_float(tensor.dtype)) {
    fail(file.path().string(), ": tensor '", name, "' must be a 2-D float matrix");
  }
  rows = tensor.shape[0];
  columns = tensor.shape[1];
  return tensor.to_f32();
}

AdapterSet load_peft(const std::filesystem::path& dir) {
  const auto config_path = dir / kConfig;
  const json config = read_json_file(config_path);
  AdapterSet set;
  set.format = AdapterFormat::Peft;
  const auto peft_type = field<std::string>(config, "peft_type", config_path);
  if (peft_type != "LORA") fail(config_path.string(), ": peft_type '", peft_type, "' is not LORA");
  set.config.rank = field<int>(config, "r", config_path);
  set.config.alpha = field<double>(config, "lora_alpha", config_path);
  if (config.contains("lora_dropout")) set.config.dropout = config["lora_dropout"].get<double>();
  for (const char* unsupported : {"rank_pattern", "alpha_pattern"}) {
    if (config.contains(unsupported) && config[unsupported].is_object() &&
        !config[unsupported].empty()) {
      fail(config_path.string(), ": \"", unsupported, "\" (per-module ranks) is not supported");
    }
  }
  for (const char* unsupported : {"fan_in_fan_out", "use_dora", "lora_bias"}) {
    if (config.contains(unsupported) && config[unsupported].is_boolean() &&
        config[unsupported].get<bool>()) {
      fail(config_path.string(), ": \"", unsupported, "\" is not supported");
    }
  }
  if (config.contains("modules_to_save") && config["modules_to_save"].is_array() &&
      !config["modules_to_save"].empty()) {
    fail(config_path.string(), ": \"modules_to_save\" (fully trained modules) is not supported");
  }
  const bool rslora = config.value("use_rslora", false);
  if (config.contains("target_modules") && config["target_modules"].is_array()) {
    set.config.target_modules = config["target_modules"].get<std::vector<std::string>>();
  }
  validate(set.config);
  const double scale =
      rslora ? set.config.alpha / std::sqrt(double(set.config.rank)) : set.config.scale();
  const auto file = SafetensorsFile::open(dir / kPeftWeights);
  const std::string a_suffix = ".lora_A.weight";
  for (const std::string& name : file->names()) {
    if (!ends_with(name, a_suffix)) {
      if (!ends_with(name, ".lora_B.weight")) {
        fail(file->path().string(), ": unexpected tensor '", name, "'");
      }
      continue;
    }
    std::string path = name.substr(0, name.size() - a_suffix.size());
    if (path.rfind(kPeftPrefix, 0) == 0) path = path.substr(std::string(kPeftPrefix).size());
    std::int64_t a_rows = 0, a_columns = 0, b_rows = 0, b_columns = 0;
    std::vector<float> a = matrix(*file, name, a_rows, a_columns);
    const std::string b_name = name.substr(0, name.size() - a_suffix.size()) + ".lora_B.weight";
    std::vector<float> b = matrix(*file, b_name, b_rows, b_columns);
    if (a_rows != set.config.rank || b_columns != set.config.rank) {
      fail(file->path().string(), ": '", name, "' and '", b_name,
           "' do not have rank r = ", set.config.rank);
    }
    LoraAdapter adapter(a_rows, a_columns, b_rows, static_cast<float>(scale));
    adapter.a = std::move(a);
    adapter.b = std::move(b);
    set.adapters.emplace(path, std::move(adapter));
  }
  if (set.adapters.empty()) fail(file->path().string(), ": no lora_A tensors");
  return set;
}

AdapterSet load_mlx(const std::filesystem::path& dir) {
  const auto config_path = dir / kConfig;
  const json config = read_json_file(config_path);
  if (!config.contains("lora_parameters") || !config["lora_parameters"].is_object()) {
    fail(config_path.string(), ": missing \"lora_parameters\"");
  }
  const std::string type = config.value("fine_tune_type", std::string("lora"));
  if (type != "lora") fail(config_path.string(), ": fine_tune_type '", type, "' is not lora");
  const json& parameters = config["lora_parameters"];
  AdapterSet set;
  set.format = AdapterFormat::MlxLm;
  set.config.rank = field<int>(parameters, "rank", config_path);
  const auto scale = field<double>(parameters, "scale", config_path);
  set.config.alpha = scale * set.config.rank;  // PEFT's alpha for the same scale
  set.config.dropout = parameters.value("dropout", 0.0);
  if (parameters.contains("keys") && parameters["keys"].is_array()) {
    set.config.target_modules = parameters["keys"].get<std::vector<std::string>>();
  }
  validate(set.config);
  const auto file = SafetensorsFile::open(dir / kMlxWeights);
  const std::string a_suffix = ".lora_a";
  for (const std::string& name : file->names()) {
    if (!ends_with(name, a_suffix)) {
      if (!ends_with(name, ".lora_b")) {
        fail(file->path().string(), ": unexpected tensor '", name, "'");
      }
      continue;
    }
    const std::string path = name.substr(0, name.size() - a_suffix.size());
    std::int64_t a_rows = 0, a_columns = 0, b_rows = 0, b_columns = 0;
    const std::vector<float> a = matrix(*file, name, a_rows, a_columns);              // [in, r]
    const std::vector<float> b = matrix(*file, path + ".lora_b", b_rows, b_columns);  // [r, out]
    if (a_columns != set.config.rank || b_rows != set.config.rank) {
      fail(file->path().string(), ": '", name, "' and '", path, ".lora_b' do not have rank ",
           set.config.rank);
    }
    LoraAdapter adapter(a_columns, a_rows, b_columns, static_cast<float>(scale));
    adapter.a = transposed(a, a_rows, a_columns);
    adapter.b = transposed(b, b_rows, b_columns);
    set.adapters.emplace(path, std::move(adapter));
  }
  if (set.adapters.empty()) fail(file->path().string(), ": no lora_a tensors");
  return set;
}

}  // namespace

AdapterFormat parse_adapter_format(const std::string& name) {
  if (name == "peft") return AdapterFormat::Peft;
  if (name == "mlx") return AdapterFormat::MlxLm;
  fail("option --adapter-format: unknown format '", name, "' (expected peft or mlx)");
}

void save_adapters(const std::filesystem::path& dir, const AdapterSet& set,
                   std::int64_t num_layers) {
  validate(set.config);
  check_consistent(set);
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) fail(dir.string(), ": cannot create directory (", error.message(), ")");
  json config;
  if (set.format == AdapterFormat::Peft) {
    SafetensorsWriter writer(dir / kPeftWeights);
    for (const auto& [path, adapter] : set.adapters) {
      const std::string prefix = kPeftPrefix + path;
      writer.add(prefix + ".lora_A.weight", DType::F32, {adapter.rank, adapter.in_features},
                 bytes_of(adapter.a));
      writer.add(prefix + ".lora_B.weight", DType::F32, {adapter.out_features, adapter.rank},
                 bytes_of(adapter.b));
    }
    writer.commit();
    config = {{"peft_type", "LORA"},
              {"task_type", "CAUSAL_LM"},
              {"r", set.config.rank},
              {"lora_alpha", set.config.alpha},
              {"lora_dropout", set.config.dropout},
              {"target_modules", peft_target_modules(set)},
              {"bias", "none"},
              {"fan_in_fan_out", false},
              {"use_rslora", false},
              {"inference_mode", true},
              {"base_model_name_or_path", nullptr}};
  } else {
    SafetensorsWriter writer(dir / kMlxWeights);
    std::set<std::string> keys;
    for (const auto& [path, adapter] : set.adapters) {
      writer.add(path + ".lora_a", DType::F32, {adapter.in_features, adapter.rank},
                 bytes_of(transposed(adapter.a, adapter.rank, adapter.in_features)));
      writer.add(path + ".lora_b", DType::F32, {adapter.rank, adapter.out_features},
                 bytes_of(transposed(adapter.b, adapter.out_features, adapter.rank)));
      keys.insert(layer_relative(path));
    }
    writer.commit();
    config = {{"fine_tune_type", "lora"},
              {"num_layers", num_layers},
              {"lora_parameters",
               {{"rank", set.config.rank},
                {"scale", set.config.scale()},
                {"dropout", set.config.dropout},
                {"keys", std::vector<std::string>(keys.begin(), keys.end())}}}};
  }
  write_file_atomic(dir / kConfig, config.dump(2) + "\n");
}

std::filesystem::path adapter_weights_file(const std::filesystem::path& dir) {
  if (!std::filesystem::is_directory(dir)) fail(dir.string(), ": adapter directory not found");
  if (!std::filesystem::exists(dir / kConfig)) fail((dir / kConfig).string(), ": file not found");
  if (std::filesystem::exists(dir / kPeftWeights)) return dir / kPeftWeights;
  if (std::filesystem::exists(dir / kMlxWeights)) return dir / kMlxWeights;
  fail(dir.string(), ": neither ", kPeftWeights, " (PEFT) nor ", kMlxWeights, " (mlx-lm) found");
}

AdapterSet load_adapters(const std::filesystem::path& dir) {
  const auto weights = adapter_weights_file(dir);
  return weights.filename() == kPeftWeights ? load_peft(dir) : load_mlx(dir);
}

}  // namespace uq
