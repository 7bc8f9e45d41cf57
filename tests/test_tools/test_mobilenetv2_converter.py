"""tools/model_converters/torchvision_mobilenet_v2_to_mmdet.py on torchvision's
real ImageNet weights: every backbone tensor finds its place in mmdet's
MobileNetV2, and that backbone, topped by torchvision's own classifier from
the same file, recognises a photograph as ImageNet does."""
import numpy as np
import pytest
import torch
from matplotlib import cbook
from mmdet.models.backbones import MobileNetV2
from PIL import Image

from ..helpers import load_tool

tool = load_tool('model_converters', 'torchvision_mobilenet_v2_to_mmdet.py')

# What matplotlib's sample photograph of Grace Hopper shows: her US Navy
# uniform and its tie, ImageNet classes 652 ('military uniform') and 457
# ('bow tie'). Which of the two comes first depends on the crop: with
# torchvision's evaluation transform (below) bow tie, p 0.51, then military
# uniform, 0.18; with the whole photo at 224 px military uniform, 0.46.
WHAT_THE_PHOTO_SHOWS = {652, 457}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_logits(backbone, x, source):
    """torchvision's classifier (the dropout is off in evaluation): a
    linear layer on the global average of the 1280 channels."""
    backbone.eval()
    with torch.no_grad():
        (features, ) = backbone(x)
        assert features.shape == (1, 1280, 7, 7)
        pooled = features.mean(dim=(2, 3))
        return pooled @ source['classifier.1.weight'].T + source[
            'classifier.1.bias']


@pytest.fixture(scope='module')
def converted(pretrained_root):
    """The converter's checkpoint (written as `make install` writes it) and
    the torchvision state dict it read."""
    (dst, ) = pretrained_root.glob('*.pth')
    source = torch.load(
        tool.installed_weights(), map_location='cpu', weights_only=True)
    return torch.load(dst, map_location='cpu', weights_only=True), source


def imagenet_input(path):
    """torchvision's ImageNet evaluation transform: shorter side to 256,
    centre 224 px crop, scaled to [0, 1], normalised per channel."""
    image = Image.open(path).convert('RGB')
    scale = 256 / min(image.size)
    image = image.resize(
        (round(image.width * scale), round(image.height * scale)),
        Image.BILINEAR)
    left, top = (image.width - 224) // 2, (image.height - 224) // 2
    image = image.crop((left, top, left + 224, top + 224))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255)
    x = (x - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    return x.permute(2, 0, 1)[None]


def test_every_backbone_tensor_mapped(converted):
    checkpoint, source = converted
    state_dict = checkpoint['state_dict']
    backbone_keys = [k for k in source if not k.startswith('classifier.')]
    assert len(backbone_keys) == 312
    assert len(state_dict) == len(backbone_keys)
    # Nothing missing, nothing unexpected, every shape fits.
    model = MobileNetV2()
    result = model.load_state_dict(state_dict, strict=True)
    assert not result.missing_keys and not result.unexpected_keys

    # The same tensors, unchanged, each once: equal multisets of
    # (shape, sum, sum of squares).
    def fingerprints(tensors):
        return sorted((tuple(t.shape), t.double().sum().item(),
                       t.double().square().sum().item()) for t in tensors)

    assert fingerprints(state_dict.values()) == fingerprints(
        source[k] for k in backbone_keys)
    assert checkpoint['meta']['source_sha256'] == tool.SHA256


def test_converted_backbone_recognises_a_photograph(converted):
    checkpoint, source = converted
    # out_indices=(7,): the last 1x1 convolution's 1280 channels, what
    # torchvision's classifier reads after global average pooling.
    backbone = MobileNetV2(out_indices=(7, ))
    backbone.load_state_dict(checkpoint['state_dict'], strict=True)
    x = imagenet_input(
        cbook.get_sample_data('grace_hopper.jpg', asfileobj=False))
    logits = imagenet_logits(backbone, x, source)
    assert set(logits.topk(2).indices[0].tolist()) == WHAT_THE_PHOTO_SHOWS
    # The control: the same classifier on a randomly initialised backbone
    # does not see them.
    torch.manual_seed(0)
    untrained = MobileNetV2(out_indices=(7, ))
    untrained.init_weights()
    logits = imagenet_logits(untrained, x, source)
    assert not set(logits.topk(2).indices[0].tolist()) & WHAT_THE_PHOTO_SHOWS


def test_an_incomplete_state_dict_is_refused(converted):
    _, source = converted
    incomplete = dict(source)
    del incomplete['features.5.conv.1.0.weight']
    with pytest.raises(RuntimeError, match='layer3.1.depthwise_conv.conv'):
        tool.convert(incomplete)


def test_another_file_is_refused(tmp_path):
    src = tmp_path / 'other.pth'
    torch.save({'features.0.0.weight': torch.zeros(32, 3, 3, 3)}, src)
    with pytest.raises(ValueError, match='sha256'):
        tool.main([str(tmp_path / 'out.pth'), '--src', str(src)])
    assert not (tmp_path / 'out.pth').exists()
