"""The loops of each kernel in ``cuobjdump -sass`` output, smallest first,
with their static instruction counts: the figure behind the DR op's
"SASS instructions per element" (docs/benchmarks.md), which needs no GPU.

A loop is a backward branch (``BRA`` to a lower address) before the
kernel's last ``EXIT`` (later ones return from the compiler's divergence
fallbacks); its body is every instruction from the target up to the
branch, NOPs excluded. A loop that holds exactly one 16-byte global load
(``LDG.E.128``) walks 16-byte packs: its count is also given per element
(4 float32, 8 float16/bfloat16, 2 float64 elements a pack, from the
kernel's template argument).

With ``--whole``, the whole kernel per element for the DR op's chunking
(the constants read from its sources) at a shape (``--classes``): each
section's static count times how often a thread runs it, over the
elements a thread handles. Sections: the pack loop (times the packs a
thread takes), the per-anchor loop (times the anchors a thread takes; the
largest loop holding an 8-byte load, the label: the path with label
weights; in the forward with C > 1 the staging one, which stores codes to
shared memory, with C <= 1 the one that does not), and every instruction
outside all loops once (prologue, set-up, the block reduction and the
second stage, the stores). Loops off the common path run 0 times (the
scalar head and tail of aligned data, the other copy of a loop, the
non-finite recount). The straight-line count includes both copies of
code the compiler duplicated and the rare paths, so it overestimates.

    cuobjdump -sass dr_expectation_cuda.o | \
        python tools/gpu/sass_loop_sizes.py [--kernel SUBSTRING]
        [--whole --classes C]
"""
import argparse
import os.path as osp
import re
import sys

FUNCTION = re.compile(r'Function : (\S+)')
# The mangled first template argument of a kernel: elements per 16 bytes.
PACK_ELEMENTS = (('kernelIf', 4), ('kernelId', 2), ('kernelI6__half', 8),
                 ('kernelI13__nv_bfloat16', 8))
INSTRUCTION = re.compile(r'/\*([0-9a-f]{4,})\*/\s+(.*?);')
BRANCH = re.compile(r'\bBRA(?:\.\S+)?\s+(?:`\(\S+\)\s*)?0x([0-9a-f]+)')


def parse(lines):
    """{function: [(address, text)]} in address order."""
    functions, current = {}, None
    for line in lines:
        match = FUNCTION.search(line)
        if match:
            current = functions.setdefault(match.group(1), [])
            continue
        match = INSTRUCTION.search(line)
        if match and current is not None:
            current.append((int(match.group(1), 16), match.group(2).strip()))
    return functions


def loops(instructions):
    """(first, last, size, 16-byte loads, 16-byte stores) of each loop,
    smallest first."""
    found = set()
    last_exit = max((a for a, t in instructions if 'EXIT' in t), default=0)
    for address, text in instructions:
        if address > last_exit:
            break
        match = BRANCH.search(text)
        # A branch to itself is the trap after EXIT, not a loop.
        if match and int(match.group(1), 16) < address:
            first = int(match.group(1), 16)
            body = [
                t for a, t in instructions
                if first <= a <= address and not t.startswith('NOP')
            ]
            found.add((first, address, len(body),
                       sum('LDG.E.128' in t for t in body),
                       sum('STG.E.128' in t for t in body)))
    return sorted(found, key=lambda loop: loop[2])


def pack_elements(name):
    for mangled, elements in PACK_ELEMENTS:
        if mangled in name:
            return elements
    return None


CSRC = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
    'mmdet_lossplug', 'csrc')


def source_constant(name, path):
    """``constexpr ... name = N;`` of a source file under csrc/."""
    with open(osp.join(CSRC, path)) as f:
        return int(re.search(rf'\b{name} = (\d+);', f.read()).group(1))


def chunking(classes):
    """(threads a block, anchors a chunk, elements a chunk) of the CUDA
    kernels, as anchors_per_chunk() computes them."""
    threads = source_constant('kThreads', 'cuda/dr_expectation_cuda.cu')
    chunk = source_constant('kChunk', 'dr_expectation_math.h')
    staged = source_constant('kMaxStagedAnchors',
                             'cuda/dr_expectation_cuda.cu')
    if classes <= 1:
        anchors = chunk
    else:
        anchors = 1 if classes >= chunk else min(chunk // classes, staged)
    return threads, anchors, anchors * max(classes, 1)


def whole_kernel(instructions, elements_a_pack, classes):
    """{section: (static count, runs a thread)} and the instructions a
    thread executes per element, for a kernel at C = classes."""
    threads, anchors, elements = chunking(classes)
    texts = {a: t for a, t in instructions}
    found = loops(instructions)
    last_exit = max(a for a, t in instructions if 'EXIT' in t)

    def holds(loop, what):
        return any(what in texts[a] for a in texts if loop[0] <= a <= loop[1])

    packs = [loop for loop in found if loop[3] == 1]
    forward = not any(loop[4] for loop in packs)
    anchor_loops = [
        loop for loop in found if holds(loop, 'LDG.E.64') and (
            not forward or holds(loop, 'STS') == (classes > 1))
    ]
    sections = {}
    if packs and classes > 1 or not forward:
        sections['pack loop'] = (packs[-1][2],
                                 elements / elements_a_pack / threads)
    if anchor_loops:
        sections['per-anchor loop'] = (anchor_loops[-1][2], anchors / threads)
    in_loops = {a for loop in found for a in texts if loop[0] <= a <= loop[1]}
    straight = sum(
        1 for a, t in instructions
        if a <= last_exit and a not in in_loops and not t.startswith('NOP'))
    sections['outside loops'] = (straight, 1)
    total = sum(size * runs for size, runs in sections.values())
    return sections, total / (elements / threads)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--kernel', default='', help='only names with this')
    parser.add_argument(
        '--whole',
        action='store_true',
        help='also the whole kernel per element (forward and backward)')
    parser.add_argument('--classes', type=int, default=80)
    args = parser.parse_args()
    for name, instructions in parse(sys.stdin).items():
        if args.kernel not in name:
            continue
        print(f'{name}: {len(instructions)} instructions')
        elements = pack_elements(name)
        if args.whole and elements and ('chunk_sums' in name
                                        or 'grad_kernel' in name):
            sections, per_element = whole_kernel(instructions, elements,
                                                 args.classes)
            for section, (size, runs) in sections.items():
                print(f'  whole, C = {args.classes}: {section} {size} x '
                      f'{runs:.3g}')
            print(f'  whole, C = {args.classes}: {per_element:.1f} per '
                  'element (whole kernel)')
        for first, last, size, loads, stores in loops(instructions):
            line = f'  loop {first:#06x}-{last:#06x}: {size} instructions'
            elements = pack_elements(name)
            if loads == 1 and elements:
                line += (f', one 16-byte load{" and store" if stores else ""}'
                         f': {size / elements:.1f} per element')
            print(line)


if __name__ == '__main__':
    main()
