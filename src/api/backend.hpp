#pragma once
// A backend: one quantization family (number format + file layout). Each
// lives in src/api/backends/<name>_backend.cpp and is listed once in
// backend_registry.cpp; validation, quantize_model, Quantizer::save_model and
// `uq info` all go through this interface.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "api/config.hpp"
#include "core/dtype.hpp"

namespace uq {

class LayoutEncoder;
class Weight;
struct LayoutTensor;

// One module streamed in row chunks whose layout's first tensor (the codes)
// is exact chunk by chunk while its other tensors need statistics of the
// whole matrix (bnb 4-bit: the mean of every block absmax for the double
// quantization). What it gathers is small next to the codes.
class ChunkedModule {
 public:
  virtual ~ChunkedModule() = default;
  // Every chunk but the last holds a multiple of this many rows.
  virtual std::int64_t row_multiple() const = 0;
  // The layout's first tensor's shape for the whole matrix.
  virtual std::vector<std::int64_t> codes_shape() const = 0;
  // Quantizes the module's next rows (a float weight): the layout's first
  // tensor of the returned weight holds their codes.
  virtual std::shared_ptr<Weight> add_rows(const Weight& rows) = 0;
  // After the last chunk: the layout's other tensors, in file order, through
  // `encoder` (they borrow from this object).
  virtual std::vector<LayoutTensor> finish(LayoutEncoder& encoder) = 0;
  // The whole module's Weight::describe() and storage_bytes().
  virtual std::string describe() const = 0;
  virtual std::size_t storage_bytes() const = 0;
};

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

  // For a format that is neither rows_independent nor interleaved but whose
  // codes still stream in row chunks: the streaming state of one module of
  // `out` × `in` quantized to `bits`; nullptr: one whole matrix at a time.
  virtual std::unique_ptr<ChunkedModule> chunked_module(
      const std::string& /*module_path*/, std::int64_t /*out*/, std::int64_t /*in*/, int /*bits*/,
      const UnifiedQuantizationConfig& /*config*/) const {
    return nullptr;
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
