// The C++ side of docs/MIGRATION.md: every ```cpp block of that document is
// cut from this file (tests/e2e/test_migration_doc.cpp checks they match), and
// this program runs them all on the bundled model.
//   example_migration MODEL_DIR OUT_DIR
#include <cstdio>
#include <filesystem>
#include <string>
#include <uq/uq.hpp>
#include <vector>

namespace {

void from_quantize_dynamic(const std::filesystem::path& model_dir,
                           const std::filesystem::path& out) {
  // [quantize_dynamic]
  // torch: qmodel = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
  auto model = uq::load_model(model_dir);
  uq::UnifiedQuantizationConfig config;
  config.backend = "custom";  // int8 per output channel; activations stay float
  config.bits = 8;
  auto [qmodel, quantizer] = uq::quantize_model(model, config);
  quantizer.save_model(*qmodel, out / "int8");
  // [end]
}

void from_bitsandbytes(const std::filesystem::path& model_dir, const std::filesystem::path& out) {
  // [bitsandbytes]
  // transformers: BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
  //                                  bnb_4bit_use_double_quant=True)
  uq::UnifiedQuantizationConfig nf4;
  nf4.backend = "bnb";
  nf4.bits = 4;
  nf4.bnb_4bit_quant_type = "nf4";
  nf4.bnb_4bit_use_double_quant = true;
  auto [model4, quantizer4] = uq::quantize_model(model_dir, nf4);
  quantizer4.save_model(*model4, out / "nf4");  // transformers + bitsandbytes state dict

  // BitsAndBytesConfig(load_in_8bit=True): LLM.int8 (outlier columns |x| >= 6 in float)
  uq::UnifiedQuantizationConfig int8;
  int8.backend = "bnb";
  int8.bits = 8;
  auto [model8, quantizer8] = uq::quantize_model(model_dir, int8);
  // [end]
  (void)model8;
}

void from_quanto(const std::filesystem::path& model_dir, const std::filesystem::path& out) {
  // [quanto]
  // optimum-quanto: quantize(model, weights=qint4); freeze(model)
  uq::UnifiedQuantizationConfig config;
  config.backend = "quanto";
  config.bits = 4;  // qint4, groups of 128 (96/64/32 when 128 does not divide)
  auto [qmodel, quantizer] = uq::quantize_model(model_dir, config);
  quantizer.save_model(*qmodel, out / "quanto");  // state dict + quantization_map.json
  auto again = quantizer.load_model(out / "quanto");
  // [end]
  (void)again;
}

void from_mlx(const std::filesystem::path& model_dir, const std::filesystem::path& out) {
  // [mlx]
  // mlx_lm.convert(hf_path, quantize=True, q_bits=4, q_group_size=64,
  //                quant_predicate=...)  # 8 bits for the embedding and the head
  uq::UnifiedQuantizationConfig config;
  config.backend = "mlx";
  config.default_bits = 4;
  config.group_size = 64;
  config.layer_bits = {{"embed", 8}, {"lm_head", 8}};
  auto [qmodel, quantizer] = uq::quantize_model(model_dir, config);
  quantizer.save_model(*qmodel, out / "mlx");  // loads with mlx_lm.load
  // [end]
}

void validate(const std::filesystem::path& model_dir, const std::filesystem::path& out) {
  // [validate]
  // torch.cosine_similarity(original(ids).flatten(), quantized(ids).flatten(), dim=0)
  auto original = uq::load_model(model_dir);
  auto quantized = uq::load_model(out / "mlx");  // any layout, recognised by itself
  const std::vector<std::int32_t> ids = original->tokenizer()->encode("The quick brown fox");
  const float similarity = uq::cosine_similarity(original->forward(ids), quantized->forward(ids));
  std::printf("cosine similarity %.6f\n", similarity);
  // [end]
  if (!(similarity > 0.95f)) throw uq::Error("similarity too low");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: example_migration MODEL_DIR OUT_DIR\n");
    return 2;
  }
  try {
    const std::filesystem::path model_dir = argv[1], out = argv[2];
    from_quantize_dynamic(model_dir, out);
    from_bitsandbytes(model_dir, out);
    from_quanto(model_dir, out);
    from_mlx(model_dir, out);
    validate(model_dir, out);
  } catch (const uq::Error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
  return 0;
}
