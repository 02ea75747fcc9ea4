#include "kernels/cuda/dynamic_library.hpp"

#include <dlfcn.h>

#include <utility>

#include "core/error.hpp"

namespace uq::cuda {

DynamicLibrary::DynamicLibrary(std::string soname, const std::string& needed_for)
    : soname_(std::move(soname)) {
  handle_ = dlopen(soname_.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle_ == nullptr) {
    const char* reason = dlerror();
    fail("cuda: cannot load ", soname_, " (", needed_for,
         "): ", reason != nullptr ? reason : "unknown reason");
  }
}

void* DynamicLibrary::address(const char* symbol) const {
  void* found = dlsym(handle_, symbol);
  if (found == nullptr) fail("cuda: ", soname_, " has no ", symbol);
  return found;
}

}  // namespace uq::cuda
