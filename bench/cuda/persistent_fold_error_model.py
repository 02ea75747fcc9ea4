"""Error model of the persistent affine GEMV (src/kernels/cuda/affine_gemv_persistent.cuh) on the
shapes of tests/cuda/test_affine_gemv.cpp, with the code bias F folded into the bias term
(C' = sum (F + q) x_part, y += s C' + (b - F s) sum(x_part)) against the unfolded kernel
(C = sum q x_part, y += s C + b sum(x)). No GPU needed; numpy from the oracle venv:
  ~/.cache/unified_quantization/venv/bin/python bench/cuda/persistent_fold_error_model.py SEED [BITS,...]
Model: each mma adds 16 exact bf16 products to its f32 accumulator and truncates to f32 (the
tensor-core behaviour measured by Fasi et al. 2021); epilogue fmas round to nearest f32; f32 x
split into 3 bf16 parts for 1-2 rows, 2 for 3-16 (hi and lo column added before scaling for
9-16 rows, as the kernel's 4 n-tile case does), bf16 x as 1 part; K splits as the launcher
picks them. Prints per case the two test metrics: ||y - ref|| / ||ref_abs|| ("cond") and
||y - ref|| / ||ref|| ("relL2"), unfolded -> folded.
"""
import numpy as np, sys
rng = np.random.default_rng(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
def f32(x): return np.asarray(x, np.float64).astype(np.float32).astype(np.float64)
def rz32(x):
    b = np.asarray(x, np.float64).view(np.uint64) & ~np.uint64((1 << 29) - 1)
    return b.view(np.float64)
def bf16(x):
    x32 = np.asarray(x, np.float32); u = x32.view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32).astype(np.float64)
def splits_for(out, groups):
    s = 1
    rb = lambda s: (out + (8 // s) * 32 - 1) // ((8 // s) * 32)
    while s < 8 and 2 * s <= groups and rb(s) < 132: s *= 2
    return s
def run(out, inn, bits, group, rows, fold, xbf16):
    q = rng.integers(0, 1 << bits, size=(out, inn)).astype(np.float64)
    G = inn // group
    s = bf16(rng.uniform(0.002, 0.05, size=(out, G)))
    b = bf16(-s * (1 << (bits - 1)) + rng.uniform(-0.01, 0.01, size=(out, G)))
    F = (2176.0 if bits == 8 else 128.0) if fold else 0.0
    parts = 1 if xbf16 else (3 if rows <= 2 else 2)
    sp = splits_for(out, G)
    errs, refs, ref_abs = [], [], []
    w = np.repeat(s, group, 1) * q + np.repeat(b, group, 1)
    for r in range(rows):
        x = rng.standard_normal(inn).astype(np.float32).astype(np.float64)
        if xbf16: x = bf16(x)
        ps, rem = [], f32(x)
        for p in range(parts):
            piece = bf16(rem); ps.append(piece); rem = f32(rem - piece)
        part_sum = np.zeros((parts, sp, out))
        # 9-16 f32 rows (4 n-tiles): the folded kernel adds the hi and lo columns before scaling.
        paired = fold and not xbf16 and rows > 8
        for split in range(sp):
            g0, g1 = split * G // sp, (split + 1) * G // sp
            accs = [np.zeros(out) for _ in range(parts)]
            for g in range(g0, g1):
                Cs, xss = [], []
                for p in range(parts):
                    C = np.zeros(out)
                    for k in range(g * group, (g + 1) * group, 16):
                        C = rz32(C + (q[:, k:k+16] + F) @ ps[p][k:k+16])
                    xs = 0.0
                    if fold or p == 0:  # folded: every part column gets the sum of its own part
                        src = ps[p] if fold else x
                        xs = float(np.cumsum(src[g * group:(g + 1) * group].astype(np.float32), dtype=np.float32)[-1])
                    Cs.append(C); xss.append(xs)
                bb = f32(b[:, g] - F * s[:, g])
                if paired:
                    accs[0] = f32(s[:, g] * f32(Cs[0] + Cs[1]) + f32(bb * f32(xss[0] + xss[1]) + accs[0]))
                else:
                    for p in range(parts):
                        accs[p] = f32(s[:, g] * Cs[p] + f32(bb * xss[p] + accs[p]))
            for p in range(parts): part_sum[p, split] = accs[p]
        y = np.zeros(out)
        for p in range(parts):
            for split in range(sp): y = f32(y + part_sum[p, split])
        ref = w @ x; ra = np.abs(w) @ np.abs(x)
        errs.append(y - ref); refs.append(ref); ref_abs.append(ra)
    e = np.concatenate(errs); return (np.linalg.norm(e) / np.linalg.norm(np.concatenate(ref_abs)),
                                      np.linalg.norm(e) / np.linalg.norm(np.concatenate(refs)))
shapes = lambda g: [(37, 5 * g, 16), (203, 11 * g, 16), (1, 4224 + g, 3), (9, 4224 + g, 5)]
for bits in [int(v) for v in sys.argv[2].split(',')] if len(sys.argv) > 2 else [2, 3, 4, 5, 6, 8]:
    for g in [32, 64, 128]:
        for out, inn, maxrows in shapes(g):
            for rows in sorted({1, 2, 3, maxrows}):
                if rows > maxrows: continue
                for xb in [False, True]:
                    a = run(out, inn, bits, g, rows, False, xb); b_ = run(out, inn, bits, g, rows, True, xb)
                    print(f"bits {bits} g{g} {out}x{inn} rows {rows} {'bf16' if xb else 'f32 '}: "
                          f"cond {a[0]:.2e} -> {b_[0]:.2e}  relL2 {a[1]:.2e} -> {b_[1]:.2e}", flush=True)
