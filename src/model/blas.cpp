#include "model/blas.hpp"

#include <cblas.h>

namespace uq {

void use_single_threaded_blas() {
  static const bool done = (openblas_set_num_threads(1), true);
  (void)done;
}

}  // namespace uq
