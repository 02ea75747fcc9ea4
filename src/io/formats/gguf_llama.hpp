#pragma once
// How a Hugging Face Llama-family model maps onto llama.cpp's GGUF "llama"
// architecture, both ways: tensor names, the row order of the q/k projections,
// the llama.* hyper-parameter keys and the tokenizer.ggml.* keys.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/hf_config.hpp"

namespace uq {

class GgufFile;
class GgufWriter;
class Tokenizer;

// "model.layers.3.self_attn.q_proj" -> "blk.3.attn_q", "model.embed_tokens" ->
// "token_embd", "lm_head" -> "output", "model.norm" -> "output_norm"; nullopt
// for a module llama.cpp has no name for. Works on module paths (append
// ".weight" for tensors) and the reverse (gguf -> HF).
std::optional<std::string> gguf_module_name(const std::string& hf_module);
std::optional<std::string> hf_module_name(const std::string& gguf_module);

// llama.cpp expects the rows of q_proj/k_proj of HF checkpoints reordered:
// within each head, HF keeps the rotary pairs (i, i + head_dim/2) apart while
// ggml's rope pairs adjacent rows (2i, 2i+1). Entry g is the HF row that
// becomes GGUF row g, for `heads` heads of `head_dim` rows.
std::vector<std::int64_t> gguf_qk_row_order(std::int64_t heads, std::int64_t head_dim);

// llama.* keys and general.architecture for `config`; throws uq::Error naming
// the field for what the llama GGUF architecture cannot express (biases,
// sliding windows, llama3 rope scaling).
void add_llama_metadata(GgufWriter& writer, const ModelConfig& config);
// tokenizer.ggml.* keys: a byte-level BPE tokenizer as model "gpt2" with
// `pre` as the pre-tokenizer name, tokens padded to `vocab_size`.
void add_tokenizer_metadata(GgufWriter& writer, const Tokenizer& tokenizer, const std::string& pre,
                            std::int64_t vocab_size, const ModelConfig& config);
// The llama.cpp pre-tokenizer name of a tokenizer.json's pre_tokenizer:
// "gpt-2" for plain byte-level with the GPT-2 regex, "llama-bpe" for Llama 3's
// split; nullopt when it is neither.
std::optional<std::string> gguf_pre_tokenizer_name(const nlohmann::json& tokenizer_json);

// A Hugging Face config.json equivalent of a llama GGUF file's metadata.
nlohmann::json hf_config_from_gguf(const GgufFile& file);
// A tokenizer.json equivalent of the tokenizer.ggml.* metadata; throws
// uq::Error naming the key for tokenizers other than gpt2-style BPE.
std::string tokenizer_json_from_gguf(const GgufFile& file);

}  // namespace uq
