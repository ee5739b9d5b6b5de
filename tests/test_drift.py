"""Attention drift: shares from the probe rows sum to 1, equal eager attention, normalise and average correctly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import modbias
from modbias.core.layout import position_ids_from_mask
from modbias.core.probe import eager_rows
from modbias.interventions import make
from modbias.runs.drift import GROUPS, drift_curves, drift_summary, normalise_steps, paper_layer, trace_drift
from modbias.runs.store import open_run


@pytest.fixture(scope="module")
def bench():
    return modbias.load_benchmark("synth", subset="all", limit=2)


@pytest.fixture(scope="module")
def run(organism, bench):
    return trace_drift(organism, bench, batch_size=6)


def test_shares_sum_to_one_at_every_step_and_layer(run):
    share = run.share.values.astype(np.float64)  # [sample, step, layer, group]
    n = run.n_steps.values
    assert list(run.group.values) == list(GROUPS) and share.shape[1:3] == (16, 4)
    for i in range(run.sizes["sample"]):
        assert n[i] > 0
        np.testing.assert_allclose(share[i, :n[i]].sum(-1), 1.0, atol=1e-5)
        assert (share[i, :n[i]] >= 0).all()
        assert np.isnan(share[i, n[i]:]).all()
        assert np.all(share[i, 0, :, GROUPS.index("generated")] == 0)  # nothing generated before step 0
        assert (share[i, 1:n[i], :, GROUPS.index("generated")] > 0).all()
        assert " ".join(run.token.values[i, :n[i]]) == str(run.text.values[i])


def test_shares_equal_eager_attention_of_one_sample_alone(run, organism, bench):
    for i in (1, 4):
        sample = bench[i]
        batch = organism.prepare([sample])
        generated = organism.generate(batch, 16)
        full = organism.extend(batch, generated)
        layout, n = batch.layouts[0], int(run.n_steps.values[i])
        queries = torch.arange(n)[None] + layout.prompt_len - 1  # the query decoded into token j
        rows = eager_rows(organism.backbone, queries, inputs_embeds=full.inputs_embeds,
                          attention_mask=full.attention_mask,
                          position_ids=position_ids_from_mask(full.attention_mask))[0].numpy()  # [L, H, Q, T]
        T = rows.shape[-1]
        group_masks = layout.masks(T)  # numpy, in the sample's own coordinates
        expected = np.stack([(rows * group_masks[g]).sum(-1).mean(1) for g in GROUPS], -1)  # [L, Q, G]
        np.testing.assert_allclose(run.share.values[i, :n], expected.transpose(1, 0, 2), atol=1e-5)


def test_step_chunks_and_interventions_give_the_same_shares(organism, bench, run):
    chunked = trace_drift(organism, bench, batch_size=6, step_chunk=5)
    np.testing.assert_allclose(chunked.share.values, run.share.values, atol=1e-6)
    ar = [make("ar", tau=0.0)]
    edited = trace_drift(organism, bench[:3], batch_size=3, interventions=ar)
    edited_chunked = trace_drift(organism, bench[:3], batch_size=3, interventions=ar, step_chunk=4)
    np.testing.assert_allclose(edited_chunked.share.values, edited.share.values, atol=1e-6)
    n = edited.n_steps.values
    for i in range(3):
        np.testing.assert_allclose(edited.share.values[i, :n[i]].sum(-1), 1.0, atol=1e-5)


def test_normalise_steps_by_hand():
    values = np.full((3, 5, 1), np.nan)
    values[0, :3, 0] = [0.0, 1.0, 0.5]  # 3 steps at 0, 50, 100
    values[1, :1, 0] = [0.25]  # one step: constant
    out = normalise_steps(values, [3, 1, 0], n_points=5)  # points 0, 25, 50, 75, 100
    np.testing.assert_allclose(out[0, :, 0], [0.0, 0.5, 1.0, 0.75, 0.5])
    np.testing.assert_allclose(out[1, :, 0], 0.25)
    assert np.isnan(out[2]).all()


def test_curves_from_the_store(organism, bench, run, tmp_path, interrupt):
    import modbias.runs.drift as drift_module
    from tests.conftest import Killed

    out = tmp_path / "drift"
    resume = interrupt(drift_module, "drift_batch", after=2)
    with pytest.raises(Killed):
        trace_drift(organism, bench, out=out, batch_size=2)
    assert open_run(out).sizes["sample"] == 4
    resume()
    stored = trace_drift(organism, bench, out=out, batch_size=6)  # resumes, with another batch size
    assert open_run(out).attrs["kind"] == "drift"
    np.testing.assert_allclose(stored.share.values, run.share.values, atol=1e-6)

    curves = drift_curves(out, by="subset")
    assert curves.share.dims == ("subset", "group", "norm_step", "layer")
    assert curves.norm_step.values.tolist() == list(range(101))
    assert curves.subset.values.tolist() == ["all", "video_aligned", "audio_aligned", "consistent"]
    assert curves.n_samples.values.tolist() == [6, 2, 2, 2]
    np.testing.assert_allclose(curves.share.sum("group").values, 1.0, atol=1e-5)
    # independent: interpolate each sample's curve by hand, then average
    share = run.share.values.astype(np.float64)
    by_hand = []
    for i, n in enumerate(run.n_steps.values):
        x = np.arange(n) * 100 / (n - 1)
        by_hand.append([[np.interp(np.arange(101), x, share[i, :n, layer, g]) for layer in range(4)]
                        for g in range(4)])
    np.testing.assert_allclose(curves.share.sel(subset="all").values, np.mean(by_hand, 0).transpose(0, 2, 1), atol=1e-6)
    video = np.flatnonzero(run.subset.values == "video_aligned")
    np.testing.assert_allclose(curves.share.sel(subset="video_aligned").values,
                               np.mean([by_hand[i] for i in video], 0).transpose(0, 2, 1), atol=1e-6)

    single = drift_curves(run, layer="paper", exclude_prompt=True)
    assert single.share.dims == ("group", "norm_step") and paper_layer(4) == 2 and paper_layer(28) == 20
    assert single.group.values.tolist() == ["visual", "audio", "generated"]
    np.testing.assert_allclose(single.share.sum("group").values, 1.0, atol=1e-6)
    assert drift_curves(run, layer="mean").share.dims == ("group", "norm_step")

    labels = xr.Dataset({"mi": ("sample", ["audio", "visual"] * 3)}, coords={"sample": run.sample.values})
    by_mi = drift_curves(run, by="mi", mi=labels, layer=2)
    assert by_mi.mi.values.tolist() == ["all", "audio", "visual"] and by_mi.n_samples.values.tolist() == [6, 3, 3]
    with pytest.raises(ValueError, match="no per-sample 'mi'"):
        drift_curves(run, by="mi")
    rows = drift_summary(by_mi)
    assert len(rows) == 9 and rows[0]["mi"] == "all" and rows[0]["generated"] == 0.0
    assert all(abs(sum(r[g] for g in GROUPS) - 1) < 1e-5 for r in rows)


def test_cli_drift_command(tmp_path):
    import typer
    from typer.testing import CliRunner

    from modbias.cli.migr import drift as drift_command

    app = typer.Typer()
    app.command("drift")(drift_command)
    app.command("noop")(lambda: None)
    out = tmp_path / "cli-drift"
    result = CliRunner().invoke(app, ["drift", "--limit", "1", "--out", str(out), "--step-chunk", "6"])
    assert result.exit_code == 0, result.output
    ds = open_run(out)
    assert ds.sizes["sample"] == 3 and ds.attrs["config"]["parameters"] == {"max_new_tokens": 16, "mi_labels": None}
    assert "attention shares by subset" in result.output and "generated" in result.output
