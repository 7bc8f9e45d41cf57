"""The installed package's metadata: version ranges that admit the stacks
users already have, so that installing the plugin changes none of torch,
mmcv, mmdet or mmengine; the exact pins live in requirements/."""
from importlib.metadata import requires

import pytest
from packaging.requirements import Requirement

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
