"""Training the model organism (``modbias organism train``).

Plain next-token cross-entropy on the answer text only, with a fixed seed,
on the synthetic training split (equal video- and audio-aligned conflicts).
Any audio bias of the result is emergent: it comes from the token counts,
sparsity and noise of the two modalities, not from label frequencies.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from modbias.core.layout import position_ids_from_mask
from modbias.core.progress import progress_bar
from modbias.data.synth import SynthConfig, synth_benchmark
from modbias.models.base import left_pad
from modbias.models.organism import Organism, OrganismConfig, answer_text


@dataclass
class TrainConfig:
    """Optimiser settings of :func:`train_organism` (AdamW with warm-up and cosine decay), the seed, audio copies and threads."""
    epochs: int = 3
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    seed: int = 0
    audio_repeat: int = 1
    threads: int = 2


def answer_batch(model: Organism, samples) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Prompt + answer embeddings, left-padded; returns (embeds, mask, targets, loss_mask).

    Args:
        model: the organism.
        samples: samples with ``visual_emotion``, ``audio_emotion`` and ``label`` (the answer is :func:`answer_text`).

    Returns:
        ``(embeds [B, T, d], mask [B, T], targets long [B, T], loss_mask [B, T])``; position t's
        target is token t+1, and ``loss_mask`` is 1 on the positions that predict answer tokens.
    """
    seqs, targets, loss_masks = [], [], []
    tok = model.tokenizer
    for sample in samples:
        prompt, _ = model.embed_sample(sample)
        answer = tok.encode(answer_text(sample.visual_emotion, sample.audio_emotion, sample.label)) + [tok.eos_token_id]
        answer = torch.tensor(answer)
        seqs.append(torch.cat([prompt, model.embed_tokens(answer)]))
        # position t predicts token t+1: the last prompt position predicts the first answer token
        tgt = torch.cat([torch.full((prompt.shape[0] - 1,), tok.pad_token_id), answer, torch.tensor([tok.pad_token_id])])
        targets.append(tgt)
        loss_masks.append(torch.cat([torch.zeros(prompt.shape[0] - 1), torch.ones(len(answer)), torch.zeros(1)]))
    embeds, mask, _ = left_pad(seqs)
    return embeds, mask, left_pad(targets, tok.pad_token_id)[0], left_pad(loss_masks)[0]


def answer_loss(model: Organism, embeds: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor,
                loss_mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the answer tokens of a teacher-forced batch (:func:`answer_batch`'s output).

    Args:
        model: the organism (with whatever is attached to its backbone).
        embeds: ``[B, T, d]`` prompt + answer embeddings, left-padded.
        mask: ``[B, T]`` attention mask.
        targets: long ``[B, T]`` next-token targets.
        loss_mask: ``[B, T]``, 1 on positions that predict an answer token.

    Returns:
        The scalar loss.
    """
    logits = model.backbone(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids_from_mask(mask)).logits
    nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    return (nll * loss_mask.flatten()).sum() / loss_mask.sum()


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_steps``, then cosine decay to 0 at step ``total``.

    Args:
        optimizer: the optimiser whose learning rate is scheduled.
        warmup_steps: steps of the linear ramp.
        total: the step at which the rate reaches 0.

    Returns:
        The scheduler (call ``step()`` once per optimiser step).
    """
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup_steps)
                                             * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))


def train_organism(train: TrainConfig | None = None, data: SynthConfig | None = None,
                   progress: bool = True, *, init: Organism | None = None, subsets: tuple[str, ...] | None = None,
                   name: str = "organism") -> Organism:
    """Train an organism; deterministic for a given config and thread count.

    ``subsets=("consistent",)`` trains a *base state*: both modalities read, no conflict ever resolved.

    Args:
        train: optimiser settings (default :class:`TrainConfig`).
        data: the synthetic training data (default :class:`SynthConfig`).
        progress: show a progress bar.
        init: continue from this organism (updated in place) instead of a fresh one.
        subsets: keep only training samples of these subsets (``None``: all).
        name: the organism's name (its ``family``).

    Returns:
        The organism in eval mode, its training record in ``config.training``.
    """
    train, data = train or TrainConfig(), data or SynthConfig()
    torch.manual_seed(train.seed)
    torch.set_num_threads(train.threads)
    record = {"train": asdict(train), "data": asdict(data), "subsets": list(subsets) if subsets else None}
    if init is None:
        model = Organism(OrganismConfig(visual_dim=data.visual_dim, audio_dim=data.audio_dim,
                                        audio_repeat=train.audio_repeat, name=name, training=record))
    else:
        model = init
        model.config.name = name
        model.config.training = {**record, "init": init.config.training}
    model.train()
    samples = [s for s in synth_benchmark("train", data) if subsets is None or s.extra["train_subset"] in subsets]
    steps_per_epoch = math.ceil(len(samples) / train.batch_size)
    total = train.epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    sched = warmup_cosine(opt, train.warmup_steps, total)
    gen = torch.Generator().manual_seed(train.seed)
    with progress_bar(progress) as bar:
        task = bar.add_task("training organism: optimiser steps", total=total)
        for epoch in range(train.epochs):
            order = torch.randperm(len(samples), generator=gen).tolist()
            for step in range(steps_per_epoch):
                chunk = [samples[i] for i in order[step * train.batch_size:(step + 1) * train.batch_size]]
                loss = answer_loss(model, *answer_batch(model, chunk))
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                bar.update(task, advance=1, description=f"epoch {epoch + 1} loss {loss.item():.3f}")
    return model.eval()


def train_base_state(name: str = "organism", data: SynthConfig | None = None, epochs: int = 3,
                     seed: int = 0, progress: bool = True, threads: int = 2) -> Organism:
    """An organism's base state: trained from scratch on the consistent training samples only
    (face and voice agree), so it reads both modalities but has never resolved a conflict.

    Args:
        name: the organism's name (the result is ``<name>-base``).
        data: the synthetic data whose consistent training samples are used.
        epochs: passes over those samples.
        seed, progress, threads: as :class:`TrainConfig` and :func:`train_organism`.

    Returns:
        The base-state organism.
    """
    return train_organism(TrainConfig(epochs=epochs, seed=seed, threads=threads), data, progress, subsets=("consistent",),
                          name=f"{name}-base")


def train_from_base(base: Organism, name: str, data: SynthConfig | None = None, epochs: int = 2, seed: int = 0,
                    progress: bool = True, threads: int = 2) -> Organism:
    """Task fine-tuning of a base state on the whole training split (all three subsets).

    Args:
        base: the base state (updated in place).
        name: the resulting organism's name.
        data: the synthetic data (every training sample is used).
        epochs: fine-tuning passes (warm-up of 20 steps).
        seed, progress, threads: as :class:`TrainConfig` and :func:`train_organism`.

    Returns:
        The fine-tuned organism.
    """
    return train_organism(TrainConfig(epochs=epochs, seed=seed, warmup_steps=20, threads=threads), data, progress,
                          init=base, name=name)
