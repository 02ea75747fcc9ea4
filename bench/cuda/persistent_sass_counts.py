"""Static cost of the persistent affine GEMV's main loop (no GPU needed): compiles every
instantiation of src/kernels/cuda/affine_gemv_persistent.cuh for sm_90 and prints, per width,
group and n-tile count, the innermost loop holding the HMMAs: its instructions, lane-instructions
per code (instructions x 32 lanes / codes per iteration: 32 weight rows x group x kDepth),
local-memory loads/stores inside it, registers and stack bytes.
  python3 bench/cuda/persistent_sass_counts.py [SOURCE_ROOT] [BITS,...]
Needs nvcc; cuobjdump and nvdisasm from $CUOBJDUMP / $NVDISASM_PATH (the nvidia-cuda-cuobjdump
and nvidia-cuda-nvdisasm wheels work) or PATH. kDepth below must follow the kernel's rule.
"""
import os, re, subprocess, sys, tempfile

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', '..')
widths = [int(b) for b in sys.argv[2].split(',')] if len(sys.argv) > 2 else [2, 3, 4, 5, 6, 8]
cuobjdump = os.environ.get('CUOBJDUMP', 'cuobjdump')
PROBE = '''#include "kernels/cuda/affine_gemv_persistent.cuh"
namespace uq::cuda {
int current_device_multiprocessors() { return 132; }
}
namespace uq::cuda::detail {
template void launch_affine_gemv_persistent_bits<PROBE_BITS>(const PersistentArgs&, int, int,
                                                             cudaStream_t);
}
'''


def depth(bits, group, tiles):  # kDepth of affine_gemv_persistent_kernel
    nbits = group // 4 * bits
    words = nbits // 32 if nbits % 32 == 0 else (nbits + 31) // 32 + 1
    small = words <= 2
    return (6 if small else 3) if tiles == 4 else (4 if small and tiles == 1 else 2)


def main_loop(instructions):
    index = {address: i for i, (address, _) in enumerate(instructions)}
    best = None
    for i, (address, op) in enumerate(instructions):
        branch = re.search(r'\bBRA\b.*?(0x[0-9a-f]+)', op)
        if branch and int(branch.group(1), 16) < address and int(branch.group(1), 16) in index:
            body = instructions[index[int(branch.group(1), 16)]:i + 1]
            hmma = sum('HMMA' in o for _, o in body)
            if hmma and (best is None or hmma > best[0] or
                         (hmma == best[0] and len(body) < len(best[1]))):
                best = (hmma, body)
    return best[1]


with tempfile.TemporaryDirectory() as tmp:
    probe = os.path.join(tmp, 'probe.cu')
    open(probe, 'w').write(PROBE)
    print('bits group tiles | loop instr | lane-instr/code | LDL+STL in loop | registers | stack')
    for bits in widths:
        cubin = os.path.join(tmp, f'b{bits}.cubin')
        subprocess.run(['nvcc', f'-I{root}/src', f'-I{root}/include', '-O3', '-std=c++20',
                        '-arch=sm_90', '-cubin', f'-DPROBE_BITS={bits}', probe, '-o', cubin],
                       check=True)
        sass = subprocess.run([cuobjdump, '-sass', cubin], capture_output=True, text=True,
                              check=True).stdout
        usage = subprocess.run([cuobjdump, '--dump-resource-usage', cubin], capture_output=True,
                               text=True, check=True).stdout
        resources = dict(re.findall(r'persistent_kernelILi\d+ELi(\d+ELi\d)E.*?\n.*?REG:(\d+ STACK:\d+)',
                                    usage))
        rows = []
        for function in re.split(r'\n\s+Function : ', sass)[1:]:
            m = re.search(r'persistent_kernelILi(\d+)ELi(\d+)ELi(\d+)E', function.split('\n', 1)[0])
            if not m:
                continue
            _, group, tiles = map(int, m.groups())
            body = main_loop([(int(a, 16), o.strip()) for a, o in
                              re.findall(r'/\*([0-9a-f]{4,})\*/\s+(.*?);', function)])
            local = sum(bool(re.search(r'\b(LDL|STL)\b', o)) for _, o in body)
            per_code = len(body) * 32 / (32 * group * depth(bits, group, tiles))
            regs, stack = resources.get(f'{group}ELi{tiles}', '? STACK:?').split(' STACK:')
            rows.append((group, tiles, len(body), per_code, local, regs, stack))
        for group, tiles, n, per_code, local, regs, stack in sorted(rows):
            print(f'{bits} {group} {tiles} | {n} | {per_code:.2f} | {local} | {regs} | {stack}')
