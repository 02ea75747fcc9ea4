#pragma once
// What each backend is and supports: the one table validation, `auto`
// selection and `uq info` read.
#include <string>
#include <string_view>
#include <vector>

namespace uq {

struct BackendSpec {
  std::string name;
  std::string format;            // e.g. "affine per group (scale, bias)"
  std::vector<int> bits;         // bits the backend writes
  std::vector<int> group_sizes;  // empty: per channel / fixed blocks
  std::string layout;            // file layout it writes and reads
  bool available = false;        // implemented in this build
};

const std::vector<BackendSpec>& backend_specs();
// nullptr when unknown; "mps" is an alias of "custom".
const BackendSpec* find_backend(std::string_view name);
std::string known_backend_names();  // "mlx, quanto, bnb, custom (alias mps), auto"

}  // namespace uq
