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
    args = dict(cxx=['-O3', '-std=c++17'])
    with_cuda = (torch.cuda.is_available() and CUDA_HOME is not None) or \
        os.getenv('FORCE_CUDA', '0') == '1'
    if with_cuda:
        sources.append(osp.join(CSRC, 'cuda', 'dr_expectation_cuda.cu'))
        args['nvcc'] = ['-O3', '-std=c++17']
        ext = CUDAExtension(
            'mmdet_lossplug._ext',
            sources,
            define_macros=[('WITH_CUDA', None)],
            extra_compile_args=args)
    else:
        ext = CppExtension(
            'mmdet_lossplug._ext', sources, extra_compile_args=args)
    return [ext], {'build_ext': BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
