// Model: loading (a directory, or tensors handed over from Python), forward,
// generation, the tokenizer and perplexity.
#include <pybind11/stl.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "bindings.hpp"
#include "conversions.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"
#include "io/formats/gguf_model.hpp"
#include "io/formats/gguf_recipe.hpp"
#include "io/formats/layout_detection.hpp"
#include "io/hf_config.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "model/decoder.hpp"
#include "model/perplexity.hpp"

namespace uq::python {
namespace {

const Tokenizer& tokenizer_of(const Model& model) {
  if (!model.tokenizer()) fail("model: loaded without a tokenizer (no tokenizer.json)");
  return *model.tokenizer();
}

// Logits [rows, sequence, vocab] (or [sequence, vocab] for one unbatched row).
py::array_t<float> forward(const Model& model, const py::handle& ids) {
  bool batched = false;
  const auto rows = id_rows(ids, batched);
  const auto vocab = static_cast<py::ssize_t>(model.config().vocab_size);
  const auto length = static_cast<py::ssize_t>(rows.front().size());
  std::vector<float> logits;
  {
    py::gil_scoped_release release;
    logits.reserve(rows.size() * static_cast<std::size_t>(length * vocab));
    for (const auto& row : rows) {
      const auto one = model.forward(row, LogitsMode::All);
      logits.insert(logits.end(), one.begin(), one.end());
    }
  }
  std::vector<py::ssize_t> shape{length, vocab};
  if (batched) shape.insert(shape.begin(), static_cast<py::ssize_t>(rows.size()));
  return float_array(std::move(logits), shape);
}

// Builds a Model from tensors held by Python: {name: (dtype name, array)}.
// The arrays are copied into the model's weights, so they may go afterwards.
std::shared_ptr<Model> model_from_tensors(const py::dict& config, const py::dict& tensors,
                                          const std::string& tokenizer_json) {
  std::map<std::string, TensorView> views;
  std::vector<py::buffer_info> buffers;  // keeps every array's buffer alive while building
  for (const auto& [key, value] : tensors) {
    const std::string name = py::str(key);
    const auto entry = value.cast<py::tuple>();
    const std::string dtype_name = py::str(entry[0]);
    const auto dtype = parse_dtype(dtype_name);
    if (!dtype) fail("tensor '", name, "': unsupported dtype '", dtype_name, "'");
    auto array = py::array::ensure(entry[1], py::array::c_style);
    if (!array) fail("tensor '", name, "': not an array");
    buffers.push_back(array.request());
    const auto& buffer = buffers.back();
    if (static_cast<std::size_t>(buffer.itemsize) != dtype_size(*dtype)) {
      fail("tensor '", name, "': ", buffer.itemsize, "-byte elements do not hold ", dtype_name);
    }
    TensorView view;
    view.name = name;
    view.dtype = *dtype;
    view.shape.assign(buffer.shape.begin(), buffer.shape.end());
    view.data = static_cast<const std::byte*>(buffer.ptr);
    view.nbytes = static_cast<std::size_t>(buffer.size * buffer.itemsize);
    views.emplace(name, std::move(view));
  }
  const std::string origin = "transformers model";
  ModelConfig model_config = parse_model_config(to_json(config), origin);
  const TensorSource source{[&views](const std::string& name) { return views.contains(name); },
                            [&views, &origin](const std::string& name) {
                              const auto found = views.find(name);
                              if (found == views.end()) fail(origin, ": no tensor '", name, "'");
                              return found->second;
                            }};
  const WeightFactory weights = weight_factory_for(model_config, source, origin);
  auto model = std::make_shared<Model>(std::move(model_config), source, weights);
  if (!tokenizer_json.empty()) {
    model->set_tokenizer(std::make_shared<const Tokenizer>(Tokenizer::from_file(tokenizer_json)));
  }
  return model;
}

py::list weight_table(const Model& model) {
  py::list table;
  for (const auto& [path, weight] : model.named_weights()) {
    py::dict row;
    row["path"] = path;
    row["scheme"] = weight->describe();
    row["shape"] = py::make_tuple(weight->out_features(), weight->in_features());
    row["bytes"] = weight->storage_bytes();
    table.append(row);
  }
  return table;
}

}  // namespace

void bind_model(py::module_& m) {
  py::class_<Model, std::shared_ptr<Model>>(m, "Model")
      .def("forward", &forward, py::arg("input_ids"),
           "Logits (float32) of every position: [batch, sequence, vocab] for 2-D ids, "
           "[sequence, vocab] for 1-D ids.")
      .def(
          "generate",
          [](const Model& model, const std::vector<std::int32_t>& prompt,
             std::int64_t max_new_tokens, float temperature, std::int32_t top_k, float top_p,
             std::uint64_t seed, bool stop_at_eos) {
            GenerationOptions options;
            options.max_new_tokens = max_new_tokens;
            options.sampling = {temperature, top_k, top_p, seed};
            options.stop_at_eos = stop_at_eos;
            py::gil_scoped_release release;
            return model.generate(prompt, options).ids;
          },
          py::arg("prompt_ids"), py::arg("max_new_tokens") = 32, py::arg("temperature") = 0.0f,
          py::arg("top_k") = 0, py::arg("top_p") = 1.0f, py::arg("seed") = 0,
          py::arg("stop_at_eos") = true)
      .def(
          "encode",
          [](const Model& model, const std::string& text) {
            return tokenizer_of(model).encode(text);
          },
          py::arg("text"))
      .def(
          "decode",
          [](const Model& model, const std::vector<std::int32_t>& ids, bool skip_special_tokens) {
            return tokenizer_of(model).decode(ids, skip_special_tokens);
          },
          py::arg("ids"), py::arg("skip_special_tokens") = false)
      .def(
          "perplexity",
          [](const Model& model, const std::vector<std::int32_t>& ids, std::int64_t ctx) {
            PerplexityResult result;
            {
              py::gil_scoped_release release;
              result = perplexity(model, ids, ctx);
            }
            py::dict out;
            out["perplexity"] = result.perplexity;
            out["mean_nll"] = result.mean_nll;
            out["tokens"] = result.tokens;
            out["windows"] = result.windows;
            out["seconds"] = result.seconds;
            return out;
          },
          py::arg("ids"), py::arg("ctx") = 256)
      .def_property_readonly("config",
                             [](const Model& model) { return to_python(model.config().raw); })
      .def_property_readonly("has_tokenizer",
                             [](const Model& model) { return model.tokenizer() != nullptr; })
      .def_property_readonly("source_directory",
                             [](const Model& model) { return model.source_directory().string(); })
      .def("weights", &weight_table, "One dict per weight matrix: path, scheme, shape, bytes.");

  m.def(
      "load_model",
      [](const std::string& path) {
        py::gil_scoped_release release;
        return load_model(path);
      },
      py::arg("path"));
  m.def(
      "export_gguf",
      [](const Model& model, const std::string& path, const std::string& type) {
        const auto recipe = parse_gguf_recipe(type);
        if (!recipe) fail("type: '", type, "' is not a GGUF type (", gguf_recipe_names(), ")");
        std::vector<std::string> log;
        GgufExportReport report;
        {
          py::gil_scoped_release release;
          report = export_gguf(model, path, *recipe,
                               [&log](const std::string& line) { log.push_back(line); });
        }
        py::dict out;
        out["file_bytes"] = report.file_bytes;
        out["dequantized"] = report.dequantized;
        out["tensors"] = report.tensors.size();
        out["log"] = log;
        return out;
      },
      py::arg("model"), py::arg("path"), py::arg("type"));
  m.def("model_from_tensors", &model_from_tensors, py::arg("config"), py::arg("tensors"),
        py::arg("tokenizer_json") = "");
}

}  // namespace uq::python
