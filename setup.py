"""Build script: metadata lives in setup.cfg; this file builds the C++
extension ``mmdet_lossplug._ext`` (DR loss's expectation op).

The CPU kernel is always built. The CUDA kernel is added when PyTorch has
CUDA and a toolkit is found (or ``FORCE_CUDA=1``); without them the install
still succeeds with the CPU kernel. ``MMDET_LOSSPLUG_WITH_OPS=0`` skips the
extension (DR loss then runs its pure-PyTorch reference).
"""
import os
import os.path as osp

from setuptools import setup

CSRC = osp.join('mmdet_lossplug', 'csrc')


def build_cpu_simd_flags() -> list:
    """AVX2 + FMA, and AVX-512F, for the CPU kernel when the machine
    building it has them (a source build runs where it is built; 16-wide
    loops: 2x the AVX2 build). MMDET_LOSSPLUG_AVX2=0 turns all of it off for
    a build meant for older x86 CPUs, MMDET_LOSSPLUG_AVX512=0 AVX-512
    only."""
    if os.getenv('MMDET_LOSSPLUG_AVX2', '1') == '0':
        return []
    try:
        with open('/proc/cpuinfo') as f:
            flags = set(f.read().split())
    except OSError:
        return []
    if not {'avx2', 'fma'} <= flags:
        return []
    if 'avx512f' in flags and os.getenv('MMDET_LOSSPLUG_AVX512', '1') != '0':
        return ['-mavx2', '-mfma', '-mavx512f']
    return ['-mavx2', '-mfma']


def extensions():
    if os.getenv('MMDET_LOSSPLUG_WITH_OPS', '1') == '0':
        return [], {}
    import torch
    from torch.utils.cpp_extension import (CUDA_HOME, BuildExtension,
                                           CppExtension, CUDAExtension)
    sources = [
        osp.join(CSRC, 'dr_expectation.cpp'),
        osp.join(CSRC, 'cpu', 'dr_expectation_cpu.cpp')
    ]
    # No -ffast-math: the kernels meet infinities (exp(-|x|) of a large
    # logit) and must count NaN inputs; they are written to vectorise
    # without it. -fno-trapping-math (nothing reads the floating-point
    # exception flags) lets GCC evaluate both sides of a select, which
    # vectorising the kernels' branch-free loops needs; IEEE results, inf
    # and NaN included, are unchanged. No -std: torch's build helper picks
    # the standard it needs. -fopenmp: at::parallel_for is OpenMP inline
    # code; without the flag it silently runs on one thread.
    args = dict(
        cxx=['-O3', '-fno-trapping-math', '-fno-math-errno', '-fopenmp'])
    link_args = ['-fopenmp']
    args['cxx'] += build_cpu_simd_flags()
    with_cuda = (torch.cuda.is_available() and CUDA_HOME is not None) or \
        os.getenv('FORCE_CUDA', '0') == '1'
    if with_cuda:
        sources.append(osp.join(CSRC, 'cuda', 'dr_expectation_cuda.cu'))
        args['nvcc'] = ['-O3']
        ext = CUDAExtension(
            'mmdet_lossplug._ext',
            sources,
            define_macros=[('WITH_CUDA', None)],
            extra_compile_args=args,
            extra_link_args=link_args)
    else:
        ext = CppExtension(
            'mmdet_lossplug._ext',
            sources,
            extra_compile_args=args,
            extra_link_args=link_args)
    return [ext], {'build_ext': BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
