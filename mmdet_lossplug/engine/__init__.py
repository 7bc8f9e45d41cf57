from .cpu_ddp import DeviceAwareDistributedDataParallel

__all__ = ['DeviceAwareDistributedDataParallel']
