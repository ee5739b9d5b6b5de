"""The probe's rows equal eager attention, and probing never changes what the model computes."""

from __future__ import annotations

import pytest
import torch

from modbias.core.probe import AttentionProbe, ProbeRequest, eager_rows, probing
from tests.conftest import left_padded_batch, tiny_causal_lm


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
def test_rows_equal_eager_attention_with_left_padding(arch, n_kv_heads):
    model = tiny_causal_lm(arch, n_kv_heads)
    ids, mask, pos = left_padded_batch([12, 7, 10])
    query = torch.tensor([[11, 8], [11, 6], [11, 2]])  # last position and one earlier real position each
    expected = eager_rows(model, query, input_ids=ids, attention_mask=mask, position_ids=pos)
    got = AttentionProbe(model).rows(query, input_ids=ids, attention_mask=mask, position_ids=pos)
    assert got.shape == (3, 2, 4, 2, 12)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert torch.all(got[1, ..., :5] == 0), "left padding must get no attention"
    torch.testing.assert_close(got.sum(-1), torch.ones_like(got.sum(-1)), atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_rows_without_padding_use_the_implicit_causal_mask(arch):
    model = tiny_causal_lm(arch)
    ids, _, _ = left_padded_batch([9, 9])
    query = torch.tensor([[3, 8], [0, 5]])
    expected = eager_rows(model, query, input_ids=ids)
    got = AttentionProbe(model).rows(query, input_ids=ids)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert torch.all(got[1, :, :, 0, 1:] == 0), "query 0 sees only itself"


class CloneRows:
    """An editor that hands back an equal copy: forces the edited-output path."""

    def edit_rows(self, rows, context):
        return rows.clone()


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_probing_leaves_logits_and_generation_unchanged(arch):
    model = tiny_causal_lm(arch)
    ids, mask, pos = left_padded_batch([10, 6])
    with torch.no_grad():
        plain_logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        plain_tokens = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, do_sample=False,
                                      pad_token_id=0)
    AttentionProbe(model)  # switches the model to the probe attention
    real = mask.bool()
    with torch.no_grad(), probing(ProbeRequest(query_index=None, editors=[CloneRows()])):
        probed_logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        probed_tokens = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, do_sample=False,
                                       pad_token_id=0)
    torch.testing.assert_close(probed_logits[real], plain_logits[real], atol=1e-5, rtol=1e-5)
    assert torch.equal(probed_tokens, plain_tokens)


def test_an_edit_changes_the_output_of_the_edited_query_only():
    model = tiny_causal_lm("llama")
    ids, mask, pos = left_padded_batch([10, 10])
    probe = AttentionProbe(model)

    class Uniform:
        def edit_rows(self, rows, context):
            return torch.where(rows > 0, 1.0, 0.0) / (rows > 0).sum(-1, keepdim=True)

    with torch.no_grad():
        base = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        with probing(ProbeRequest(query_index=torch.tensor([[4], [4]]), editors=[Uniform()])):
            edited = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    torch.testing.assert_close(edited[:, :4], base[:, :4])
    assert not torch.allclose(edited[:, 4], base[:, 4])
    assert probe.tap_paths[0].endswith("layers.0.self_attn.row_tap")


@pytest.mark.parametrize("n_kv_heads", [6, 3, 2, 1])
def test_grouped_matmul_uses_each_query_heads_own_kv_head(n_kv_heads):
    from modbias.core.probe import grouped_matmul

    gen = torch.Generator().manual_seed(0)
    per_head = torch.randn(2, 6, 3, 5, generator=gen)  # [B, H, Q, n]
    shared = torch.randn(2, n_kv_heads, 5, 7, generator=gen)  # [B, H_kv, n, m]
    got = grouped_matmul(per_head, shared)
    group = 6 // n_kv_heads
    for b in range(2):
        for h in range(6):  # query head h reads kv head h // group (transformers' repeat_kv order)
            torch.testing.assert_close(got[b, h], per_head[b, h] @ shared[b, h // group])
