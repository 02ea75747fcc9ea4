#pragma once
// unified_quantization: the one header of the public API (DESIGN.md §1).
//
//   auto model = uq::load_model("models/tiny-llama");
//   auto [qmodel, quantizer] = uq::quantize_model(model, {.bits = 4, .backend = "auto"});
//   quantizer.save_model(*qmodel, "model_quantized");
//   auto again = quantizer.load_model("model_quantized");
//   float sim = uq::cosine_similarity(model->forward(ids), qmodel->forward(ids));

#include "api/config.hpp"    // UnifiedQuantizationConfig
#include "api/metrics.hpp"   // cosine_similarity, mean_kl_divergence
#include "api/quantize.hpp"  // quantize_model, Quantizer
#include "core/error.hpp"    // uq::Error
#include "io/tokenizer/tokenizer.hpp"
#include "model/decoder.hpp"            // Model, load_model
#include "model/perplexity.hpp"         // perplexity
#include "train/adamw.hpp"              // AdamW
#include "train/adapter_io.hpp"         // save_adapters, load_adapters (PEFT, mlx-lm)
#include "train/lora_attach.hpp"        // attach_lora, Model::lora_parameters
#include "train/trainable_decoder.hpp"  // forward + backward for a custom loop
#include "train/trainer.hpp"            // Trainer: the `uq finetune` loop
