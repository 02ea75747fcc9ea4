#pragma once
// A shared library opened with dlopen when first needed, instead of linked. cuBLAS (with
// cuBLASLt) costs ~150 MiB of resident memory the moment it is loaded, and cuSOLVER (with
// cuSPARSE and nvJitLink) ~115 MiB more: linked, every `uq` process paid that at start-up
// whether or not it touched a GPU.
#include <string>

namespace uq::cuda {

class DynamicLibrary {
 public:
  // Opens `soname` (never closed: its functions stay valid for the life of the process).
  // Throws uq::Error naming the library, what needs it, and the loader's reason.
  DynamicLibrary(std::string soname, const std::string& needed_for);

  // Sets `function` to the library's `symbol`; throws uq::Error when it has none.
  template <class Function>
  void bind(const char* symbol, Function& function) const {
    function = reinterpret_cast<Function>(address(symbol));
  }

 private:
  void* address(const char* symbol) const;

  std::string soname_;
  void* handle_ = nullptr;
};

}  // namespace uq::cuda
