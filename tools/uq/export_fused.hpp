#pragma once
// `uq export MODEL --adapter DIR --fuse -o OUT`: merges a LoRA adapter into
// the weights. Without --bits the result is a Hugging Face float directory
// (W' = dequant(W) + scale·B·A); with --bits it is re-quantized by a backend,
// and the report says how much of the adapter's change to each weight survived.
#include <cstdint>
#include <string>

namespace uq::cli {

struct FusedExportOptions {
  std::string model;
  std::string adapter;
  std::string output;
  std::string dtype = "float32";  // float export: float32 | bfloat16 | float16
  int bits = 0;                   // 0: keep float; else re-quantize
  std::string backend = "mlx";
  int group_size = 64;
  bool json = false;
};

// Throws uq::Error naming the option, file or module at fault.
void export_fused(const FusedExportOptions& options);

}  // namespace uq::cli
