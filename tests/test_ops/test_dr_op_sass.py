"""The CUDA kernels stay near the memory bound by their machine code, which
needs no GPU: compiled for sm_90 as PyTorch builds them and counted by
tools/gpu/sass_loop_sizes.py, forward + backward per element (issues 17
and 25; docs/benchmarks.md):

- the pack loops alone at most LOOP_BUDGET (66.5 in float32 when issue 17
  wrote them);
- the whole kernels at RetinaNet's C = 80 at most WHOLE_BUDGET: the
  instructions on each kernel's common path (its longest path through
  the loops the shape runs, each loop's pass times its runs: an upper
  bound; the GPU command's ncu counts the executed instructions) over
  the elements a thread handles (71.5 in float32 when issue 25 wrote it).

Runs where nvcc and cuobjdump are (`make cuda-build`: the CUDA torch's
Triton carries cuobjdump)."""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest

from ..helpers import ROOT

LOOP_BUDGET = 70  # forward + backward, per element
WHOLE_BUDGET = 72  # the target for float32; bfloat16 and float16 too


def cuda_binary_tools():
    """The folder holding cuobjdump and nvdisasm, or None."""
    found = shutil.which('cuobjdump')
    if found and shutil.which('nvdisasm'):
        return osp.dirname(found)
    try:
        import triton
    except ImportError:
        return None
    folder = osp.join(
        osp.dirname(triton.__file__), 'backends', 'nvidia', 'bin')
    tools = ('cuobjdump', 'nvdisasm')
    return folder if all(osp.exists(osp.join(folder, t))
                         for t in tools) else None


def kernel_counts(sass, *args):
    """{kernel name: per element} from sass_loop_sizes.py's lines ending
    'per element' (with --whole, the whole-kernel figure)."""
    out = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'gpu', 'sass_loop_sizes.py'), *args
    ],
                         input=sass,
                         capture_output=True,
                         text=True,
                         check=True).stdout
    counts, kernel = {}, None
    for line in out.splitlines():
        if not line.startswith(' '):
            kernel = line.split(':')[0]
        match = re.search(r'([\d.]+) per element( \(whole kernel\))?$', line)
        if match and bool(match.group(2)) == ('--whole' in args):
            counts[kernel] = float(match.group(1))
    return counts


@pytest.fixture(scope='module')
def sass(tmp_path_factory):
    """The sm_90 SASS of the kernel file."""
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS
    obj = tmp_path_factory.mktemp('sass') / 'dr.o'
    subprocess.run([
        'nvcc', '-c', '-std=c++17', '-O3', '-arch=sm_90', *COMMON_NVCC_FLAGS,
        osp.join(ROOT, 'mmdet_lossplug', 'csrc', 'cuda',
                 'dr_expectation_cuda.cu'), '-o',
        str(obj)
    ],
                   check=True)
    tools = cuda_binary_tools()
    env = dict(os.environ, PATH=tools + os.pathsep + os.environ['PATH'])
    return subprocess.run([osp.join(tools, 'cuobjdump'), '-sass',
                           str(obj)],
                          env=env,
                          capture_output=True,
                          text=True,
                          check=True).stdout


def forward_plus_backward(counts, dtype):
    forward, = (v for k, v in counts.items()
                if f'chunk_sums_kernelI{dtype}' in k)
    backward, = (v for k, v in counts.items() if f'grad_kernelI{dtype}' in k)
    return forward, backward


needs_tools = pytest.mark.skipif(
    shutil.which('nvcc') is None or cuda_binary_tools() is None,
    reason='needs nvcc and cuobjdump')
DTYPES = ['f', '6__half', '13__nv_bfloat16']


@needs_tools
@pytest.mark.parametrize('dtype', DTYPES)
def test_pack_loops_within_the_instruction_budget(sass, dtype):
    forward, backward = forward_plus_backward(kernel_counts(sass), dtype)
    assert forward + backward <= LOOP_BUDGET, (forward, backward)


@needs_tools
@pytest.mark.parametrize('dtype', DTYPES)
def test_whole_kernels_within_the_instruction_budget(sass, dtype):
    counts = kernel_counts(sass, '--whole', '--classes', '80')
    forward, backward = forward_plus_backward(counts, dtype)
    assert forward + backward <= WHOLE_BUDGET, (forward, backward)
    # The whole kernel holds its loops: it can never count less.
    loop_forward, loop_backward = forward_plus_backward(
        kernel_counts(sass), dtype)
    assert forward > loop_forward and backward > loop_backward


@needs_tools
def test_whole_kernel_count_finds_the_common_path_at_one_class(sass):
    """C = 1 (no staging, no pack loop in the forward) has a path too."""
    counts = kernel_counts(sass, '--whole', '--classes', '1')
    for dtype in DTYPES:
        forward, backward = forward_plus_backward(counts, dtype)
        assert forward > 0 and backward > 0
