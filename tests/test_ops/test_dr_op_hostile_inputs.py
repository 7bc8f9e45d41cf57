"""The registered operators called directly (no Python checks in front)
with hostile inputs, in a subprocess: each call must raise a clear error
naming the argument (or, where the op is immune, return a defined result),
and the process must exit normally, never by a signal (a crash or an
out-of-bounds access)."""
import json
import re
import subprocess
import sys

import pytest

from mmdet_lossplug.ops import HAS_EXT
from ..helpers import ROOT

pytestmark = pytest.mark.skipif(
    not HAS_EXT, reason='mmdet_lossplug._ext is not built')

# Runs every case; prints {case: "ExceptionType: message" or "ok"}.
SCRIPT = r'''
import json
import torch
import mmdet_lossplug._ext  # registers the operators

forward = torch.ops.mmdet_lossplug.dr_expectation
backward = torch.ops.mmdet_lossplug.dr_expectation_backward
B, A, C = 2, 30, 5
logits = torch.randn(B, A, C)
labels = torch.full((B, A), C)
labels[:, 3] = 2
weights = torch.ones(B, A)
_, _, stats, _ = forward(logits, labels, weights, 1.0, 0.1)
g = torch.ones(B)


def with_label(value):
    bad = labels.clone()
    bad[1, 7] = value
    return bad


zero_labels = torch.zeros_like(labels)  # the background when C = 0
at_7 = torch.tensor([7])


def nan_at(t, index):
    t = t.clone()
    t[index] = float('nan')
    return t


cases = {
    'label -1': lambda: forward(logits, with_label(-1), weights, 1., .1),
    'label -2^40': lambda: forward(logits, with_label(-2**40), None, 1., .1),
    'label 2^31': lambda: forward(logits, with_label(2**31), weights, 1., .1),
    'label 2^31+2': lambda: forward(logits, with_label(2**31 + 2), None, 1.,
                                     .1),
    'label -1, anchor ignored': lambda: forward(
        logits, with_label(-1), weights.index_fill(1, torch.tensor([7]), 0.),
        1., .1),
    'label C+1': lambda: forward(logits, with_label(C + 1), weights, 1., .1),
    'label 1, C = 0': lambda: forward(logits[:, :, :0],
                                      zero_labels.index_fill(1, at_7, 1),
                                      None, 1., .1),
    'weights nan, C = 0': lambda: forward(logits[:, :, :0], zero_labels,
                                          nan_at(weights, (0, 4)), 1., .1),
    'labels int32': lambda: forward(logits, labels.int(), weights, 1., .1),
    'labels float': lambda: forward(logits, labels.float(), weights, 1., .1),
    'labels (1, A)': lambda: forward(logits, labels[:1], weights, 1., .1),
    'labels (B, A-1)': lambda: forward(logits, labels[:, 1:], weights, 1.,
                                        .1),
    'logits 2-d': lambda: forward(logits[0], labels[0], None, 1., .1),
    'logits int': lambda: forward(logits.long(), labels, weights, 1., .1),
    'logits nan': lambda: forward(nan_at(logits, (1, 2, 3)), labels,
                                  weights, 1., .1),
    'logits inf': lambda: forward(logits.index_fill(2, torch.tensor([0]),
                                                    float('inf')), labels,
                                  weights, 1., .1),
    'weights float64': lambda: forward(logits, labels, weights.double(), 1.,
                                       .1),
    'weights short': lambda: forward(logits, labels, weights[:, 1:], 1., .1),
    'weights nan': lambda: forward(logits, labels, nan_at(weights, (0, 4)),
                                   1., .1),
    'lam 0': lambda: forward(logits, labels, weights, 1., 0.),
    'lam nan': lambda: forward(logits, labels, weights, float('nan'), .1),
    'lam 1e-39': lambda: forward(logits, labels, weights, 1., 1e-39),
    # 1/lam is finite there, log2(e)/lam (the CUDA kernels' scale) is not.
    'lam 4e-39': lambda: forward(logits, labels, weights, 1., 4e-39),
    'lam -1': lambda: forward(logits, labels, weights, -1., .1),
    'lam inf': lambda: forward(logits, labels, weights, 1., float('inf')),
    'backward stats short': lambda: backward(g, g, logits, labels, weights,
                                             stats[:1], 1., .1),
    'backward stats narrow': lambda: backward(g, g, logits, labels, weights,
                                              stats[:, :3], 1., .1),
    'backward stats float64': lambda: backward(g, g, logits, labels, weights,
                                               stats.double(), 1., .1),
    'backward grad short': lambda: backward(g[:1], g, logits, labels,
                                            weights, stats, 1., .1),
    'backward grad int': lambda: backward(g, g.long(), logits, labels,
                                          weights, stats, 1., .1),
    'backward weights short': lambda: backward(g, g, logits, labels,
                                               weights[:1], stats, 1., .1),
    'backward lam 0': lambda: backward(g, g, logits, labels, weights, stats,
                                       0., .1),
    'backward labels int32': lambda: backward(g, g, logits, labels.int(),
                                              weights, stats, 1., .1),
}
results = {}
for name, call in cases.items():
    try:
        call()
        results[name] = 'ok'
    except Exception as error:  # report every kind
        results[name] = f'{type(error).__name__}: {error}'.splitlines()[0]
# The backward is immune to bad labels: they read as background.
bad = with_label(-2**40)
bad[0, 0] = 2**31 + 2
got = backward(g, g, logits, bad, weights, stats, 1., .1)
want = backward(g, g, logits, labels.masked_fill((bad < 0) | (bad > C), C),
                weights, stats, 1., .1)
results['backward bad labels read as background'] = str(
    torch.equal(got, want))
print(json.dumps(results))
'''

EXPECTED = {
    'label -1': r'ValueError: labels has label -1 outside \[0, 5\]',
    'label -2^40': r'ValueError: labels has label -1099511627776 outside',
    'label 2^31': r'ValueError: labels has label 2147483648 outside',
    'label 2^31+2': r'ValueError: labels has label 2147483650 outside',
    'label -1, anchor ignored': r'ValueError: labels has label -1 outside',
    'label C+1': r'ValueError: labels has label 6 outside',
    'label 1, C = 0': r'ValueError: labels has label 1 outside \[0, 0\] \(2 ',
    'weights nan, C = 0': 'ValueError: label_weights has 1 NaN value',
    'labels int32': 'TypeError: labels must be int64, got Int',
    'labels float': 'TypeError: labels must be int64, got Float',
    'labels (1, A)': r'ValueError: labels must be \(B, A\) = \[2, 30\]',
    'labels (B, A-1)': r'ValueError: labels must be \(B, A\)',
    'logits 2-d': r'ValueError: logits must be \(B, A, C\)',
    'logits int': 'TypeError: logits must be float32, float64, float16 or '
    'bfloat16, got Long',
    # Non-finite logits are no error (test_dr_non_finite_logits.py).
    'logits nan': 'ok',
    'logits inf': 'ok',
    'weights float64': 'TypeError: label_weights must be float32, got Double',
    'weights short': r'ValueError: label_weights must be \(B, A\)',
    'weights nan': 'ValueError: label_weights has 1 NaN value',
    'lam 0': 'ValueError: lam_neg must be a finite number >= ',
    'lam nan': 'ValueError: lam_pos must be a finite number >= ',
    'lam 1e-39': 'ValueError: lam_neg must be a finite number >= ',
    'lam 4e-39': 'ValueError: lam_neg must be a finite number >= ',
    'lam -1': 'ValueError: lam_pos must be a finite number >= ',
    'lam inf': 'ValueError: lam_neg must be a finite number >= ',
    'backward stats short': r'ValueError: stats must be \(B, 6\)',
    'backward stats narrow': r'ValueError: stats must be \(B, 6\)',
    'backward stats float64': 'TypeError: stats must be Float',
    'backward grad short': r'ValueError: grad_e_neg must be \(B,\)',
    'backward grad int': 'TypeError: grad_e_pos must be floating point',
    'backward weights short': r'ValueError: label_weights must be \(B, A\)',
    'backward lam 0': 'ValueError: lam_pos must be a finite number >= ',
    'backward labels int32': 'TypeError: labels must be int64',
    'backward bad labels read as background': 'True',
}


def test_direct_calls_with_hostile_inputs_raise_clear_errors():
    proc = subprocess.run([sys.executable, '-c', SCRIPT],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=120)
    # A negative return code is a signal: a crash.
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(results) == set(EXPECTED)
    for name, pattern in EXPECTED.items():
        assert re.match(pattern, results[name]), (name, results[name])
