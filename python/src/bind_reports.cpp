// What a user reads to choose: compare_backends, BackendManager (devices,
// backends, memory) and the agreement metrics. Every report is a dict.
#include <pybind11/stl.h>

#include <span>

#include "api/backend_manager.hpp"
#include "api/compare_backends.hpp"
#include "api/metrics.hpp"
#include "bindings.hpp"
#include "conversions.hpp"
#include "core/error.hpp"
#include "model/decoder.hpp"

namespace uq::python {
namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

std::span<const float> flat(const FloatArray& array) {
  return {array.data(), static_cast<std::size_t>(array.size())};
}

py::dict row_dict(const ComparisonRow& row) {
  py::dict out;
  out["backend"] = row.backend;
  out["device"] = row.device;
  out["scheme"] = row.scheme;
  out["quantize_seconds"] = row.quantize_seconds;
  out["disk_mib"] = row.disk_mib;
  out["bits_per_weight"] = row.bits_per_weight;
  out["weights_mib"] = row.weights_mib;
  out["peak_memory_mib"] = row.peak_memory_mib;
  out["process_peak_mib"] = row.process_peak_mib;
  out["prompt_tokens_per_second"] = row.prompt_tokens_per_second;
  out["decode_tokens_per_second"] = row.decode_tokens_per_second;
  out["perplexity"] = row.perplexity;
  out["cosine_similarity"] = row.cosine_similarity;
  out["kl_divergence"] = row.kl_divergence;
  return out;
}

py::dict comparison_dict(const BackendComparison& comparison) {
  py::dict out;
  out["input_shape"] = py::make_tuple(comparison.batch, comparison.sequence);
  out["bits"] = comparison.bits;
  out["devices"] = comparison.devices;
  out["data"] = comparison.data;
  out["ctx"] = comparison.ctx;
  out["eval_windows"] = comparison.eval_windows;
  out["eval_tokens"] = comparison.eval_tokens;
  py::list rows;
  for (const auto& row : comparison.rows) rows.append(row_dict(row));
  out["rows"] = rows;
  py::list skipped;
  for (const auto& skip : comparison.skipped) {
    py::dict entry;
    entry["backend"] = skip.backend;
    entry["device"] = skip.device;
    entry["reason"] = skip.reason;
    skipped.append(entry);
  }
  out["skipped"] = skipped;
  return out;
}

py::dict memory_dict(const MemoryInfo& info) {
  py::dict out;
  out["total_gb"] = info.total_gb;
  out["available_gb"] = info.available_gb;
  out["used_gb"] = info.used_gb;
  out["process_rss_gb"] = info.process_rss_gb;
  out["process_peak_gb"] = info.process_peak_gb;
  py::list gpus;
  for (const auto& gpu : info.gpus) {
    py::dict entry;
    entry["index"] = gpu.index;
    entry["used_gb"] = gpu.used_gb;
    entry["total_gb"] = gpu.total_gb;
    gpus.append(entry);
  }
  out["gpus"] = gpus;
  return out;
}

py::dict cpu_dict(const CpuInfo& cpu) {
  py::dict out;
  out["model"] = cpu.model;
  out["cores"] = cpu.cores;
  out["threads"] = cpu.threads;
  out["simd"] = cpu.simd;
  out["avx2"] = cpu.avx2;
  out["fma"] = cpu.fma;
  out["f16c"] = cpu.f16c;
  out["avx512f"] = cpu.avx512f;
  return out;
}

py::list gpu_list(const std::vector<GpuInfo>& gpus) {
  py::list out;
  for (const auto& gpu : gpus) {
    py::dict entry;
    entry["index"] = gpu.index;
    entry["name"] = gpu.name;
    entry["compute_capability"] = py::make_tuple(gpu.compute_major, gpu.compute_minor);
    entry["memory_gb"] = gpu.memory_gb;
    entry["multiprocessors"] = gpu.multiprocessors;
    out.append(entry);
  }
  return out;
}

py::list backend_list(const std::vector<BackendCapabilities>& backends) {
  py::list out;
  for (const auto& backend : backends) {
    py::dict entry;
    entry["name"] = backend.name;
    entry["format"] = backend.format;
    entry["layout"] = backend.layout;
    entry["bits"] = backend.bits;
    entry["group_sizes"] = backend.group_sizes;
    entry["calibration"] = backend.calibration;
    entry["lora"] = backend.lora;
    entry["devices"] = backend.devices;
    entry["cuda_bits"] = backend.cuda_bits;
    out.append(entry);
  }
  return out;
}

}  // namespace

void bind_reports(py::module_& m) {
  m.def(
      "compare_backends",
      [](const std::shared_ptr<Model>& model, std::vector<std::int64_t> input_shape, int bits,
         std::vector<std::string> backends, std::string device, int group_size, std::string data,
         std::int64_t ctx, std::int64_t eval_windows, std::int64_t decode_tokens) {
        CompareOptions options;
        options.backends = std::move(backends);
        options.device = std::move(device);
        options.group_size = group_size;
        options.data = data;
        options.ctx = ctx;
        options.eval_windows = eval_windows;
        options.decode_tokens = decode_tokens;
        BackendComparison comparison;
        {
          py::gil_scoped_release release;
          comparison = compare_backends(model, input_shape, bits, options);
        }
        return comparison_dict(comparison);
      },
      py::arg("model"), py::arg("input_shape"), py::arg("bits"), py::arg("backends"),
      py::arg("device"), py::arg("group_size"), py::arg("data"), py::arg("ctx"),
      py::arg("eval_windows"), py::arg("decode_tokens"));

  py::class_<BackendManager, std::unique_ptr<BackendManager, py::nodelete>>(m, "BackendManager")
      .def_static("get_instance", &BackendManager::get_instance, py::return_value_policy::reference)
      .def("get_memory_info",
           [](const BackendManager& manager) { return memory_dict(manager.get_memory_info()); })
      .def("cpu", [](const BackendManager& manager) { return cpu_dict(manager.cpu()); })
      .def("gpus", [](const BackendManager& manager) { return gpu_list(manager.gpus()); })
      .def("backends",
           [](const BackendManager& manager) { return backend_list(manager.backends()); });

  m.def(
      "cosine_similarity",
      [](const FloatArray& a, const FloatArray& b) { return cosine_similarity(flat(a), flat(b)); },
      py::arg("a"), py::arg("b"),
      "Cosine similarity of two arrays, flattened (double accumulation).");
  m.def(
      "mean_kl_divergence",
      [](const FloatArray& reference, const FloatArray& candidate) {
        if (reference.ndim() < 1) fail("mean_kl_divergence: expected logits [..., vocab]");
        return mean_kl_divergence(flat(reference), flat(candidate),
                                  reference.shape(reference.ndim() - 1));
      },
      py::arg("reference_logits"), py::arg("candidate_logits"),
      "Mean over positions of KL(softmax(reference) || softmax(candidate)).");
}

}  // namespace uq::python
