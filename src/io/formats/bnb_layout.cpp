#include "io/formats/bnb_layout.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.hpp"
#include "io/formats/layout_writer.hpp"
#include "io/safetensors.hpp"
#include "model/decoder.hpp"
#include "model/float_weight.hpp"
#include "quant/bnb4_weight.hpp"
#include "quant/int8_rowwise_weight.hpp"

namespace uq {
namespace fs = std::filesystem;
namespace {

template <typename T>
std::vector<T> copy_out(const TensorView& view, DType expected) {
  if (view.dtype != expected) {
    fail("tensor '", view.name, "': expected ", dtype_name(expected), ", found ",
         dtype_name(view.dtype));
  }
  std::vector<T> values(view.nbytes / sizeof(T));
  std::memcpy(values.data(), view.data, values.size() * sizeof(T));
  return values;
}

std::optional<DType> dtype_from_torch_name(const std::string& name) {
  if (name == "bfloat16") return DType::BF16;
  if (name == "float16") return DType::F16;
  if (name == "float32") return DType::F32;
  return std::nullopt;
}

std::string torch_name(DType dtype) {
  switch (dtype) {
    case DType::BF16:
      return "bfloat16";
    case DType::F16:
      return "float16";
    default:
      return "float32";
  }
}

std::shared_ptr<Weight> load_4bit(const TensorSource& tensors, const std::string& path,
                                  const std::string& state_name, bnb::FourBitType type) {
  const auto state_bytes = copy_out<std::uint8_t>(tensors.tensor(state_name), DType::U8);
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(state_bytes.begin(), state_bytes.end());
  } catch (const nlohmann::json::exception& error) {
    fail("tensor '", state_name, "': not a JSON quant state (", error.what(), ")");
  }
  const std::string where = "tensor '" + state_name + "'";
  if (!state.is_object() || !state.contains("shape") || !state["shape"].is_array() ||
      state["shape"].size() != 2 || !state.contains("blocksize") ||
      !state["blocksize"].is_number_integer()) {
    fail(where, ": quant state needs an integer 'blocksize' and a 2-D 'shape'");
  }
  if (state.value("quant_type", "") != bnb::four_bit_type_name(type)) {
    fail(where, ": quant_type '", state.value("quant_type", ""), "' disagrees with the key name");
  }
  const auto out = state["shape"][0].get<std::int64_t>();
  const auto in = state["shape"][1].get<std::int64_t>();
  const auto dtype = dtype_from_torch_name(state.value("dtype", "float32"));
  if (!dtype) fail(where, ": unsupported dtype '", state.value("dtype", ""), "'");
  auto packed = copy_out<std::uint8_t>(tensors.tensor(path + ".weight"), DType::U8);
  auto code = copy_out<float>(tensors.tensor(path + ".weight.quant_map"), DType::F32);
  const TensorView absmax = tensors.tensor(path + ".weight.absmax");
  std::optional<Bnb4NestedState> nested;
  std::vector<float> plain_absmax;
  if (state.contains("nested_offset")) {
    if (!state["nested_offset"].is_number() || !state.contains("nested_blocksize") ||
        !state["nested_blocksize"].is_number_integer()) {
      fail(where, ": nested quant state needs numeric 'nested_offset' and 'nested_blocksize'");
    }
    nested = Bnb4NestedState{
        copy_out<std::uint8_t>(absmax, DType::U8),
        copy_out<float>(tensors.tensor(path + ".weight.nested_absmax"), DType::F32),
        copy_out<float>(tensors.tensor(path + ".weight.nested_quant_map"), DType::F32),
        state["nested_offset"].get<float>(), state["nested_blocksize"].get<int>()};
  } else {
    plain_absmax = copy_out<float>(absmax, DType::F32);
  }
  return Bnb4Weight::from_parts(out, in, type, state["blocksize"].get<int>(), *dtype,
                                std::move(packed), std::move(code), std::move(plain_absmax),
                                std::move(nested), path + ".weight");
}

std::shared_ptr<Weight> load_int8(const TensorSource& tensors, const std::string& path,
                                  float threshold) {
  const TensorView weight = tensors.tensor(path + ".weight");
  if (weight.shape.size() != 2) fail("tensor '", weight.name, "': LLM.int8 weight must be 2-D");
  if (tensors.contains(path + ".weight_format")) {
    const auto format = copy_out<std::uint8_t>(tensors.tensor(path + ".weight_format"), DType::U8);
    if (format.size() != 1 || format[0] != 0) {
      fail("tensor '", path, ".weight_format': only 0 (row-major) is supported");
    }
  }
  return Int8RowwiseWeight::from_parts(
      weight.shape[0], weight.shape[1], copy_out<std::int8_t>(weight, DType::I8),
      copy_out<float>(tensors.tensor(path + ".SCB"), DType::F32), threshold, weight.name);
}

std::vector<std::uint8_t> quant_state_json(const Bnb4Parts& parts) {
  nlohmann::ordered_json state;
  state["quant_type"] = bnb::four_bit_type_name(parts.type);
  state["blocksize"] = parts.blocksize;
  state["dtype"] = torch_name(parts.dtype);
  state["shape"] = {parts.out, parts.in};
  if (parts.nested != nullptr) {
    state["nested_blocksize"] = parts.nested->blocksize;
    state["nested_dtype"] = "float32";
    state["nested_offset"] = static_cast<double>(parts.nested->offset);
  }
  const std::string text = state.dump();
  return {text.begin(), text.end()};
}

template <typename T>
std::span<const std::byte> bytes_of(const std::vector<T>& values) {
  return std::as_bytes(std::span<const T>(values));
}

}  // namespace

std::optional<BnbQuantization> bnb_quantization_of(const nlohmann::json& config,
                                                   const std::string& origin) {
  if (!config.contains("quantization_config") || !config["quantization_config"].is_object()) {
    return std::nullopt;
  }
  const auto& declared = config["quantization_config"];
  if (declared.value("quant_method", "") != "bitsandbytes") return std::nullopt;
  BnbQuantization quantization;
  if (declared.contains("llm_int8_threshold")) {
    if (!declared["llm_int8_threshold"].is_number()) {
      fail(origin, ": 'quantization_config.llm_int8_threshold' must be a number");
    }
    quantization.llm_int8_threshold = declared["llm_int8_threshold"].get<float>();
  }
  return quantization;
}

WeightFactory bnb_weights(const TensorSource& tensors, const BnbQuantization& quantization) {
  return [tensors, quantization](const std::string& path) -> std::shared_ptr<Weight> {
    for (const auto type : {bnb::FourBitType::NF4, bnb::FourBitType::FP4}) {
      const std::string state_name =
          path + ".weight.quant_state.bitsandbytes__" + std::string(bnb::four_bit_type_name(type));
      if (tensors.contains(state_name)) return load_4bit(tensors, path, state_name, type);
    }
    if (tensors.contains(path + ".SCB")) {
      return load_int8(tensors, path, quantization.llm_int8_threshold);
    }
    return FloatWeight::from_tensor(tensors.tensor(path + ".weight"));
  };
}

namespace {

class BnbEncoder final : public LayoutEncoder {
 public:
  explicit BnbEncoder(DType model_dtype) : model_dtype_(model_dtype) {}

  std::vector<LayoutTensor> module_tensors(const std::string& path, const Weight& weight) override {
    std::vector<LayoutTensor> tensors;
    const auto borrow = [&tensors](std::string name, DType dtype, std::vector<std::int64_t> shape,
                                   std::span<const std::byte> bytes) {
      tensors.push_back({std::move(name), dtype, std::move(shape), bytes, {}});
    };
    if (const auto* four = dynamic_cast<const Bnb4Weight*>(&weight)) {
      const auto& nested = four->nested();
      const Bnb4Parts parts{
          four->out_features(), four->in_features(), four->type(),   four->blocksize(),
          four->dtype(),        four->code(),        four->absmax(), nested ? &*nested : nullptr};
      const auto n = four->out_features() * four->in_features();
      borrow(path + ".weight", DType::U8, {(n + 1) / 2, 1}, bytes_of(four->packed()));
      for (auto& tensor : tensors_after_codes(path, parts)) tensors.push_back(std::move(tensor));
    } else if (const auto* eight = dynamic_cast<const Int8RowwiseWeight*>(&weight)) {
      any_8bit_ = true;
      threshold_ = eight->threshold();
      borrow(path + ".weight", DType::I8, {eight->out_features(), eight->in_features()},
             bytes_of(eight->codes()));
      borrow(path + ".SCB", DType::F32, {eight->out_features()}, bytes_of(eight->scb()));
      tensors.push_back({path + ".weight_format", DType::U8, {}, {}, {std::byte{0}}});
    } else if (const auto* dense = dynamic_cast<const FloatWeight*>(&weight)) {
      borrow(path + ".weight", dense->dtype(), {dense->out_features(), dense->in_features()},
             dense->bytes());
      // Seen once per chunk, and again when streaming plans the output ahead.
      if (std::find(skipped_.begin(), skipped_.end(), path) == skipped_.end()) {
        skipped_.push_back(path);
      }
    } else {
      fail(path, ": ", weight.describe(), " weights cannot be saved in the bitsandbytes layout");
    }
    return tensors;
  }

  // A 4-bit module's tensors after P.weight (its codes).
  std::vector<LayoutTensor> tensors_after_codes(const std::string& path, const Bnb4Parts& parts) {
    any_4bit_ = true;
    quant_type_ = bnb::four_bit_type_name(parts.type);
    std::vector<LayoutTensor> tensors;
    const auto borrow = [&tensors](std::string name, DType dtype, std::vector<std::int64_t> shape,
                                   std::span<const std::byte> bytes) {
      tensors.push_back({std::move(name), dtype, std::move(shape), bytes, {}});
    };
    const Bnb4NestedState* nested = parts.nested;
    if (nested != nullptr) {
      double_quant_ = true;
      borrow(path + ".weight.absmax", DType::U8, {static_cast<std::int64_t>(nested->codes.size())},
             bytes_of(nested->codes));
    } else {
      borrow(path + ".weight.absmax", DType::F32, {static_cast<std::int64_t>(parts.absmax.size())},
             std::as_bytes(parts.absmax));
    }
    borrow(path + ".weight.quant_map", DType::F32, {static_cast<std::int64_t>(parts.code.size())},
           std::as_bytes(parts.code));
    if (nested != nullptr) {
      borrow(path + ".weight.nested_absmax", DType::F32,
             {static_cast<std::int64_t>(nested->absmax.size())}, bytes_of(nested->absmax));
      borrow(path + ".weight.nested_quant_map", DType::F32,
             {static_cast<std::int64_t>(nested->code.size())}, bytes_of(nested->code));
    }
    const auto state = quant_state_json(parts);
    const auto* first = reinterpret_cast<const std::byte*>(state.data());
    tensors.push_back({path + ".weight.quant_state.bitsandbytes__" + quant_type_,
                       DType::U8,
                       {static_cast<std::int64_t>(state.size())},
                       {},
                       std::vector<std::byte>(first, first + state.size())});
    return tensors;
  }

  nlohmann::json config(const nlohmann::json& source_config) const override {
    if (any_4bit_ && any_8bit_) {
      fail("the bitsandbytes layout holds 4-bit or 8-bit modules, not both in one model");
    }
    nlohmann::json config = source_config;
    config["quantization_config"] = {{"quant_method", "bitsandbytes"},
                                     {"load_in_4bit", any_4bit_},
                                     {"load_in_8bit", any_8bit_},
                                     {"bnb_4bit_quant_type", quant_type_},
                                     {"bnb_4bit_use_double_quant", double_quant_},
                                     {"bnb_4bit_compute_dtype", torch_name(model_dtype_)},
                                     {"bnb_4bit_quant_storage", "uint8"},
                                     {"llm_int8_threshold", threshold_},
                                     {"llm_int8_has_fp16_weight", false},
                                     {"llm_int8_enable_fp32_cpu_offload", false},
                                     {"llm_int8_skip_modules", skipped_}};
    return config;
  }
  std::map<std::string, std::string> metadata() const override { return {{"format", "pt"}}; }

 private:
  DType model_dtype_;
  bool any_4bit_ = false, any_8bit_ = false, double_quant_ = false;
  std::string quant_type_ = "nf4";
  float threshold_ = Int8RowwiseWeight::kDefaultThreshold;
  std::vector<std::string> skipped_;
};

}  // namespace

std::vector<LayoutTensor> bnb4_tensors_after_codes(LayoutEncoder& encoder, const std::string& path,
                                                   const Bnb4Parts& parts) {
  auto* bnb = dynamic_cast<BnbEncoder*>(&encoder);
  if (bnb == nullptr) fail(path, ": 4-bit bitsandbytes tensors need the bitsandbytes layout");
  return bnb->tensors_after_codes(path, parts);
}

std::unique_ptr<LayoutEncoder> bnb_encoder(DType model_dtype) {
  return std::make_unique<BnbEncoder>(model_dtype);
}

void save_bnb_model(const Model& model, const fs::path& dir) {
  BnbEncoder encoder(model.config().dtype);
  save_layout(model, dir, encoder);
}

}  // namespace uq
