// UnifiedQuantizationConfig, quantize_model and Quantizer with the guide's
// names: config fields are keyword arguments, reports are dicts.
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <functional>
#include <map>
#include <string>

#include "api/config.hpp"
#include "api/quantize.hpp"
#include "bindings.hpp"
#include "model/decoder.hpp"

namespace uq::python {
namespace {

using Config = UnifiedQuantizationConfig;

// Every field once: the keyword constructor, attributes and repr all use it.
template <typename Visit>
void for_each_field(Visit&& visit) {
  visit("bits", &Config::bits);
  visit("backend", &Config::backend);
  visit("default_bits", &Config::default_bits);
  visit("group_size", &Config::group_size);
  visit("layer_bits", &Config::layer_bits);
  visit("skip", &Config::skip);
  visit("method", &Config::method);
  visit("calibration_data", &Config::calibration_data);
  visit("calibration_samples", &Config::calibration_samples);
  visit("calibration_ctx", &Config::calibration_ctx);
  visit("seed", &Config::seed);
  visit("act_order", &Config::act_order);
  visit("memory_efficient", &Config::memory_efficient);
  visit("chunk_size", &Config::chunk_size);
  visit("enable_lora", &Config::enable_lora);
  visit("lora_rank", &Config::lora_rank);
  visit("device", &Config::device);
  visit("bnb_4bit_quant_type", &Config::bnb_4bit_quant_type);
  visit("bnb_4bit_use_double_quant", &Config::bnb_4bit_use_double_quant);
  visit("quanto_weights", &Config::quanto_weights);
  visit("quanto_activations", &Config::quanto_activations);
}

Config config_from_kwargs(const py::kwargs& kwargs) {
  Config config;
  std::map<std::string, std::function<void(const py::handle&)>> setters;
  for_each_field([&](const char* name, auto member) {
    setters[name] = [&config, member](const py::handle& value) {
      using Field = std::remove_reference_t<decltype(config.*member)>;
      config.*member = value.cast<Field>();
    };
  });
  for (const auto& [key, value] : kwargs) {
    const std::string name = py::str(key);
    const auto setter = setters.find(name);
    if (setter == setters.end()) {
      throw py::type_error("UnifiedQuantizationConfig: unknown option '" + name + "'");
    }
    setter->second(value);
  }
  return config;
}

py::dict config_dict(const Config& config) {
  py::dict out;
  for_each_field([&](const char* name, auto member) { out[name] = py::cast(config.*member); });
  return out;
}

py::dict report_dict(const QuantizationReport& report) {
  py::dict out;
  out["backend"] = report.backend;
  out["backend_reason"] = report.backend_reason;
  out["device"] = report.device;
  out["seconds"] = report.seconds;
  out["quantized_parameters"] = report.quantized_parameters();
  out["bits_per_quantized_weight"] = report.bits_per_quantized_weight();
  out["warnings"] = report.warnings;
  out["not_calibrated"] = report.not_calibrated;
  py::list layers;
  for (const auto& layer : report.layers) {
    py::dict row;
    row["path"] = layer.path;
    row["scheme"] = layer.scheme;
    row["bits"] = layer.bits;
    row["parameters"] = layer.parameters;
    row["bytes"] = layer.bytes;
    row["note"] = layer.note;
    row["method"] = layer.method;
    row["reconstruction_error"] = layer.reconstruction_error;
    row["error_measure"] = layer.error_measure;
    layers.append(row);
  }
  out["layers"] = layers;
  return out;
}

}  // namespace

void bind_quantize(py::module_& m) {
  auto config_class = py::class_<Config>(m, "UnifiedQuantizationConfig");
  config_class.def(py::init(&config_from_kwargs))
      .def("validate",
           [](Config& self) {
             validate(self);
             return self;
           })
      .def("to_dict", &config_dict)
      .def("__repr__", [](const Config& self) {
        return "UnifiedQuantizationConfig(" + py::str(config_dict(self)).cast<std::string>() + ")";
      });
  for_each_field([&](const char* name, auto member) { config_class.def_readwrite(name, member); });

  py::class_<Quantizer>(m, "Quantizer")
      .def_property_readonly("config", &Quantizer::config)
      .def_property_readonly("report", [](const Quantizer& q) { return report_dict(q.report()); })
      .def("save_model", &Quantizer::save_model, py::arg("model"), py::arg("directory"),
           py::call_guard<py::gil_scoped_release>())
      .def("load_model", &Quantizer::load_model, py::arg("directory"),
           py::call_guard<py::gil_scoped_release>());

  m.def(
      "quantize_model",
      [](const std::shared_ptr<Model>& model, Config config) {
        py::gil_scoped_release release;
        return quantize_model(std::shared_ptr<const Model>(model), std::move(config));
      },
      py::arg("model"), py::arg("config"));
  m.def(
      "quantize_model_from_path",
      [](const std::filesystem::path& path, Config config) {
        py::gil_scoped_release release;
        return quantize_model(path, std::move(config));
      },
      py::arg("path"), py::arg("config"));
}

}  // namespace uq::python
