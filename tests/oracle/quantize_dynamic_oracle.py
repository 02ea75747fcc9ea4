"""torch's quantize_dynamic on the bundled model: the baseline of the migration
claim in docs/MIGRATION.md (our int8 path against torch's on the same weights).

usage: quantize_dynamic_oracle.py OUTDIR
OUTDIR/logits.safetensors: "ids" int32 [n] (val.txt's first n ids), "float" and
"dynamic" float32 [n, vocab]: logits of the float32 model and of
quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8) (int8 weights with one
scale per tensor, activations quantized per call).
"""
import pathlib
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

REPO = pathlib.Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "tiny-llama"
TOKENS = 256


def main(out):
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(MODEL))
    ids = tokenizer((REPO / "data" / "val.txt").read_text(), add_special_tokens=False)["input_ids"]
    ids = torch.tensor([ids[:TOKENS]])
    model = AutoModelForCausalLM.from_pretrained(str(MODEL), dtype=torch.float32).eval()
    dynamic = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    with torch.no_grad():
        reference = AutoModelForCausalLM.from_pretrained(str(MODEL), dtype=torch.float32).eval()
        float_logits = reference(ids).logits[0]
        dynamic_logits = dynamic(ids).logits[0]
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({"ids": ids[0].to(torch.int32), "float": float_logits.contiguous(),
               "dynamic": dynamic_logits.contiguous()}, str(out / "logits.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1])
