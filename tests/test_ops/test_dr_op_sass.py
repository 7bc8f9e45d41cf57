"""The CUDA kernels' hot loops stay near the memory bound by their machine
code, which needs no GPU: compiled for sm_90 as PyTorch builds them, each
loop over 16-byte packs counted by tools/gpu/sass_loop_sizes.py, forward +
backward at most 110 SASS instructions per element (issue 17; 66.5 in
float32 when written, docs/benchmarks.md). Runs where nvcc and cuobjdump
are (`make cuda-build`: the CUDA torch's Triton carries cuobjdump)."""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest

from ..helpers import ROOT

BUDGET = 110  # forward + backward, per element


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


@pytest.fixture(scope='module')
def per_element(tmp_path_factory):
    """{kernel name: instructions per element of its pack loop}."""
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
    sass = subprocess.run([osp.join(tools, 'cuobjdump'), '-sass',
                           str(obj)],
                          env=env,
                          capture_output=True,
                          text=True,
                          check=True).stdout
    out = subprocess.run(
        [sys.executable,
         osp.join(ROOT, 'tools', 'gpu', 'sass_loop_sizes.py')],
        input=sass,
        capture_output=True,
        text=True,
        check=True).stdout
    counts, kernel = {}, None
    for line in out.splitlines():
        if not line.startswith(' '):
            kernel = line.split(':')[0]
        match = re.search(r'([\d.]+) per element', line)
        if match:
            counts[kernel] = float(match.group(1))
    return counts


@pytest.mark.skipif(
    shutil.which('nvcc') is None or cuda_binary_tools() is None,
    reason='needs nvcc and cuobjdump')
@pytest.mark.parametrize('dtype', ['f', '6__half', '13__nv_bfloat16'])
def test_forward_plus_backward_within_the_instruction_budget(
        per_element, dtype):
    forward, = (v for k, v in per_element.items()
                if f'chunk_sums_kernelI{dtype}' in k)
    backward, = (v for k, v in per_element.items()
                 if f'grad_kernelI{dtype}' in k)
    assert forward + backward <= BUDGET, (forward, backward)
