#pragma once
// What a fused GEMV multiplies, computed inside the product from `input` (f32, device) — the
// interface the affine persistent kernel and the bf16 GEMV share (DeviceLinear::apply_fused):
// plain: x = input [rows, in]; rmsnorm: x = h * rsqrt(mean(h^2) + eps) * gamma with h = input
// [rows, in] (the decoder's RMSNorm before q|k|v, gate|up and lm_head); swiglu: x = silu(gate) *
// up with input [rows, 2 * in], gate then up in each row (the decoder's gate|up product, before
// down).
namespace uq::cuda {

enum class GemvInputMode { plain, rmsnorm, swiglu };
struct GemvInput {
  GemvInputMode mode = GemvInputMode::plain;
  const float* gamma = nullptr;  // rmsnorm: [in] weight (device)
  float eps = 0.0f;              // rmsnorm
};

}  // namespace uq::cuda
