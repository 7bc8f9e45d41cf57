"""A DDP wrapper that also trains on CPU processes (gloo backend).

mmengine 0.10's ``Runner.wrap_model`` always passes
``device_ids=[LOCAL_RANK]`` to a ``DistributedDataParallel`` subclass, and
DDP rejects ``device_ids`` for a module on the CPU. Selecting this wrapper
with ``model_wrapper_cfg = dict(type='DeviceAwareDistributedDataParallel')``
drops them for CPU modules and changes nothing on GPUs.
"""
from mmengine.model import MMDistributedDataParallel
# The runner looks wrappers up in mmengine's root registry (without the
# default scope), so the wrapper is registered there; mmdet's child registry
# finds it through its parent.
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class DeviceAwareDistributedDataParallel(MMDistributedDataParallel):

    def __init__(self, module, device_ids=None, **kwargs) -> None:
        first_param = next(module.parameters(), None)
        if first_param is not None and first_param.device.type == 'cpu':
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)
