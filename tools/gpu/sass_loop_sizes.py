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
(the constants read from its sources) at a shape (``--classes``): the
instructions on the kernel's common path over the elements a thread
handles. The common path is the longest path through the kernel's
control flow from its entry to an EXIT that runs the loops the shape
needs their number of times and every other loop 0 times:

- the loops it needs: the pack loop (the largest loop with one 16-byte
  load), run packs / threads times; the per-anchor loop (the largest loop
  holding an 8-byte load, the label: the path with label weights), run
  anchors / threads times; in the forward with C > 1 the staging one
  (which stores codes to shared memory), with C <= 1 the one that does
  not, and no pack loop;
- each counts one pass through its body (again the longest path, inner
  loops 0 times: an ignored row's zeroing in the backward) times its runs;
- every loop off that path runs 0 times (the scalar head and tail of
  aligned data, the copies of a loop for other cases);
- code past the kernel's last EXIT (the compiler's out-of-line fallbacks)
  and other functions (the rare non-finite recount) are not on it.

Longest, because a warp runs a branch when any of its threads takes it:
the path is that of warp 0 in a block where every data-dependent branch
(a positive in the anchors a warp stages, the second stage of the block
reduction, thread 0's stores) is taken, so the figure bounds the common
path from above; the block's other warps skip its second stage.

    cuobjdump -sass dr_expectation_cuda.o | \
        python tools/gpu/sass_loop_sizes.py [--kernel SUBSTRING]
        [--whole --classes C]
"""
import argparse
import itertools
import os.path as osp
import re
import sys

FUNCTION = re.compile(r'Function : (\S+)')
# The mangled first template argument of a kernel: elements per 16 bytes.
PACK_ELEMENTS = (('kernelIf', 4), ('kernelId', 2), ('kernelI6__half', 8),
                 ('kernelI13__nv_bfloat16', 8))
INSTRUCTION = re.compile(r'/\*([0-9a-f]{4,})\*/\s+(.*?);')
# A branch, with or without a condition operand (``BRA P1, 0x...``).
BRANCH = re.compile(r'\bBRA(?:\.\S+)?\s+(!?U?P[T\d],\s*)?'
                    r'(?:`\(\S+\)\s*)?0x([0-9a-f]+)')


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
        if match and int(match.group(2), 16) < address:
            first = int(match.group(2), 16)
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


def chunking(classes, forward):
    """(threads a block, anchors a chunk, elements a chunk) of the CUDA
    forward or backward kernel, as anchors_per_chunk() computes them."""
    threads = source_constant('kThreads', 'cuda/dr_expectation_cuda.cu')
    chunk = source_constant('kForwardChunk' if forward else 'kChunk',
                            'dr_expectation_math.h')
    staged = source_constant('kMaxStagedAnchors',
                             'cuda/dr_expectation_cuda.cu')
    if classes <= 1:
        anchors = chunk
    else:
        anchors = 1 if classes >= chunk else min(chunk // classes, staged)
    return threads, anchors, anchors * max(classes, 1)


def blocks(instructions, last_exit):
    """{leader address: (addresses, successors)}: the basic blocks up to
    the last EXIT. A block ends at a branch or an EXIT; a predicated one
    (``@P``, ``@!P``) also falls through. Branches past the last EXIT (the
    compiler's out-of-line fallbacks) are left out."""
    body = [(a, t) for a, t in instructions
            if a <= last_exit and not t.startswith('NOP')]
    leaders = {body[0][0]}
    for i, (address, text) in enumerate(body):
        match = BRANCH.search(text)
        if match:
            leaders.add(int(match.group(2), 16))
        if (match or 'EXIT' in text) and i + 1 < len(body):
            leaders.add(body[i + 1][0])
    found, current = {}, None
    for i, (address, text) in enumerate(body):
        if address in leaders:
            current = found.setdefault(address, ([], []))
        current[0].append(address)
        match = BRANCH.search(text)
        ends = match or 'EXIT' in text or (i + 1 < len(body)
                                           and body[i + 1][0] in leaders)
        if not ends:
            continue
        if match and int(match.group(2), 16) <= last_exit:
            current[1].append(int(match.group(2), 16))
        falls = not (match or 'EXIT' in text) or text.startswith('@') or (
            match and match.group(1))
        if falls and i + 1 < len(body):
            current[1].append(body[i + 1][0])
    return found


def outermost(ranges):
    """The ranges of ``ranges`` that no other one holds."""
    return [
        r for r in ranges
        if not any(o != r and o[0] <= r[0] and r[1] <= o[1] for o in ranges)
    ]


def node_graph(graph, ranges, lo, hi, loop=None):
    """The blocks in [lo, hi] as a graph with each outermost loop inside
    (other than ``loop`` itself, whose back edge is dropped) as one node
    named by its first address: (loop nodes, node of an address, edges)."""
    inner = outermost([
        r for r in ranges if lo <= r[0] and r[1] <= hi and r[0] != lo
    ]) if loop else outermost(ranges)

    def node(address):
        for first, last in inner:
            if first <= address <= last:
                return first
        return address

    edges = {}
    for leader, (addresses, successors) in graph.items():
        if not lo <= leader <= hi:
            continue
        here = edges.setdefault(node(leader), set())
        for target in successors:
            back = loop and addresses[-1] == loop[1] and target == loop[0]
            if not lo <= target <= hi or back or node(target) == node(leader):
                continue
            assert node(target) > node(leader), 'a backward edge'
            here.add(node(target))
            edges.setdefault(node(target), set())
    return {r[0] for r in inner}, node, edges


def longest(edges, weight, start, goals, required=()):
    """(length, nodes) of the longest path over ``edges`` (all forward)
    from ``start`` to a node in ``goals`` that passes the ``required``
    nodes in order, or (None, []) if there is none."""
    count = len(required)

    def passed(node, k):
        return k + 1 if k < count and node == required[k] else k

    state = (start, passed(start, 0))
    best, before = {state: weight(start)}, {}
    for here in sorted(edges):
        for k in range(count + 1):
            if (here, k) not in best:
                continue
            for there in edges[here]:
                if there in required and passed(there, k) == k:
                    continue  # a required loop out of order
                to = (there, passed(there, k))
                value = best[(here, k)] + weight(there)
                if value > best.get(to, -1):
                    best[to], before[to] = value, (here, k)
    ends = [(best[(g, count)], (g, count)) for g in goals
            if (g, count) in best]
    if not ends:
        return None, []
    length, state = max(ends)
    path = [state[0]]
    while state in before:
        state = before[state]
        path.append(state[0])
    return length, path[::-1]


def longest_path(instructions, required, trips):
    """The common path of a kernel: its longest path from the entry to an
    EXIT that runs a loop of each list in ``required`` (copies of a loop,
    ranges (first, last)) its ``trips`` and every other loop 0 times, as
    [(section, static count, runs)] and the instructions on it.

    Each loop (the outermost range of a backward branch) is one node: a
    required one weighs one pass through its body (the longest path from
    its first block to its back branch, inner loops 0 times) times its
    trips, any other 0. Every other node is a basic block, weighing its
    instructions. With the loops as nodes every edge goes forward, so one
    sweep in address order finds the path."""
    last_exit = max(a for a, t in instructions if 'EXIT' in t)
    texts = dict(instructions)
    graph = blocks(instructions, last_exit)
    ranges = {}
    for first, last, *_ in loops(instructions):
        ranges[first] = max(ranges.get(first, last), last)
    ranges = sorted(ranges.items())

    def one_pass(first, last):
        heads, node, edges = node_graph(graph, ranges, first, last,
                                        (first, last))
        latch = node(max(a for a in graph if a <= last))
        length, _ = longest(edges, lambda n: 0
                            if n in heads else len(graph[n][0]), first,
                            {latch})
        return length

    heads, node, edges = node_graph(graph, ranges, min(graph), last_exit)
    exits = {
        node(a)
        for a, (addresses, _) in graph.items()
        if 'EXIT' in texts[addresses[-1]]
    }
    # Of a loop's copies (with label weights and without, say), those that
    # make the longest path.
    length = None
    for choice in itertools.product(*required):
        passes = {r[0]: one_pass(*r) * n for r, n in zip(choice, trips)}

        def weight(n):
            return passes.get(n, 0 if n in heads else len(graph[n][0]))

        found = longest(edges, weight, node(min(graph)), exits,
                        [r[0] for r in choice])
        if found[0] is not None and (length is None or found[0] > length):
            (length, path), chosen = found, choice
    assert length is not None, 'no path through the required loops'
    passes = {r[0]: (one_pass(*r), n) for r, n in zip(chosen, trips)}
    sections, straight = [], 0
    for n in path:
        if n not in passes:
            straight += 0 if n in heads else len(graph[n][0])
            continue
        sections.append((f'straight-line code to loop {n:#06x}', straight, 1))
        sections.append((f'loop {n:#06x}, one pass', *passes[n]))
        straight = 0
    sections.append(('straight-line code to the exit', straight, 1))
    return sections, length


def whole_kernel(instructions, elements_a_pack, classes):
    """[(section, static count, runs a warp)] and the instructions per
    element, for a kernel at C = classes, on its common path."""
    texts = dict(instructions)
    found = loops(instructions)

    def holds(loop, what):
        return any(what in texts[a] for a in texts if loop[0] <= a <= loop[1])

    packs = [loop[:2] for loop in found if loop[3] == 1]
    forward = not any(loop[4] for loop in found if loop[3] == 1)
    threads, anchors, elements = chunking(classes, forward)
    anchor_loops = [
        loop[:2] for loop in found if holds(loop, 'LDG.E.64') and (
            not forward or holds(loop, 'STS') == (classes > 1))
    ]
    required = []
    if packs and (classes > 1 or not forward):
        required.append((packs, elements / elements_a_pack / threads))
    if anchor_loops:
        required.append((anchor_loops, anchors / threads))
    required.sort(key=lambda r: min(r[0]))
    sections, total = longest_path(instructions, [r for r, _ in required],
                                   [n for _, n in required])
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
            for section, size, runs in sections:
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
