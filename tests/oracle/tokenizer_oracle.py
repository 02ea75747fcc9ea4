"""Builds tokenizer.json files with the HF `tokenizers` package and records what
it encodes/decodes for a set of tricky strings.

Usage: tokenizer_oracle.py OUTDIR
Writes OUTDIR/<name>.json for each tokenizer and OUTDIR/expected.json:
  {"tokenizers": [{"name", "file", "vocab_size", "cases": [{"text", "ids",
   "decoded", "decoded_skip_special"}], "single_id_decodes": [[id, text], ...],
   "val_ids": ids of the whole data/val.txt (only for the regex-split ones)}]}
Deterministic: training uses a fixed slice of data/train.txt.
"""
import json
import random
import sys
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, trainers

REPO = Path(__file__).resolve().parents[2]

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

TRICKY = [
    "",
    "Hello world",
    " leading and trailing ",
    "   ",
    "\n",
    "\n\n\nthree newlines",
    "a\tb\r\nc\rd\x0be\x0cf",
    "x  \n  y   \n\n   z",
    "tab\t\tend\t",
    " " * 40 + "deep indent",
    "don't I'm we'll they've she'd it's O'Neil 'quoted' rock'n'roll",
    "DON'T SHE'S I'M WE'LL THEY'VE IT'D You'Re",
    "1 12 123 1234 12345 1234567890",
    "pi=3.14159, date 2026-11-28, big 1,000,000.00 and 007",
    "café naïve Ünïcödé façade résumé",
    "e\u0301 vs \u00e9 and A\u030a vs \u00c5",
    "日本語のテキスト、中文文本。",
    "한국어 텍스트",
    "emoji 🙂👍🏽 family 👨\u200d👩\u200d👧 flag 🇫🇷",
    "— “quotes” «guillemets» ‘single’ …ellipsis",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ﬁ ligature ½",
    "İstanbul ΣΊΣΥΦΟΣ ǅ Straße",
    "\u00a0nbsp\u2003em\u3000ideographic\u200bzero-width",
    "control \x00 \x01 \x7f chars",
    "a" * 300,
    "snake_case camelCase kebab-case SCREAMING_CASE",
    "code: for (int i = 0; i < n; ++i) { x[i] += y[i] * 2; }",
    "<|endoftext|>",
    "<|endoftext|>hello<|endoftext|>",
    "before<|endoftext|> after",
    "text <mask> text",
    "  <mask>  x",
    "no<mask>space",
    "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_end|><|endoftext|>",
    "a special_word here, special_word, xspecial_word, special_wordx",
    "[NORM] and [norm] and [Norm]",
    "<|begin_of_text|>System<|eot_id|>",
]


# Characters random strings are drawn from: the classes the pre-tokenizer
# regexes distinguish (letters, digits, spaces of several kinds, newlines,
# apostrophes, punctuation, marks, CJK, emoji, controls) plus pieces of the
# added tokens, so that their boundaries are exercised too.
RANDOM_POOL = (
    list("aAbBzZ019 '\n\r\t.,-_!?()[]{}<>|/\\\"")
    + ["'s", "'T", "'re", "'LL", "  ", "\n\n", " \n", "\u00a0", "\u2003", "\u3000", "\u200b",
       "\u200d", "\u0301", "\u0308", "é", "Ü", "ß", "Σ", "ς", "İ", "ǅ", "ﬁ", "½", "²", "٣",
       "日", "本", "語", "한", "국", "🙂", "👍🏽", "🇫🇷", "\x00", "\x7f", "\x0b", "\x85",
       "<|endoftext|>", "<|im_end|>", "<mask>", "special_word", "[NORM]", "<s>", "▁", "##",
       "2026-11", "1234", "<0x41>"]
)


def random_texts(count, seed=1234):
    rng = random.Random(seed)
    return ["".join(rng.choice(RANDOM_POOL) for _ in range(rng.randint(1, 24)))
            for _ in range(count)]


def training_text():
    text = (REPO / "data" / "train.txt").read_text(encoding="utf-8")
    return [line for line in text[:400_000].splitlines() if line.strip()]


def val_lines():
    lines = (REPO / "data" / "val.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in lines[:400:20] if line.strip()]


def train(tokenizer, vocab_size, special_tokens, **trainer_args):
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        show_progress=False,
        **trainer_args,
    )
    tokenizer.train_from_iterator(training_text(), trainer=trainer)
    return tokenizer


def gpt2_style():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    train(tok, 1500, ["<|endoftext|>"],
          initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.add_special_tokens([
        AddedToken("<|im_start|>", special=True, normalized=False),
        AddedToken("<|im_end|>", special=True, normalized=False),
        AddedToken("<mask>", special=True, lstrip=True, rstrip=True, normalized=False),
    ])
    tok.add_tokens([AddedToken("special_word", single_word=True, normalized=False)])
    return tok


def llama3_style():
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    train(tok, 2000, ["<|begin_of_text|>", "<|eot_id|>"],
          initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    return tok


def qwen2_style():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    train(tok, 1800, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
          initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    return tok


def prefix_space_lowercase():
    """ByteLevel with add_prefix_space, Lowercase+NFKC, a normalized added token."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    train(tok, 1200, ["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.add_tokens([AddedToken("[NORM]", normalized=True)])
    return tok


def sentencepiece_style():
    """Llama-2 style: ▁ for spaces, byte fallback, unk, Metaspace-like decoding."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([
        normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([
        decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
        decoders.Strip(" ", 1, 0)])
    train(tok, 1000, ["<unk>", "<s>", "</s>"], limit_alphabet=120)
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    return Tokenizer.from_str(json.dumps(spec))


def metaspace_always_whole():
    """Newer Llama-2/Mistral files: no normalizer, Metaspace(always, split=False), byte fallback."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always",
                                                 split=False)
    tok.decoder = decoders.Sequence([
        decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False),
        decoders.ByteFallback(), decoders.Fuse()])
    train(tok, 1000, ["<unk>", "<s>", "</s>"], limit_alphabet=100)
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    return Tokenizer.from_str(json.dumps(spec))


def metaspace_split_digits():
    """Metaspace(first) + Digits + Split behaviours, NFKD + StripAccents, null decoder."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.NFKD(), normalizers.StripAccents(), normalizers.Strip(),
        normalizers.Replace(Regex(r"\d{4}-\d\d"), "<date>")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split("-", behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex(r"[,;]"), behavior="merged_with_next"),
        pre_tokenizers.Split(Regex(r"'"), behavior="contiguous"),
        pre_tokenizers.Split(Regex(r"[()\[\]{}]"), behavior="removed"),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"),
    ])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    train(tok, 900, ["<unk>", "<s>"], limit_alphabet=150)
    tok.add_special_tokens([AddedToken("<s>", special=True, normalized=False)])
    return tok


def whitespace_subwords():
    """Whitespace pre-tokenizer, Digits(contiguous), continuing-subword prefix and
    end-of-word suffix, NFD + Lowercase, no decoder (tokens joined by spaces)."""
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##",
                               end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=False)])
    train(tok, 1000, ["[UNK]", "[CLS]"], continuing_subword_prefix="##",
          end_of_word_suffix="</w>", limit_alphabet=200)
    return tok


def invert_split_whitespace_split():
    """Split(invert=True) keeping only the matches, then WhitespaceSplit, Strip normalizer."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Strip(left=True, right=False)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[\p{L}\p{N}]+|\s+"), behavior="removed", invert=True),
        pre_tokenizers.WhitespaceSplit(),
    ])
    tok.decoder = decoders.Fuse()
    train(tok, 800, ["<unk>"], limit_alphabet=200)
    return tok


def legacy_merges(tokenizer):
    """The same tokenizer with merges saved in the old "a b" string format."""
    spec = json.loads(tokenizer.to_str())
    spec["model"]["merges"] = [" ".join(pair) for pair in spec["model"]["merges"]]
    return spec


def main():
    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    gpt2 = gpt2_style()
    specs = {
        "gpt2_style": json.loads(gpt2.to_str()),
        "gpt2_style_legacy_merges": legacy_merges(gpt2),
        "llama3_style": json.loads(llama3_style().to_str()),
        "qwen2_style": json.loads(qwen2_style().to_str()),
        "prefix_space_lowercase": json.loads(prefix_space_lowercase().to_str()),
        "sentencepiece_style": json.loads(sentencepiece_style().to_str()),
        "metaspace_always_whole": json.loads(metaspace_always_whole().to_str()),
        "metaspace_split_digits": json.loads(metaspace_split_digits().to_str()),
        "whitespace_subwords": json.loads(whitespace_subwords().to_str()),
        "invert_split_whitespace_split": json.loads(invert_split_whitespace_split().to_str()),
    }
    assert isinstance(specs["gpt2_style_legacy_merges"]["model"]["merges"][0], str)
    texts = TRICKY + val_lines() + random_texts(300)
    expected = {"tokenizers": []}
    for name, spec in specs.items():
        file_name = f"{name}.json"
        spec_text = json.dumps(spec, ensure_ascii=False)
        (out_dir / file_name).write_text(spec_text, encoding="utf-8")
        tok = Tokenizer.from_str(spec_text)  # what the C++ side will read
        cases = []
        for text in texts:
            ids = tok.encode(text, add_special_tokens=False).ids
            cases.append({
                "text": text,
                "ids": ids,
                "decoded": tok.decode(ids, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
            })
        single = [[i, tok.decode([i], skip_special_tokens=False)]
                  for i in range(tok.get_vocab_size(with_added_tokens=True))]
        entry = {
            "name": name,
            "file": file_name,
            "vocab_size": tok.get_vocab_size(with_added_tokens=True),
            "cases": cases,
            "single_id_decodes": single,
        }
        if name in ("llama3_style", "qwen2_style", "sentencepiece_style"):
            val_text = (REPO / "data" / "val.txt").read_text(encoding="utf-8")
            entry["val_ids"] = tok.encode(val_text, add_special_tokens=False).ids
        expected["tokenizers"].append(entry)
    (out_dir / "expected.json").write_text(json.dumps(expected), encoding="utf-8")


if __name__ == "__main__":
    main()
