"""Explanation consistency: EEA / EPC / FCR / R✗/A✓ by hand, classifiers, and per subset and intervention run."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import modbias
from modbias.analysis.consistency import (LexiconClassifier, consistency, consistency_runs, consistency_scores,
                                 explanation_emotions, llm_judge)
from modbias.core.emotions import split_conclusion


def test_metrics_by_hand():
    #            e (explanation)  ŷ (prediction)  y (label)
    rows = [("happy", "happy", "happy"),    # all agree: EEA, EPC, FCR
            ("sad", "happy", "happy"),      # right answer, wrong reasoning: R✗/A✓
            ("sad", "sad", "happy"),        # consistent but wrong: EPC only
            (None, "angry", "angry"),       # no single emotion, right answer: R✗/A✓
            ("fear", "sad", "fear"),        # reasoning right, answer wrong: EEA only
            ("worry", "happy", "sad")]      # nothing agrees
    e, p, y = zip(*rows)
    s = consistency_scores(e, p, y)
    assert s["EEA"] == pytest.approx(2 / 6)  # rows 1, 5
    assert s["EPC"] == pytest.approx(2 / 6)  # rows 1, 3
    assert s["FCR"] == pytest.approx(1 / 6)  # row 1
    assert s["RxA_all"] == pytest.approx(2 / 6)  # rows 2, 4
    assert s["RxA_correct"] == pytest.approx(2 / 3)  # rows 1, 2, 4 are correct
    assert s["accuracy"] == pytest.approx(3 / 6) and (s["n"], s["n_correct"]) == (6, 3)
    assert s["FCR"] + s["RxA_all"] == pytest.approx(s["accuracy"])
    assert consistency_scores([""], ["happy"], ["happy"])["EPC"] == 0.0  # "" is no emotion, never a match
    with pytest.raises(ValueError, match="lengths differ"):
        consistency_scores(["happy"], [], ["happy"])


def test_split_conclusion():
    assert split_conclusion("face looks happy , voice sounds sad , so feels sad .") == \
        ("face looks happy , voice sounds sad ,", "so feels sad .")
    assert split_conclusion("<think>She smiles but her voice trembles with fear.</think><answer>fear</answer>") == \
        ("She smiles but her voice trembles with fear.", "fear")
    assert split_conclusion("He frowns and shouts; therefore he is angry.") == \
        ("He frowns and shouts;", "therefore he is angry.")
    assert split_conclusion("A calm face, a furious voice: angry") == ("A calm face, a furious voice:", "angry")
    assert split_conclusion("no emotion words here") == ("no emotion words here", "")


def test_lexicon_classifier_and_ties():
    assert LexiconClassifier()("face looks happy , voice sounds happy ,") == "happy"
    assert LexiconClassifier()("joyful face, cheerful tone, a little sad") == "happy"  # 2 vs 1
    tie = "face looks happy , voice sounds sad ,"
    assert LexiconClassifier()(tie) is None
    assert LexiconClassifier(tie="first")(tie) == "happy"
    assert LexiconClassifier(tie="last")(tie) == "sad"
    assert LexiconClassifier()("nothing to see") is None
    texts = ["face looks fear , voice sounds fear , so feels happy .",
             "face looks happy , voice sounds sad , so feels sad ."]
    assert explanation_emotions(texts) == ["fear", None]  # the conclusion never leaks in
    with pytest.raises(ValueError):
        LexiconClassifier(tie="random")


def test_llm_judge_plugs_in():
    asked = []

    def ask(prompt):
        asked.append(prompt)
        return " Sadness." if "trembles" in prompt else "none"

    judge = llm_judge(ask)
    assert judge("her voice trembles") == "sad" and judge("her voice trembles") == "sad"
    assert judge("a plain room") is None
    assert len(asked) == 2 and "Explanation: her voice trembles" in asked[0] and "contempt" in asked[0]
    texts = ["her voice trembles , so feels sad .", "a plain room , so feels happy ."]
    ds = xr.Dataset(coords={"sample": ["a", "b"], "text": ("sample", texts), "prediction": ("sample", ["sad", "happy"]),
                            "label": ("sample", ["sad", "happy"]), "subset": ("sample", ["consistent"] * 2)})
    scores = consistency(ds, classifier=judge)
    assert scores["consistent"]["EEA"] == 0.5 and scores["overall"]["RxA_correct"] == 0.5


@pytest.fixture(scope="module")
def runs(organism, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    bench = modbias.load_benchmark("synth", subset="all", limit=2)
    edited = modbias.intervene(organism, bench, method="ar", tau=0.0, cache_dir=cache, batch_size=6)
    baseline = edited.attrs["summary"]["baseline"]
    return baseline, edited.attrs["path"]


def _by_hand(text):
    """The organism's format: 'face looks X , voice sounds Y , so feels Z .' → X if X == Y else None."""
    words = str(text).split()
    x, y = words[2], words[6]
    return x if x == y else None


def test_per_subset_and_per_intervention(runs):
    table = consistency_runs(list(runs))
    assert table.run.values.tolist()[0] == "none" and table.run.values.tolist()[1].startswith("ar")
    assert table.group.values.tolist() == ["video_aligned", "audio_aligned", "consistent", "overall"]
    for name, path in zip(table.run.values, runs):
        ds = modbias.open_run(path)
        e = [_by_hand(t) for t in ds.text.values]
        for group in table.group.values:
            pick = np.ones(6, bool) if group == "overall" else ds.subset.values == group
            expected = consistency_scores(np.array(e, dtype=object)[pick], ds.prediction.values[pick],
                                          ds.label.values[pick])
            for metric in ("EEA", "EPC", "FCR", "RxA_all", "accuracy"):
                assert table[metric].sel(run=name, group=group).item() == pytest.approx(expected[metric]), (name, group)
        np.testing.assert_allclose(table.FCR.sel(run=name) + table.RxA_all.sel(run=name), table.accuracy.sel(run=name))
    assert table.n.sel(group="overall").values.tolist() == [6, 6]
    direct = consistency(runs[1])
    assert table.EEA.sel(run=table.run.values[1], group="consistent").item() == direct["consistent"]["EEA"]


def test_cli_consistency_command(runs):
    import typer
    from typer.testing import CliRunner

    from modbias.cli.migr import consistency as consistency_command

    app = typer.Typer()
    app.command("consistency")(consistency_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["consistency", *map(str, runs)])
    assert result.exit_code == 0, result.output
    assert "EEA" in result.output and "video_aligned" in result.output and "ar-tau0.0" in result.output
