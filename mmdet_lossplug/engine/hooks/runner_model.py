"""The detector a hook should touch, whether or not the runner wrapped it
(DDP, ``DeviceAwareDistributedDataParallel``, FSDP)."""
from mmengine.model import is_model_wrapper


def unwrapped_model(runner):
    """``runner.model`` without its model wrapper."""
    model = runner.model
    return model.module if is_model_wrapper(model) else model
