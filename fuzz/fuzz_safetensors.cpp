// libFuzzer target: arbitrary bytes as a .safetensors file. Opening must either succeed with
// every tensor readable inside the mapping (and scanned for NaN/Inf), or throw uq::Error;
// anything else (crash, sanitizer report, other exception) is a bug.
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/error.hpp"
#include "fuzz_input_file.hpp"
#include "io/safetensors.hpp"
#include "io/tensor_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = uq::fuzz::scratch_directory() / "model.safetensors";
  uq::fuzz::write_bytes(path, data, size);
  try {
    const auto file = uq::SafetensorsFile::open(path);
    std::size_t total = 0;
    for (const auto& name : file->names()) {
      const uq::TensorView view = file->tensor(name);
      total += view.nbytes;
      // Touch the first and last byte: ASan has no view of the mapping, but a
      // view past its end faults.
      if (view.nbytes > 0) {
        std::byte edges[2];
        std::memcpy(&edges[0], view.data, 1);
        std::memcpy(&edges[1], view.data + view.nbytes - 1, 1);
      }
      if (uq::is_float(view.dtype)) (void)view.to_f32();
    }
    if (total != file->data_bytes()) __builtin_trap();  // tensors must tile the data
    (void)uq::check_tensors_finite(path);               // --check-tensors over the same tensors
  } catch (const uq::Error&) {
  }
  return 0;
}
