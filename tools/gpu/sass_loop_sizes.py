"""The loops of each kernel in ``cuobjdump -sass`` output, smallest first,
with their static instruction counts: the figure behind the DR op's
"SASS instructions per element" (docs/benchmarks.md), which needs no GPU.

A loop is a backward branch (``BRA`` to a lower address); its body is every
instruction from the target up to the branch, NOPs excluded. A loop that
holds exactly one 16-byte global load (``LDG.E.128``) walks 16-byte packs:
its count is also given per element (4 float32, 8 float16/bfloat16, 2
float64 elements a pack, from the kernel's template argument).

    cuobjdump -sass dr_expectation_cuda.o | \
        python tools/gpu/sass_loop_sizes.py [--kernel SUBSTRING]
"""
import argparse
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
    for address, text in instructions:
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--kernel', default='', help='only names with this')
    args = parser.parse_args()
    for name, instructions in parse(sys.stdin).items():
        if args.kernel not in name:
            continue
        print(f'{name}: {len(instructions)} instructions')
        for first, last, size, loads, stores in loops(instructions):
            line = f'  loop {first:#06x}-{last:#06x}: {size} instructions'
            elements = pack_elements(name)
            if loads == 1 and elements:
                line += (f', one 16-byte load{" and store" if stores else ""}'
                         f': {size / elements:.1f} per element')
            print(line)


if __name__ == '__main__':
    main()
