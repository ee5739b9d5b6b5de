"""``modbias.attention_rows`` on plain HF causal LMs: equal to eager attention, model left as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import modbias
from modbias.core.probe import eager_rows
from tests.conftest import left_padded_batch, tiny_causal_lm


def greedy(model, ids, mask, n):
    with torch.no_grad():
        return model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, do_sample=False,
                              pad_token_id=0)[:, ids.shape[1]:]


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral"])
def test_rows_equal_eager_attention_of_the_full_sequence(arch):
    model = tiny_causal_lm(arch, n_kv_heads=2)
    ids, mask, _ = left_padded_batch([6, 11, 9])
    steps = [0, 3, 5]
    generated = greedy(model, ids, mask, max(steps) + 1)  # independent of the probe
    rows = modbias.attention_rows(model, {"input_ids": ids, "attention_mask": mask}, steps=steps)
    assert rows.dims == ("sample", "step", "layer", "head", "token") and rows.shape == (3, 3, 2, 4, 11 + 5)
    full = torch.cat([ids, generated[:, :max(steps)]], 1)
    full_mask = torch.cat([mask, torch.ones_like(generated[:, :max(steps)])], 1)
    query = torch.tensor(steps).expand(3, -1) + ids.shape[1] - 1
    expected = eager_rows(model, query, input_ids=full, attention_mask=full_mask,
                          position_ids=(full_mask.cumsum(-1) - 1).clamp(min=0))  # [B, L, H, Q, T]
    np.testing.assert_allclose(rows.values, expected.permute(0, 3, 1, 2, 4).numpy(), atol=1e-5)
    np.testing.assert_array_equal(rows.token_id.values, full.numpy())
    assert np.all(rows.values[0, ..., :5] == 0), "left padding gets no attention"


def test_one_unbatched_prompt_layers_and_modality_masks():
    model = tiny_causal_lm("llama")
    ids, _, _ = left_padded_batch([10])
    visual = torch.zeros(1, 10, dtype=torch.bool)
    visual[0, 2:6] = True
    rows = modbias.attention_rows(model, ids[0], steps=[2], layers=[1], masks={"visual": visual})
    assert rows.shape == (1, 1, 1, 4, 12) and list(rows.layer.values) == [1]
    expected = rows.values[..., 2:6].sum(-1)
    np.testing.assert_allclose(rows.where(rows.visual, 0).sum("token").values, expected, rtol=1e-6)
    assert not rows.visual.values[0, 10:].any(), "generated positions belong to no modality"


def test_model_is_left_as_it_was():
    model = tiny_causal_lm("qwen2")
    ids, mask, pos = left_padded_batch([7, 9])
    modules = [name for name, _ in model.named_modules()]
    implementation = model.config._attn_implementation
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    modbias.attention_rows(model, {"input_ids": ids, "attention_mask": mask}, steps=[1])
    assert [name for name, _ in model.named_modules()] == modules
    assert model.config._attn_implementation == implementation
    assert all("forward" not in module.__dict__ for module in model.modules()), "no hooks or wrappers left"
    with torch.no_grad():
        after = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_steps_after_the_end_of_a_generation_are_nan():
    model = tiny_causal_lm("llama")
    ids, mask, _ = left_padded_batch([8, 8], seed=3)
    generated = greedy(model, ids, mask, 4)
    model.generation_config.eos_token_id = int(generated[0, 1])  # sample 0 ends at step 1
    rows = modbias.attention_rows(model, {"input_ids": ids, "attention_mask": mask}, steps=[0, 1, 3])
    ended = np.array([[False, False, True], [False, False, False]])
    is_eos = (generated == int(generated[0, 1])).numpy()
    ended[1] = [is_eos[1, :k].any() for k in (0, 1, 3)]
    np.testing.assert_array_equal(rows.ended.values, ended)
    assert np.isnan(rows.values[ended]).all() and not np.isnan(rows.values[~ended]).any()


@pytest.mark.parametrize("bad, message", [({"steps": [-1]}, "non-negative"), ({"steps": []}, "non-negative"),
                                          ({"inputs": torch.rand(1, 4)}, "integer ids"),
                                          ({"inputs": {"attention_mask": torch.ones(1, 3)}}, "input_ids")])
def test_bad_arguments_name_the_problem(bad, message):
    model = tiny_causal_lm("llama")
    arguments = {"inputs": torch.tensor([[1, 2, 3]]), "steps": [0], **bad}
    with pytest.raises(ValueError, match=message):
        modbias.attention_rows(model, arguments.pop("inputs"), **arguments)
