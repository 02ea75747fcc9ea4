"""The QLoRA must-show recipe (issue #7) run by Hugging Face peft in torch, in several variants
of the parts the issue leaves open (learning-rate schedule, how windows are drawn, weight decay,
dropout), to find which recipe the issue's peft figure (28.1 on a float base) corresponds to.

  python bench/peft_recipes.py [--device cuda|cpu] [--variants NAME,...] [--base DIR]

Fixed, as the issue states: rank 16, alpha 32, all seven projections, lr 1e-3, batch 16, ctx 256,
300 steps, data/finetune_train.txt; perplexity of data/finetune_val.txt by the DESIGN.md protocol
(non-overlapping 256-token windows, positions 1..255). Prints one JSON line per variant.
"""
import argparse
import json
import math
import os
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VARIANTS = {
    # name: (schedule, sampling, weight_decay, dropout, warmup fraction)
    "ours": ("cosine", "shuffled", 0.0, 0.0, 0.05),
    "cosine_random": ("cosine", "random", 0.0, 0.0, 0.05),
    "linear_nowarm_shuffled": ("linear", "shuffled", 0.0, 0.0, 0.0),
    "linear_nowarm_random": ("linear", "random", 0.0, 0.0, 0.0),
    "constant_shuffled": ("constant", "shuffled", 0.0, 0.0, 0.0),
    "constant_random": ("constant", "random", 0.0, 0.0, 0.0),
    "constant_random_wd": ("constant", "random", 0.01, 0.0, 0.0),
    "cosine_random_wd_drop": ("cosine", "random", 0.01, 0.05, 0.05),
    "linear_nowarm_shuffled_wd_drop": ("linear", "shuffled", 0.01, 0.05, 0.0),
}


def tokenize(path, tokenizer):
    with open(path, encoding="utf-8") as f:
        return tokenizer.encode(f.read()).ids


def perplexity(model, ids, device, ctx=256):
    windows = len(ids) // ctx
    x = torch.tensor(ids[: windows * ctx], device=device).view(windows, ctx)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, windows, 32):
            batch = x[start:start + 32]
            logits = model(batch).logits.float()
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1),
                reduction="sum")
            total += nll.item()
            count += batch[:, 1:].numel()
    model.train()
    return math.exp(total / count)


def run(name, base, train_ids, val_ids, device, seed=0):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    schedule, sampling, weight_decay, dropout, warmup_fraction = VARIANTS[name]
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, torch_dtype=torch.float32).to(device)
    config = LoraConfig(r=16, lora_alpha=32, lora_dropout=dropout, task_type="CAUSAL_LM",
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                        "up_proj", "down_proj"])
    model = get_peft_model(model, config)
    before = perplexity(model, val_ids, device)
    steps, batch, ctx, lr = 300, 16, 256, 1e-3
    warmup = int(round(warmup_fraction * steps))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)

    def rate(step):
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, steps - warmup)
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if schedule == "linear":
            return 1 - progress
        return 1.0

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    data = torch.tensor(train_ids, device=device)
    windows = len(train_ids) // ctx
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(windows, generator=generator)
    position = 0
    start_time = time.time()
    for step in range(steps):
        if sampling == "random":
            starts = torch.randint(0, len(train_ids) - ctx, (batch,), generator=generator)
        else:
            picked = []
            for _ in range(batch):
                if position == windows:
                    order, position = torch.randperm(windows, generator=generator), 0
                picked.append(order[position].item() * ctx)
                position += 1
            starts = torch.tensor(picked)
        x = torch.stack([data[s:s + ctx] for s in starts.tolist()])
        logits = model(x).logits.float()
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = time.time() - start_time
    after = perplexity(model, val_ids, device)
    return {"variant": name, "schedule": schedule, "sampling": sampling,
            "weight_decay": weight_decay, "dropout": dropout, "warmup_steps": warmup,
            "val_ppl_before": before, "val_ppl_after": after, "train_seconds": seconds,
            "device": device, "seed": seed}


def main():
    from tokenizers import Tokenizer

    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--base", default=os.path.join(ROOT, "models", "tiny-llama"))
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args()
    tokenizer = Tokenizer.from_file(os.path.join(args.base, "tokenizer.json"))
    train_ids = tokenize(os.path.join(ROOT, "data", "finetune_train.txt"), tokenizer)
    val_ids = tokenize(os.path.join(ROOT, "data", "finetune_val.txt"), tokenizer)
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name in args.variants.split(","):
            print(json.dumps(run(name, args.base, train_ids, val_ids, args.device, seed)),
                  flush=True)


if __name__ == "__main__":
    main()
