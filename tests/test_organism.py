"""The shipped organism: loads by default, shows emergent audio bias, trains deterministically."""

from __future__ import annotations

import torch

import modbias
from modbias.core.evaluation import subset_metrics
from modbias.data.synth import SynthConfig
from modbias.models.organism import Organism
from modbias.training.organism import TrainConfig, train_organism


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


def test_organism_attn_reads_the_face_it_then_overrules():
    """organism-attn: video-aligned failures whose visual emotion a linear readout of the visual tokens
    recovers (the deficit is attentional, not perceptual); its own benchmark preset and base state."""
    import numpy as np

    from modbias.data.synth import ATTN_CONFIG, synth_benchmark
    from modbias.runs.readout import readout_by_layer, visual_features

    model = modbias.load_model("organism-attn")
    assert model.family == "organism-attn" and model.config.training["data"]["n_visual"] == 64
    data = list(modbias.load_benchmark("synth-attn", subset="video_aligned", limit=60))
    ds = modbias.trace(model, data, batch_size=60)
    failed = ~np.asarray(ds.correct.values, bool)
    assert 0.2 < failed.mean() < 0.9, failed.mean()
    train = list(synth_benchmark("train", ATTN_CONFIG, limit=300))
    visual = np.asarray([s.visual_emotion for s in data])
    accuracy = readout_by_layer(visual_features(model, train)[:, 2:3], [s.visual_emotion for s in train],
                                visual_features(model, data)[failed][:, 2:3], visual[failed])
    assert accuracy[0] >= 90, accuracy


def test_readout_is_a_linear_classifier_that_can_fail():
    import numpy as np

    from modbias.runs.readout import LinearReadout

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    separable = np.eye(3)[labels] * 4 + rng.normal(0, 0.3, (300, 3))
    names = [("a", "b", "c")[i] for i in labels]
    readout = LinearReadout(classes=("a", "b", "c")).fit(separable[:200], names[:200])
    assert np.mean(np.asarray(readout.predict(separable[200:])) == np.asarray(names[200:])) > 0.95
    noise = rng.normal(0, 1, (300, 3))
    chance = LinearReadout(classes=("a", "b", "c")).fit(noise[:200], names[:200])
    assert np.mean(np.asarray(chance.predict(noise[200:])) == np.asarray(names[200:])) < 0.6
