"""Network outputs in full precision, whatever ``torch.autocast`` computed inside the network.

Under ``train.precision`` bf16 or fp16 the layers of a network run in that dtype; the losses built on
its outputs (KL, reconstruction, the methods' regularisers) should not. Every network of
``disent_core.models`` returns ``full_precision(output)``: fp32 for a bf16/fp16 output, and fp32 or
fp64 outputs unchanged (a model run in float64, as some tests do, stays in float64).
"""

from __future__ import annotations

import torch


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """``x`` in at least fp32.

    Args:
        x: a network's output.

    Returns:
        ``x`` cast to fp32 when it is bf16 or fp16, else ``x`` itself.
    """
    return x.to(torch.promote_types(x.dtype, torch.float32))
