"""The shipped organism: loads by default, shows emergent audio bias, trains deterministically."""

from __future__ import annotations

import torch

import modbias
from modbias.data.synth import SynthConfig
from modbias.evaluation import subset_metrics
from modbias.models.organism import Organism
from modbias.models.training import TrainConfig, train_organism


def test_shipped_weights_show_audio_bias(organism):
    data = modbias.load_benchmark("synth", subset="all", limit=150)
    hit = {s: m["hit"] for s, m in subset_metrics(modbias.trace(organism, data, batch_size=150)).items()}
    assert hit["audio_aligned"] - hit["video_aligned"] >= 8, hit
    assert hit["consistent"] > hit["audio_aligned"], hit


def test_training_split_balances_conflicts_and_training_is_deterministic(tmp_path):
    data = SynthConfig(n_train=48, n_visual=8)
    first = train_organism(TrainConfig(epochs=1, batch_size=16), data, progress=False)
    second = train_organism(TrainConfig(epochs=1, batch_size=16), data, progress=False)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    first.save(tmp_path)
    loaded = Organism.load(tmp_path)
    sample = list(modbias.load_benchmark("synth", subset="consistent", limit=2, n_visual=8))
    torch.testing.assert_close(loaded.generate(loaded.prepare(sample), 6), first.generate(first.prepare(sample), 6))
    assert loaded.config.training["train"]["epochs"] == 1
