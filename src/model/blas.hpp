#pragma once
// OpenBLAS is called from inside our own parallel loops, each thread with its
// own slice of work; OpenBLAS's threads would only compete with ours.
namespace uq {

// Makes OpenBLAS single-threaded (once per process) before the first sgemm.
void use_single_threaded_blas();

}  // namespace uq
