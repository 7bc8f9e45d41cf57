"""The installed package's metadata: version ranges that admit the stacks
users already have, so that installing the plugin changes none of torch,
mmcv, mmdet or mmengine; the exact pins live in requirements/."""
import os.path as osp
from importlib.metadata import requires

import pytest
from packaging.requirements import Requirement

from .helpers import ROOT

STACK = ('torch', 'mmcv', 'mmdet', 'mmengine')


@pytest.fixture(scope='module')
def install_requires():
    """The unconditional requirements, by lower-cased name."""
    reqs = [Requirement(r) for r in requires('mmdet_lossplug')]
    return {r.name.lower(): r for r in reqs if r.marker is None}


def test_stack_is_declared_as_ranges(install_requires):
    for name in STACK:
        spec = install_requires[name].specifier
        assert not any(s.operator in ('==', '===') for s in spec), (
            f'{name} is pinned ({spec}): pins belong in requirements/')


@pytest.mark.parametrize(
    'name, versions',
    [
        ('torch', ['2.1.0', '2.1.2', '2.6.0', '2.13.0', '2.14.1', '2.15.0']),
        ('mmcv', ['2.1.0']),  # the common stack: torch 2.1 + mmcv 2.1 ...
        ('mmdet', ['3.3.0']),
        ('mmengine', ['0.10.4', '0.10.7']),
    ])
def test_admitted_versions(install_requires, name, versions):
    spec = install_requires[name].specifier
    for version in versions:
        assert spec.contains(version), f'{name} {version} not in {spec}'


@pytest.mark.parametrize('name, version', [('mmcv', '2.2.0'),
                                           ('mmdet', '3.4.0'),
                                           ('mmengine', '1.0.0')])
def test_versions_mmdet_3_3_excludes_are_excluded(install_requires, name,
                                                  version):
    """mmdet 3.3 asserts mmcv < 2.2 and mmengine < 1.0 at import."""
    assert not install_requires[name].specifier.contains(version)


def _pins(path: str) -> dict:
    """``name: version`` of a requirements file's ``name==version`` lines."""
    with open(path) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return dict(line.split('==') for line in lines if '==' in line)


def test_lower_bounds_are_the_oldest_tested_stack(install_requires):
    """setup.cfg admits nothing older than what `make test` runs the suite
    on (requirements/constraints-oldest.txt, in .venv-oldest): the lowest
    admitted torch release series is the oldest stack's, and the oldest
    Python setup.cfg admits is the one that stack is built with."""
    from importlib.metadata import metadata

    from packaging.version import Version
    oldest = _pins(osp.join(ROOT, 'requirements', 'constraints-oldest.txt'))
    for name in ('torch', 'mmcv', 'mmdet', 'mmengine'):
        spec = install_requires[name].specifier
        assert spec.contains(oldest[name]), (name, spec, oldest[name])
    lowest = min(
        Version(s.version) for s in install_requires['torch'].specifier
        if s.operator == '>=')
    tested = Version(oldest['torch'])
    assert (lowest.major, lowest.minor) == (tested.major, tested.minor)
    python = metadata('mmdet_lossplug')['Requires-Python']
    with open(osp.join(ROOT, 'Makefile')) as f:
        assert f'OLDEST_PYTHON_VERSION := {python.lstrip(">=")}\n' in f.read()
