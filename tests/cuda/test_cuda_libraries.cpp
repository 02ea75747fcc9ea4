// cuBLAS and cuSOLVER are opened with dlopen on first use (kernels/cuda/dynamic_library.hpp),
// not linked: the sonames and exported names must be right, which needs no GPU to check; and a
// library that is not there is refused with an error naming it.
#include <gtest/gtest.h>

#include <string>

#include "core/error.hpp"
#include "kernels/cuda/cublas_library.hpp"
#include "kernels/cuda/cusolver_library.hpp"
#include "kernels/cuda/dynamic_library.hpp"

namespace uq::cuda {
namespace {

TEST(CudaLibraries, CublasLoadsWithEveryFunction) {
  const CublasLibrary& library = cublas_library();
  EXPECT_NE(library.create, nullptr);
  EXPECT_NE(library.destroy, nullptr);
  EXPECT_NE(library.set_stream, nullptr);
  EXPECT_NE(library.set_workspace, nullptr);
  EXPECT_NE(library.sgemm, nullptr);
  EXPECT_NE(library.sgemm_strided_batched, nullptr);
  EXPECT_NE(library.ssyrk, nullptr);
  EXPECT_NE(library.gemm_ex, nullptr);
  ASSERT_NE(library.get_status_string, nullptr);
  // A call that needs no device: the library really runs.
  EXPECT_STRNE(library.get_status_string(CUBLAS_STATUS_NOT_INITIALIZED), "");
}

TEST(CudaLibraries, CusolverLoadsWithEveryFunction) {
  const CusolverLibrary& library = cusolver_library();
  EXPECT_NE(library.create, nullptr);
  EXPECT_NE(library.destroy, nullptr);
  EXPECT_NE(library.set_stream, nullptr);
  EXPECT_NE(library.dpotrf_buffer_size, nullptr);
  EXPECT_NE(library.dpotrf, nullptr);
  EXPECT_NE(library.dpotri_buffer_size, nullptr);
  EXPECT_NE(library.dpotri, nullptr);
}

TEST(CudaLibraries, MissingLibraryOrSymbolIsNamed) {
  try {
    DynamicLibrary("libuq-no-such-library.so.1", "a test");
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("libuq-no-such-library.so.1 (a test)"),
              std::string::npos)
        << error.what();
  }
  const DynamicLibrary library("libcublas.so." + std::to_string(CUBLAS_VER_MAJOR), "a test");
  void (*function)() = nullptr;
  try {
    library.bind("uq_no_such_function", function);
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("has no uq_no_such_function"), std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace uq::cuda
