"""Builds small seeded random llama / mistral / qwen2 models with transformers and
records their logits and greedy continuations, for the C++ decoder to match.

usage: hf_models.py OUTDIR

OUTDIR/<family>/        the model, saved with save_pretrained (+ the bundled tokenizer)
OUTDIR/logits.safetensors  "<family>.ids" int32 [n], "<family>.logits" float32 [n, vocab]
OUTDIR/greedy.json      {"<family>": {"prompt_ids": [...], "output_ids": [...]}}
"""
import json
import pathlib
import shutil
import sys

import torch
from safetensors.torch import save_file
from transformers import (AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config)

REPO = pathlib.Path(__file__).resolve().parents[2]
TOKENIZER_DIR = REPO / "models" / "tiny-llama"
VOCAB = 4096
SEQUENCE = 24
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              rms_norm_eps=1e-5, bos_token_id=0, eos_token_id=0)

FAMILIES = {
    # GQA, separate lm_head, llama3 rope scaling, attention and MLP biases.
    "llama": (LlamaConfig(**COMMON, tie_word_embeddings=False, attention_bias=True, mlp_bias=True,
                          rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0,
                                           "factor": 8.0, "low_freq_factor": 1.0,
                                           "high_freq_factor": 4.0,
                                           "original_max_position_embeddings": 64}),
              torch.float32),
    # A sliding window shorter than the test sequence, linear rope scaling.
    "mistral": (MistralConfig(**COMMON, tie_word_embeddings=False, sliding_window=8,
                              rope_parameters={"rope_type": "linear", "rope_theta": 500.0,
                                               "factor": 2.0}),
                torch.float32),
    # q/k/v biases, tied embeddings, stored in bfloat16.
    "qwen2": (Qwen2Config(**COMMON, tie_word_embeddings=True,
                          rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
              torch.bfloat16),
}


def randomize(model, seed):
    """Random weights everywhere (HF initialises biases to zero and norms to one)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if name.endswith("norm.weight"):
                parameter.copy_(1.0 + 0.2 * noise)
            elif name.endswith("bias"):
                parameter.copy_(0.1 * noise)
            else:
                parameter.copy_(0.08 * noise)


def main():
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    tensors = {}
    greedy = {}
    for seed, (family, (config, dtype)) in enumerate(FAMILIES.items()):
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
        randomize(model, seed + 1)
        directory = out / family
        model.to(dtype).save_pretrained(directory)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(TOKENIZER_DIR / name, directory / name)
        # The reference runs in float32 from the stored (possibly bf16) weights.
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32,
                                                     attn_implementation="eager").eval()
        generator = torch.Generator().manual_seed(100 + seed)
        ids = torch.randint(1, VOCAB, (SEQUENCE,), generator=generator, dtype=torch.int64)
        with torch.no_grad():
            logits = model(ids[None, :]).logits[0]
            prompt = ids[:6][None, :]
            output = model.generate(prompt, attention_mask=torch.ones_like(prompt),
                                    do_sample=False, max_new_tokens=20, pad_token_id=0)
        tensors[f"{family}.ids"] = ids.to(torch.int32).contiguous()
        tensors[f"{family}.logits"] = logits.to(torch.float32).contiguous()
        greedy[family] = {"prompt_ids": prompt[0].tolist(), "output_ids": output[0].tolist()}
    save_file(tensors, str(out / "logits.safetensors"))
    (out / "greedy.json").write_text(json.dumps(greedy))


if __name__ == "__main__":
    main()
