#pragma once
// A backend: one quantization family (number format + file layout). Each
// lives in src/api/backends/<name>_backend.cpp and is listed once in
// backend_registry.cpp; validation, quantize_model, Quantizer::save_model and
// `uq info` all go through this interface.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "api/config.hpp"
#include "core/dtype.hpp"

namespace uq {

class LayoutEncoder;
class Weight;

struct BackendSpec {
  std::string name;
  std::string format;            // e.g. "affine per group (scale, bias)"
  std::vector<int> bits;         // bits the backend writes
  std::vector<int> group_sizes;  // accepted group sizes; empty: not configurable
  std::string layout;            // file layout it writes and reads
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const BackendSpec& spec() const = 0;

  // The quantized form of one module's float weight, or nullptr with `note`
  // saying why it stays float (e.g. a dimension the format cannot hold).
  // Throws uq::Error naming the tensor for bad values (NaN/Inf).
  virtual std::shared_ptr<Weight> quantize(const std::string& module_path, const Weight& weight,
                                           int bits, const UnifiedQuantizationConfig& config,
                                           std::string& note) const = 0;

  // True when quantizing any block of whole rows alone gives exactly those
  // rows of the whole matrix's quantization and layout (per-row or per-group
  // formats): streaming then quantizes `chunk_size` rows at a time; otherwise
  // one matrix at a time.
  virtual bool rows_independent(int bits, const UnifiedQuantizationConfig& config) const = 0;

  // For a format that is not rows_independent but still streams in row
  // chunks: k > 0 when its layout interleaves the matrix's k equal row parts
  // (quanto packs row r with row r + out/2 at 4 bits). Rows [a, a + c) of
  // every part, quantized together as one k·c-row weight, then give the
  // layout's first tensor's share for rows [a, a + c) of the first part, and
  // each other tensor's rows part by part (a tensor without dimensions is the
  // same for every chunk). 0: one whole matrix at a time.
  virtual int interleaved_row_parts(int /*bits*/,
                                    const UnifiedQuantizationConfig& /*config*/) const {
    return 0;
  }

  // The writer of the backend's native layout (io/formats/layout_writer.hpp)
  // for a model stored in `model_dtype`; the in-memory save and streaming
  // quantization both write through it.
  virtual std::unique_ptr<LayoutEncoder> encoder(DType model_dtype,
                                                 const UnifiedQuantizationConfig& config) const = 0;
};

// Every backend built in, in the order `uq info` lists them.
const std::vector<std::unique_ptr<Backend>>& backends();
// nullptr when unknown; "mps" is an alias of "custom".
const Backend* find_backend(std::string_view name);
std::string known_backend_names();  // "mlx, ..., auto"

}  // namespace uq
