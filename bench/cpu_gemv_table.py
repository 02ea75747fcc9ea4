#!/usr/bin/env python3
"""Markdown tables from bench_quant_kernels' and ggml_q4_0_gemv's JSON output
(--benchmark_format=json). Usage: cpu_gemv_table.py OURS.json [GGML.json]"""
import json
import sys

PATHS = {0: "float (exact)", 1: "int8 AVX2", 2: "int8 VNNI (default)"}


def load(path):
    with open(path) as f:
        return json.load(f)["benchmarks"]


def args(name):
    parts = name.split("/")
    return parts[0], dict(p.split(":") for p in parts[1:] if ":" in p)


def main():
    rows = load(sys.argv[1]) + (load(sys.argv[2]) if len(sys.argv) > 2 else [])
    read = {}
    for b in rows:
        family, a = args(b["name"])
        if family == "BM_MemoryRead":
            read[a["threads"]] = b["bytes_per_second"] / 1e9
    # With one thread the product runs on the benchmark's own thread, so its
    # CPU time excludes time the scheduler gave to other processes.
    print("| product | out x in | bits | threads | path | us | weight GB/s | % of read BW "
          "| GB/s per CPU second (1 thread) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for b in rows:
        family, a = args(b["name"])
        if family not in ("BM_AffineGemv", "BM_GgmlQ4_0Gemv"):
            continue
        gbs = b["bytes_per_second"] / 1e9
        shape = f'{a["out"]}x{a["in"]}'
        what = "affine g64" if family == "BM_AffineGemv" else "ggml Q4_0"
        path = PATHS[int(a["path"])] if "path" in a else "ggml"
        bits = a.get("bits", "4 (4.5 b/w)")
        pct = 100 * gbs / read[a["threads"]] if a["threads"] in read else float("nan")
        per_cpu = (f'{gbs * b["real_time"] / b["cpu_time"]:.2f}' if a["threads"] == "1" else "")
        print(f'| {what} | {shape} | {bits} | {a["threads"]} | {path} | {b["real_time"]:.0f} | '
              f"{gbs:.2f} | {pct:.0f}% | {per_cpu} |")
    print()
    print("| other | threads | time | GB/s or GFLOP/s | per CPU second (1 thread) |")
    print("| --- | --- | --- | --- | --- |")
    for b in rows:
        family, a = args(b["name"])
        if family in ("BM_AffineGemv", "BM_GgmlQ4_0Gemv"):
            continue
        value, unit = ((b["bytes_per_second"] / 1e9, "GB/s") if "bytes_per_second" in b
                       else (b["GFLOP/s"], "GFLOP/s"))
        rate = f"{value:.2f} {unit}"
        per_cpu = (f'{value * b["real_time"] / b["cpu_time"]:.2f} {unit}'
                   if a.get("threads") == "1" else "")
        label = b["name"].replace("/real_time", "")
        print(f'| {label} | {a.get("threads", "")} | {b["real_time"]:.1f} {b["time_unit"]} | {rate} '
              f"| {per_cpu} |")


if __name__ == "__main__":
    main()
