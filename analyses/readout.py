"""Perceptual or attentional?  Linear readout of the visual emotion on the video-aligned failures.

    python analyses/readout.py [--models organism,organism-attn] [--n-train 1500] [--limit 500]

For each organism: trace its video-aligned test subset, take the samples it
gets wrong, and report per layer the accuracy of a linear readout of the
visual emotion from the mean hidden state of the visual tokens
(:mod:`modbias.runs.readout`), fitted on ``--n-train`` training samples of the
organism's own training data.  Also printed: the readout on all video-aligned
samples, how often the answer's own description of the face ("face looks X")
names the visual emotion on the failures, and the attention (UAP_v / UAP_a of
Eq. 1, mean over heads and samples) per layer at the conclusion's emotion token
for video-aligned failures and successes and audio-aligned successes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import modbias  # noqa: E402
from modbias.data.synth import synth_benchmark  # noqa: E402
from modbias.runs.readout import readout_by_layer, visual_features  # noqa: E402
from modbias.training.mose import organism_data_config  # noqa: E402

DATA = {"organism": "synth", "organism-attn": "synth-attn"}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="organism,organism-attn")
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--limit", type=int, default=500, help="test samples per subset")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for name in args.models.split(","):
        model = modbias.load_model(name)
        train = list(synth_benchmark("train", organism_data_config(model), limit=args.n_train))
        both = list(modbias.load_benchmark(DATA[name], subset="all", limit=args.limit))
        traced = modbias.trace(model, both, batch_size=100, at="both")
        video = np.asarray(traced.subset.values) == "video_aligned"
        test, ds = [s for s, v in zip(both, video) if v], traced.isel(sample=video)
        failed = ~np.asarray(ds.correct.values, bool)
        described = np.mean([t.split()[2] == s.visual_emotion for t, s, f in zip(ds.text.values, test, failed) if f])
        train_x, test_x = visual_features(model, train), visual_features(model, test)
        train_y, test_y = [s.visual_emotion for s in train], np.asarray([s.visual_emotion for s in test])
        on_failures = readout_by_layer(train_x, train_y, test_x[failed], test_y[failed])
        on_all = readout_by_layer(train_x, train_y, test_x, test_y)
        print(f"\n{name}: {failed.sum()} of {len(test)} video-aligned samples wrong; "
              f"their answers describe the face correctly in {described * 100:.1f} %")
        print("layer | readout on failures % | readout on all video-aligned %")
        for layer, (a, b) in enumerate(zip(on_failures, on_all)):
            print(f"{layer:5d} | {a:20.1f} | {b:30.1f}")
        answer, correct = traced.sel(at="answer"), np.asarray(traced.correct.values, bool)
        subsets = np.asarray(traced.subset.values)
        print("UAP_v / UAP_a per layer at the conclusion token")
        for label, pick in (("video-aligned wrong", video & ~correct), ("video-aligned right", video & correct),
                            ("audio-aligned right", (subsets == "audio_aligned") & correct)):
            v, a = (np.nanmean(answer[k].values[pick], axis=0) for k in ("UAP_v", "UAP_a"))
            print(f"{label:20s} ({pick.sum():3d}) " + "  ".join(f"{x:.3f}/{y:.3f}" for x, y in zip(v, a)))


if __name__ == "__main__":
    main()
