"""Inference cost per sample (MoSEAR paper, Table 14): FLOPs and wall-clock time of one sample's
generation under a stack of interventions.

FLOPs are counted by torch's :class:`~torch.utils.flop_counter.FlopCounterMode`
(matrix products and attention kernels; element-wise work is not counted, as
is usual for FLOP tables).  torch counts the fused attention kernels of CUDA
but not the CPU one, so the CPU kernel is registered here with torch's own
attention formula (:func:`torch.utils.flop_counter.sdpa_flop_count`): on both
devices a forward counts 4·T·S·d per head for QKᵀ and the weighted sum.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula, sdpa_flop_count

from modbias.data.sample import Sample
from modbias.interventions.base import Intervention, applied
from modbias.models.base import ModelAdapter
from modbias.runs.trace import generate_under

_CPU_SDPA = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
if _CPU_SDPA is not None:
    @register_flop_formula(_CPU_SDPA, get_raw=True)
    def _cpu_sdpa_flops(query, key, value, *args, out_val=None, **kwargs) -> int:
        return sdpa_flop_count(query.shape, key.shape, value.shape)


@dataclass(frozen=True)
class Cost:
    """Mean FLOPs and milliseconds per sample, over ``samples`` samples generated one at a time."""

    flops: float
    ms: float
    samples: int


def _synchronise(model: ModelAdapter) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)


def measure_cost(model: ModelAdapter, samples: list[Sample], interventions: list[Intervention] = (),
                 max_new_tokens: int = 16, warmup: int = 1) -> Cost:
    """FLOPs and time of greedy generation, batch size 1, under ``interventions``.

    Args:
        model: the adapter.
        samples: the samples generated for, one at a time.
        interventions: applied for both passes.
        max_new_tokens: tokens generated per sample.
        warmup: samples generated first and not counted.
    Returns:
        :class:`Cost`: mean FLOPs (one counted pass) and milliseconds (a second, uncounted pass) per sample.
    """
    interventions = list(interventions)
    with applied(model, interventions), torch.no_grad():
        for sample in samples[:warmup]:
            generate_under(model, [sample], max_new_tokens, interventions)
        with FlopCounterMode(display=False) as counter:
            for sample in samples:
                generate_under(model, [sample], max_new_tokens, interventions)
        _synchronise(model)
        start = time.perf_counter()
        for sample in samples:
            generate_under(model, [sample], max_new_tokens, interventions)
        _synchronise(model)
        elapsed = time.perf_counter() - start
    n = max(len(samples), 1)
    return Cost(counter.get_total_flops() / n, elapsed * 1000 / n, len(samples))
