"""Training MoSE on the organism (``modbias mose train``), CA-MER paper Sec. 5.1.

As in the paper, MoSE replaces the task fine-tuning: it is trained from the
organism's *base state* (:meth:`~modbias.models.organism.Organism.load_base`,
trained on consistent samples only), not from the converged organism, and is
compared with a plain-LoRA baseline of matched parameter count trained on the
same data with the same schedule (:func:`lora_baseline_rank`; Table 6).

Only the MoSE parameters (experts and routers of every layer) are trained;
the backbone and projectors stay frozen.  The objective is the
organism's own: next-token cross-entropy on the answer text, teacher-forced
(:func:`modbias.training.organism.answer_batch`), on the synthetic training
split the organism was trained on (its stored data config).  Teacher forcing
runs prompt + answer in one forward; answer positions are generated text
(non-visual), and lambda (Eq. 3) comes from the prompt tokens only, as at
generation.  Optimiser: AdamW with weight decay 0.05, linear warm-up and
cosine decay (the paper's schedule, Sec. 6.1, at this scale's learning rate, 1e-2).

Defaults scale the paper's r=64, N=2, eps=0.1 to the organism (hidden 128):
r=8, N=2, eps=0.1.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from modbias.core.progress import progress_bar
from modbias.data.synth import SynthConfig, synth_benchmark
from modbias.interventions.mose import EXPERTS, MoSE, MoSEConfig, attach_mose, count_parameters, load_mose
from modbias.models.organism import Organism
from modbias.training.organism import answer_batch, answer_loss, warmup_cosine

__all__ = ["train_mose", "load_mose", "mose_loss", "organism_data_config", "lora_baseline_rank"]


def lora_baseline_rank(d: int, n_layers: int, mose_parameters: int) -> int:
    """Rank of the plain-LoRA baseline (one LoRA on the FFN of every token: the omni expert alone,
    N=1, no router) whose parameter count is closest to ``mose_parameters``.

    Args:
        d: the backbone width.
        n_layers: L.
        mose_parameters: the trainable parameters of the MoSE to match.

    Returns:
        The rank r (at least 1).
    """
    per_rank = count_parameters(d, n_layers, r=1, n_experts=1, router=False, experts=1) - n_layers * d
    return max(1, round((mose_parameters - n_layers * d) / per_rank))


def organism_data_config(model: Organism) -> SynthConfig:
    """The synthetic data config the organism was trained on (defaults if it has none).

    Args:
        model: the organism (its ``config.training["data"]``).

    Returns:
        The :class:`SynthConfig`.
    """
    data = dict(model.config.training.get("data", {}))
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return SynthConfig(**data)


def mose_loss(model: Organism, mose: MoSE, samples) -> torch.Tensor:
    """Mean answer-token cross-entropy of ``samples`` with ``mose`` attached to ``model``.

    Args:
        model: the organism, with ``mose`` attached.
        mose: the MoSE (given the batch's layouts before the forward).
        samples: training samples.

    Returns:
        The scalar loss (:func:`~modbias.training.organism.answer_loss`).
    """
    embeds, mask, targets, loss_mask = answer_batch(model, samples)
    with torch.no_grad():
        layouts = [model.embed_sample(s)[1] for s in samples]
    offsets = (mask == 0).sum(1)  # left padding of each teacher-forced sequence
    mose.set_batch(layouts, offsets, embeds.shape[1])
    return answer_loss(model, embeds, mask, targets, loss_mask)


def train_mose(model: Organism, r: int = 8, n_experts: int = 2, eps: float = 0.1, epochs: int = 4,
               lr: float = 1e-2, seed: int = 0, out: str | Path | None = None, *, batch_size: int = 32,
               weight_decay: float = 0.05, warmup_steps: int = 20, router_hidden: int = 8,
               nonvisual: str = "audio_text", data: SynthConfig | None = None, n_train: int | None = 2400,
               max_steps: int | None = None, threads: int | None = 2, progress: bool = True,
               experts: tuple[str, ...] = EXPERTS, router: bool = True) -> MoSE:
    """Fine-tune a fresh MoSE on ``model`` (frozen) and save it to ``out`` (if given).

    ``n_train`` default: 2,400 of the split's 6,000; 4 epochs = 300 steps, about 4
    minutes for ``organism-attn`` and 12 for ``organism`` on one busy CPU core; at lr 2e-3
    and half the steps the adapters stayed far from the task's loss.

    Args:
        model: the organism (frozen during training, restored afterwards).
        r: LoRA rank of each expert.
        n_experts: experts per modality group.
        eps: the router's ε.
        epochs: passes over the training samples.
        lr: AdamW learning rate (warm-up then cosine decay).
        seed: seed of the initialisation and sample order.
        out: folder to save the MoSE to (with its training record), or ``None``.
        batch_size: samples per step.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        router_hidden: the router MLP's width.
        nonvisual: the tokens the non-visual expert E_n acts on: ``audio_text`` or ``audio`` (Eq. 4).
        data: the training data (default: the organism's own data config).
        n_train: the most training samples (``None``: all).
        max_steps: the most optimiser steps (``None``: no cap).
        threads: torch threads (``None``: unchanged).
        progress: show a progress bar.
        experts: the expert kinds (``("omni",)`` with ``n_experts=1, router=False``: the plain-LoRA baseline).
        router: use the router (Table 6 variants switch it off).

    Returns:
        The trained MoSE in eval mode, detached from the model; ``history`` holds the per-step losses.
    """
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    data = data or organism_data_config(model)
    samples = list(synth_benchmark("train", data, limit=n_train))
    cfg = model.backbone.config
    mose = MoSE(MoSEConfig(cfg.hidden_size, cfg.num_hidden_layers, r=r, n_experts=n_experts, eps=eps,
                           router_hidden=router_hidden, nonvisual=nonvisual, experts=tuple(experts), router=router))
    steps_per_epoch = math.ceil(len(samples) / batch_size)
    total = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    opt = torch.optim.AdamW(mose.parameters(), lr=lr, weight_decay=weight_decay)
    sched = warmup_cosine(opt, warmup_steps, total)
    gen = torch.Generator().manual_seed(seed)
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    model.eval().requires_grad_(False)
    attachment = attach_mose(model, mose)
    mose.train()
    history, step, start = [], 0, time.time()
    try:
        with progress_bar(progress) as bar:
            task = bar.add_task("training MoSE: optimiser steps", total=total)
            for epoch in range(epochs):
                order = torch.randperm(len(samples), generator=gen).tolist()
                for i in range(steps_per_epoch):
                    if step >= total:
                        break
                    chunk = [samples[j] for j in order[i * batch_size:(i + 1) * batch_size]]
                    loss = mose_loss(model, mose, chunk)
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(mose.parameters(), 1.0)
                    opt.step()
                    sched.step()
                    step += 1
                    history.append(loss.item())
                    recent = sum(history[-20:]) / len(history[-20:])
                    bar.update(task, advance=1, description=f"MoSE epoch {epoch + 1} loss {recent:.3f}")
    finally:
        attachment.detach()
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)
    mose.eval()
    mose.history = history
    if out is not None:
        mose.save(out, extra={"training": {
            "r": r, "n_experts": n_experts, "eps": eps, "epochs": epochs, "lr": lr, "seed": seed,
            "batch_size": batch_size, "weight_decay": weight_decay, "warmup_steps": warmup_steps,
            "experts": list(experts), "router": router, "trainable": mose.trainable_parameters(),
            "steps": step, "n_train": len(samples), "seconds": round(time.time() - start, 1),
            "first_loss": history[0] if history else None,
            "last_loss_mean20": sum(history[-20:]) / max(1, len(history[-20:])),
            "base_model": model.describe()}})
    return mose
