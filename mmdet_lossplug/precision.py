"""The dtype losses and the op compute in."""
import torch
from torch import Tensor


def upcast_low_precision(values: Tensor) -> Tensor:
    """fp16/bf16 to fp32, so that losses are computed and accumulated in
    fp32 (exp(p / lam) reaches e^12.5 for DR loss); fp32/fp64 unchanged."""
    if values.dtype in (torch.float16, torch.bfloat16):
        return values.float()
    return values
