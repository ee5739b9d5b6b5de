"""Cost per sample (Table 14): the flop counter sees attention on CPU; analyses/table14.py on the organism."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import modbias.runs.cost  # noqa: F401  (registers the CPU attention kernel's formula)
from analyses import table14


def test_cpu_attention_is_counted_with_the_attention_formula():
    q, k = torch.randn(2, 4, 5, 16), torch.randn(2, 4, 9, 16)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.scaled_dot_product_attention(q, k, k)
    assert counter.get_total_flops() == 2 * (2 * 4 * 5 * 9 * 16) * 2  # QKᵀ and the weighted sum of V


def test_table14_prints_four_configurations_and_ar_costs_the_same_on_top_of_mose(tmp_path, capsys):
    table14.main(["--samples", "2", "--max-new-tokens", "6", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    rows = {r["method"]: r for r in json.loads((tmp_path / "table14.json").read_text())["rows"]}
    assert list(rows) == ["none", "ar", "mose", "mose+ar"]
    for row in rows.values():
        assert f"{row['ms']:.2f}" in printed and row["flops"] > 0
    assert rows["ar"]["flops"] > rows["none"]["flops"] and rows["mose"]["flops"] > rows["none"]["flops"]
    # a fresh MoSE changes no output, so AR adds exactly the same work with or without it
    added_by_ar = rows["ar"]["flops"] - rows["none"]["flops"]
    assert rows["mose+ar"]["flops"] - rows["mose"]["flops"] == pytest.approx(added_by_ar)
    assert (tmp_path / "table14.md").read_text().count("\n|") == 6  # header, rule, four rows


def test_table14_real_size_path_runs_shrunk_on_cpu(tmp_path):
    table14.main(["--real-size", "--scale", "0.03", "--samples", "1", "--max-new-tokens", "2", "--out", str(tmp_path)])
    record = json.loads((tmp_path / "table14.json").read_text())
    assert record["model"] == "emotion-llama-size" and [r["params"].get("r") for r in record["rows"]] == \
        [None, None, 8, 8]
    assert record["rows"][3]["flops"] > record["rows"][0]["flops"]
