"""MoSE (paper Sec. 5.1): Eqs. (2)-(4), zero-init identity, exact detach, toggles, KV-cache typing, training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import modbias
from modbias.core.hf_compat import output_cache, with_cache
from modbias.data.synth import SynthConfig
from modbias.interventions.base import REGISTRY, applied, from_config
from modbias.interventions.mose import (
    EXPERTS, MoSE, MoSEConfig, MoSEIntervention, MoSELayer, MoSEMLP, Router, SoftLoRAMixture, attach_mose,
    count_parameters, format_parameter_table, load_mose, masked_mean, routing_score)
from modbias.core.layout import batch_masks
from modbias.core.layout import position_ids_from_mask
from modbias.core.probe import eager_rows
from modbias.models.organism import Organism, OrganismConfig
from modbias.training.mose import mose_loss, train_mose

TINY_DATA = dict(n_visual=8, visual_dim=8, audio_dim=8, visual_cue_tokens=4, n_train=24, n_per_subset=4)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return Organism(OrganismConfig(visual_dim=8, audio_dim=8, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=128)).eval()


@pytest.fixture(scope="module")
def tiny_bench():
    return modbias.load_benchmark("synth", subset="all", limit=2, **TINY_DATA)


def randomize(mose: MoSE, scale: float = 0.3, seed: int = 1) -> MoSE:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in mose.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return mose


def forward_logits(model, batch, mose_or_iv=None):
    """Logits of one full forward over ``batch`` (typing it first when MoSE is attached)."""
    if mose_or_iv is not None:
        mose_or_iv.begin_batch(model, batch, []) if isinstance(mose_or_iv, MoSEIntervention) else \
            mose_or_iv.set_batch(batch.layouts, batch.offsets, batch.inputs_embeds.shape[1])
    with torch.no_grad():
        return model.backbone(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                              position_ids=batch.position_ids).logits


# -- Eq. (2) ------------------------------------------------------------------

def test_eq2_soft_mixture_of_loras_matches_hand_computation():
    torch.manual_seed(0)
    expert = SoftLoRAMixture(d=6, r=3, n=3)
    with torch.no_grad():
        expert.B.normal_()
    x = torch.randn(2, 4, 6)
    got = expert(x)
    A, B, W = expert.A.detach().numpy(), expert.B.detach().numpy(), expert.W.detach().numpy()
    for b in range(2):
        for t in range(4):
            v = x[b, t].numpy().astype(np.float64)
            scores = W @ v
            alpha = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
            want = sum(alpha[i] * B[i] @ (A @ v) for i in range(3))
            np.testing.assert_allclose(got[b, t].detach().numpy(), want, rtol=1e-5, atol=1e-6)
    assert A.shape == (3, 6) and B.shape == (3, 6, 3)  # A: r x d, B_i: d x r (asymmetric: one A)


def test_expert_starts_at_zero_and_gate_is_a_distribution():
    expert = SoftLoRAMixture(d=8, r=2, n=4)
    x = torch.randn(3, 5, 8)
    assert torch.all(expert(x) == 0)
    torch.testing.assert_close(expert.gate(x).sum(-1), torch.ones(3, 5))


# -- Eq. (3) ------------------------------------------------------------------

def _router_inputs():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 10, 16, generator=gen) * 3
    offsets = torch.tensor([0, 3, 1, 5])
    valid = torch.arange(10)[None] >= offsets[:, None]
    visual = valid & (torch.arange(10)[None] % 2 == 0)
    nonvisual = valid & ~visual
    return x, visual, nonvisual, valid


def test_eq3_lambda_within_bounds_and_matches_formula():
    router = Router(16, 8)
    torch.manual_seed(3)
    with torch.no_grad():
        for p in router.parameters():
            p.normal_(0, 2.0)  # large weights: tanh saturates towards +-1
    x, visual, nonvisual, _ = _router_inputs()
    for eps in (0.1, 0.3, 0.5):
        lam = routing_score(router, x, visual, nonvisual, eps)
        assert lam.shape == (4,)
        assert torch.all(lam >= 0.5 - eps - 1e-7) and torch.all(lam <= 0.5 + eps + 1e-7)
        assert (lam - 0.5).abs().max() > 0.5 * eps  # not trivially 1/2
        for b in range(4):
            mean_v, mean_n = x[b][visual[b]].mean(0), x[b][nonvisual[b]].mean(0)
            want = 0.5 + eps * torch.tanh(router(mean_v[None], mean_n[None]))[0]
            torch.testing.assert_close(lam[b], want, rtol=1e-5, atol=1e-6)
    assert torch.all(routing_score(router, x, visual, nonvisual, 0.0) == 0.5)


def test_eq3_means_exclude_padding():
    x, visual, nonvisual, valid = _router_inputs()
    poisoned = x.clone()
    poisoned[~valid] = 1e6
    torch.testing.assert_close(masked_mean(poisoned, visual), masked_mean(x, visual))
    torch.testing.assert_close(masked_mean(poisoned, nonvisual), masked_mean(x, nonvisual))
    assert torch.all(masked_mean(x, torch.zeros_like(visual)) == 0)


def test_eq3_eps_outside_range_is_rejected():
    with pytest.raises(ValueError):
        MoSEConfig(d_model=8, n_layers=1, eps=0.6)
    with pytest.raises(ValueError):
        MoSEIntervention(eps=-0.1)


# -- Eq. (4) ------------------------------------------------------------------

def _only(layer: MoSELayer, keep: str, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in EXPERTS:
            expert = getattr(layer, name)
            expert.B.copy_(torch.randn(expert.B.shape, generator=gen) if name == keep else torch.zeros_like(expert.B))


def test_eq4_layer_routes_experts_by_mask():
    layer = MoSELayer(MoSEConfig(d_model=16, n_layers=1, r=4))
    x, visual, nonvisual, valid = _router_inputs()
    lam = torch.tensor([0.4, 0.45, 0.55, 0.6])
    _only(layer, "visual")
    out = layer(x, visual, nonvisual, lam, valid)
    torch.testing.assert_close(out, lam[:, None, None] * visual[..., None] * layer.visual(x))
    assert torch.all(out[~visual] == 0) and torch.all(out[visual].abs().sum(-1) > 0)
    _only(layer, "nonvisual")
    out = layer(x, visual, nonvisual, lam, valid)
    torch.testing.assert_close(out, (1 - lam)[:, None, None] * nonvisual[..., None] * layer.nonvisual(x))
    assert torch.all(out[~nonvisual] == 0) and torch.all(out[nonvisual].abs().sum(-1) > 0)
    _only(layer, "omni")
    out = layer(x, visual, nonvisual, lam, valid)
    torch.testing.assert_close(out, valid[..., None] * layer.omni(x))  # every (non-padding) token, no lambda


@pytest.mark.parametrize("experts,off", [(EXPERTS, ()), (EXPERTS, ("visual",)), (("visual", "omni"), ()),
                                         (("nonvisual",), ()), (EXPERTS, EXPERTS)])
def test_eq4_all_experts_at_once_equal_each_expert_lora_by_lora(experts, off):
    """The fused layer (every A, W and B of every expert in one product each) against Eqs. (2) and (4)
    written expert by expert, LoRA by LoRA and token by token in float64."""
    config = MoSEConfig(d_model=16, n_layers=1, r=4, n_experts=3, experts=experts)
    layer = randomize(MoSELayer(config))
    x, visual, nonvisual, valid = _router_inputs()
    lam = torch.tensor([0.4, 0.45, 0.55, 0.6])
    got = layer(x, visual, nonvisual, lam, valid, {name: name not in off for name in EXPERTS}).detach().numpy()
    want = np.zeros(got.shape)
    for name in experts:
        if name in off:
            continue
        e = getattr(layer, name)
        A, B, W = (p.detach().double().numpy() for p in (e.A, e.B, e.W))
        for b in range(4):
            weight = {"omni": valid[b], "visual": lam[b] * visual[b], "nonvisual": (1 - lam[b]) * nonvisual[b]}[name]
            for t in range(10):
                v = x[b, t].double().numpy()
                gate = np.exp(W @ v - (W @ v).max())
                gate /= gate.sum()
                want[b, t] += float(weight[t]) * sum(gate[i] * (B[i] @ (A @ v)) for i in range(3))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert (np.abs(want).sum() > 0) == (set(experts) - set(off) != set())


def _layer0_delta(model, mose, batch):
    """The experts' share of layer 0's FFN output, and that forward's token types."""
    seen = {}

    def hook(module, args, output):
        seen["delta"] = output - module.base(args[0])
        seen["types"] = mose.current

    handle = model.backbone.base_model.layers[0].mlp.register_forward_hook(hook)
    forward_logits(model, batch, mose)
    handle.remove()
    return seen["delta"], seen["types"]


@pytest.mark.parametrize("nonvisual", ["audio_text", "audio"])
def test_eq4_in_the_model_follows_the_token_layout(tiny, tiny_bench, nonvisual):
    batch = tiny.prepare(list(tiny_bench)[:3])
    assert len(set(batch.offsets.tolist())) > 1  # left padding differs
    masks = batch_masks(batch.layouts, batch.offsets, batch.inputs_embeds.shape[1])
    valid = batch.attention_mask.bool()
    mose = randomize(MoSE.for_model(tiny, nonvisual=nonvisual))
    attachment = attach_mose(tiny, mose)
    try:
        _only(mose.layers[0], "visual")
        delta, types = _layer0_delta(tiny, mose, batch)
        touched = delta.abs().sum(-1) > 0
        assert torch.equal(touched, masks["visual"]) and torch.equal(types.visual, masks["visual"])
        _only(mose.layers[0], "nonvisual")
        delta, types = _layer0_delta(tiny, mose, batch)
        touched = delta.abs().sum(-1) > 0
        expected = masks["audio"] | masks["text"] if nonvisual == "audio_text" else masks["audio"]
        assert torch.equal(touched, expected) and torch.equal(types.nonvisual, expected)
        _only(mose.layers[0], "omni")
        delta, _ = _layer0_delta(tiny, mose, batch)
        assert torch.equal(delta.abs().sum(-1) > 0, valid)  # all tokens but padding
        # lambda was computed from the prompt at this forward and lies in [1/2 - eps, 1/2 + eps]
        lam = mose.lam(0)
        assert lam.shape == (3,) and torch.all((lam - 0.5).abs() <= mose.eps + 1e-7)
    finally:
        attachment.detach()


# -- identity at init, exact detach --------------------------------------------

def test_zero_init_mose_leaves_outputs_unchanged(tiny, tiny_bench):
    batch = tiny.prepare(list(tiny_bench))
    before = forward_logits(tiny, batch)
    iv = MoSEIntervention(r=4, n_experts=3)
    with applied(tiny, [iv]):
        assert isinstance(tiny.backbone.base_model.layers[0].mlp, MoSEMLP)
        during = forward_logits(tiny, batch, iv)
    assert torch.equal(before, during)
    base = modbias.trace(tiny, tiny_bench, batch_size=4, max_new_tokens=6)
    run = modbias.trace(tiny, tiny_bench, batch_size=4, max_new_tokens=6, interventions=[MoSEIntervention()])
    assert list(base.text.values) == list(run.text.values)
    np.testing.assert_array_equal(base.S_v.values, run.S_v.values)


def test_detach_restores_modules_state_dict_and_outputs(tiny, tiny_bench):
    batch = tiny.prepare(list(tiny_bench))
    before_logits = forward_logits(tiny, batch)
    before_state = {k: v.clone() for k, v in tiny.state_dict().items()}
    mlps = [layer.mlp for layer in tiny.backbone.base_model.layers]
    iv = MoSEIntervention(module=randomize(MoSE.for_model(tiny)))
    with applied(tiny, [iv]):
        changed = forward_logits(tiny, batch, iv)
        assert not torch.allclose(changed, before_logits)  # the random MoSE does act
    assert all(layer.mlp is m for layer, m in zip(tiny.backbone.base_model.layers, mlps))
    assert not tiny.backbone.base_model._forward_pre_hooks
    after_state = tiny.state_dict()
    assert list(after_state) == list(before_state)
    assert all(torch.equal(after_state[k], v) for k, v in before_state.items())
    assert torch.equal(forward_logits(tiny, batch), before_logits)


def test_unbatched_forward_with_mose_attached_is_an_error(tiny, tiny_bench):
    batch = tiny.prepare(list(tiny_bench)[:2])
    with applied(tiny, [MoSEIntervention()]):
        with pytest.raises(RuntimeError, match="set_batch"):
            forward_logits(tiny, batch)


# -- toggles ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_tiny(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("mose")
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    flags = [p.requires_grad for p in tiny.parameters()]
    fixed = list(modbias.load_benchmark("synth", subset="train", limit=8, **TINY_DATA))
    mose0 = MoSE.for_model(tiny, r=4)
    with torch.no_grad():
        attachment = attach_mose(tiny, mose0)
        loss0 = mose_loss(tiny, mose0, fixed).item()
        attachment.detach()
    mose = train_mose(tiny, r=4, n_experts=2, eps=0.1, epochs=6, lr=1e-2, out=out, batch_size=8, warmup_steps=1,
                      data=SynthConfig(**TINY_DATA), n_train=8, threads=None, progress=False)
    after = tiny.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items()), "train_mose changed the backbone"
    assert [p.requires_grad for p in tiny.parameters()] == flags
    return mose, out, loss0, fixed


def test_train_mose_reduces_loss_and_checkpoint_reproduces_outputs(tiny, tiny_bench, trained_tiny):
    mose, out, loss0, fixed = trained_tiny
    assert len(mose.history) == 6 and mose.history[0] == pytest.approx(loss0, rel=1e-5)
    attachment = attach_mose(tiny, mose)
    with torch.no_grad():
        loss1 = mose_loss(tiny, mose, fixed).item()
    attachment.detach()
    assert loss1 < loss0
    meta = json.loads((out / "mose.json").read_text())
    assert meta["config"]["r"] == 4 and meta["training"]["steps"] == 6
    loaded = load_mose(out)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), mose.state_dict().values()))
    batch = tiny.prepare(list(tiny_bench))
    outputs = []
    for iv in (MoSEIntervention(module=mose), MoSEIntervention(checkpoint=str(out))):
        with applied(tiny, [iv]):
            outputs.append(forward_logits(tiny, batch, iv))
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.allclose(outputs[0], forward_logits(tiny, batch))
    with pytest.raises(ValueError, match="r=8"):
        MoSEIntervention(checkpoint=str(out), r=8).build(tiny)


@pytest.mark.parametrize("toggle", [dict(off="visual"), dict(off="nonvisual"), dict(off="omni"),
                                    dict(lam=0.9), dict(lam=0.1), dict(eps=0.5), dict(eps=0.0)])
def test_toggles_change_outputs_after_training(tiny, tiny_bench, trained_tiny, toggle):
    mose = trained_tiny[0]
    batch = tiny.prepare(list(tiny_bench))
    results = []
    for params in ({}, toggle, {}):
        iv = MoSEIntervention(module=mose, **params)
        with applied(tiny, [iv]):
            results.append(forward_logits(tiny, batch, iv))
    default, toggled, again = results
    assert not torch.allclose(default, toggled, atol=1e-7, rtol=0)
    assert torch.equal(default, again), "toggles must be undone at detach"
    assert mose.enabled == {n: True for n in EXPERTS} and mose.fixed_lambda is None and mose.eps == 0.1


def test_all_experts_off_is_the_base_model(tiny, tiny_bench, trained_tiny):
    batch = tiny.prepare(list(tiny_bench))
    iv = MoSEIntervention(module=trained_tiny[0], off="visual,nonvisual,omni")
    with applied(tiny, [iv]):
        off = forward_logits(tiny, batch, iv)
    torch.testing.assert_close(off, forward_logits(tiny, batch), rtol=0, atol=0)


# -- incremental decoding -----------------------------------------------------------

def test_kv_cache_decoding_matches_full_forward(tiny, tiny_bench):
    samples = list(tiny_bench)[:3]
    batch = tiny.prepare(samples)
    n_prompt, steps = batch.inputs_embeds.shape[1], 5
    mose = randomize(MoSE.for_model(tiny), scale=0.5)
    attachment = attach_mose(tiny, mose)
    try:
        mose.set_batch(batch.layouts, batch.offsets, n_prompt)
        seen = []
        handle = tiny.backbone.base_model.layers[1].mlp.register_forward_hook(
            lambda m, a, o: seen.append(mose.current))
        with torch.no_grad():
            out = tiny.backbone(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                                position_ids=batch.position_ids, use_cache=True)
            cache, mask, logits, ids = output_cache(out), batch.attention_mask, [out.logits[:, -1]], []
            lam = mose.lam(0).clone()
            for _ in range(steps):
                nxt = logits[-1].argmax(-1)
                ids.append(nxt)
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
                out = tiny.backbone(input_ids=nxt[:, None], attention_mask=mask,
                                    position_ids=position_ids_from_mask(mask)[:, -1:], **with_cache(cache),
                                    use_cache=True)
                logits.append(out.logits[:, -1])
        handle.remove()
        assert torch.equal(mose.lam(0), lam), "lambda is fixed at the prefill"
        for j, types in enumerate(seen[1:]):  # decode steps: one generated (non-visual) token each
            assert types.start == n_prompt + j
            assert not types.visual.any() and types.nonvisual.all() and types.valid.all()
        generated = torch.stack(ids, dim=1)
        # one full forward over prompt + generated tokens (no cache), typed from the same prompt layout
        full = tiny.extend(batch, generated)
        mose.set_batch(batch.layouts, batch.offsets, n_prompt)
        with torch.no_grad():
            ref = tiny.backbone(inputs_embeds=full.inputs_embeds, attention_mask=full.attention_mask,
                                position_ids=full.position_ids).logits
        torch.testing.assert_close(torch.stack(logits, 1), ref[:, n_prompt - 1:], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(mose.lam(0), lam)
        # HF generate (inputs_embeds prefill, then input_ids with the cache) decodes the same tokens
        mose.set_batch(batch.layouts, batch.offsets, n_prompt)
        got = tiny.generate(batch, steps)
        keep = torch.cumprod((generated != tiny.eos_token_id).long(), 1)
        assert torch.equal(got * keep, generated * keep)
    finally:
        attachment.detach()


def test_trace_rows_under_mose_equal_eager_full_forward(organism):
    """trace re-runs the cropped cache (rows_at_steps): its rows must match a full forward with MoSE."""
    bench = modbias.load_benchmark("synth", subset="video_aligned", limit=2)
    mose = randomize(MoSE.for_model(organism), scale=0.02)
    iv = MoSEIntervention(module=mose)
    ds = modbias.trace(organism, bench, batch_size=2, max_new_tokens=16, save_rows=True, interventions=[iv])
    assert ds.found.values.all()
    with applied(organism, [iv]):
        for i, sample in enumerate(bench):
            batch = organism.prepare([sample])
            iv.begin_batch(organism, batch, [sample])
            generated = organism.generate(batch, 16)
            full = organism.extend(batch, generated)
            step = int(ds.emotion_step.values[i, 0])
            n = batch.layouts[0].prompt_len + step
            iv.begin_batch(organism, batch, [sample])
            expected = eager_rows(organism.backbone, torch.tensor([[n - 1]]), inputs_embeds=full.inputs_embeds,
                                  attention_mask=full.attention_mask, position_ids=full.position_ids)[0, :, :, 0]
            np.testing.assert_allclose(ds.rows.values[i, 0][..., :n], expected[..., :n].numpy(), atol=1e-5)


# -- registry, params, parameter counts ----------------------------------------------

def test_registered_and_params_round_trip(tmp_path):
    assert REGISTRY["mose"] is MoSEIntervention
    iv = MoSEIntervention(checkpoint=str(tmp_path), eps=0.2, lam=None, off="visual,omni", nonvisual="audio")
    params = iv.describe()
    json.dumps(params)
    (again,) = from_config([params])
    assert isinstance(again, MoSEIntervention) and again.params() == iv.params()
    with pytest.raises(ValueError):
        MoSEIntervention(off="face")


@pytest.mark.parametrize("r,n,h", [(8, 1, 8), (8, 2, 8), (4, 3, 16)])
def test_parameter_count_matches_module(tiny, r, n, h):
    mose = MoSE.for_model(tiny, r=r, n_experts=n, router_hidden=h)
    cfg = tiny.backbone.config
    assert mose.trainable_parameters() == count_parameters(cfg.hidden_size, cfg.num_hidden_layers, r, n, h)
    table = format_parameter_table(tiny, r=r, router_hidden=h)
    assert "N=2" in table and "symm" in table and "w.o. router" in table


# -- Table 6 designs: structures built, the plain-LoRA baseline, training from the base state ------

@pytest.mark.parametrize("experts,router", [(("visual", "nonvisual", "omni"), False), (("nonvisual", "omni"), True),
                                            (("visual", "omni"), True), (("visual", "nonvisual"), True),
                                            (("omni",), False)])
def test_variant_structures_count_their_parameters(tiny, experts, router):
    mose = MoSE.for_model(tiny, r=4, n_experts=2, experts=experts, router=router)
    cfg = tiny.backbone.config
    assert mose.trainable_parameters() == count_parameters(cfg.hidden_size, cfg.num_hidden_layers, 4, 2,
                                                           router=router, experts=len(experts))
    assert all(hasattr(layer, e) == (e in experts) for layer in mose.layers for e in EXPERTS)
    assert all((layer.router is None) == (not router) for layer in mose.layers)


def test_variant_without_router_uses_lambda_one_half_and_round_trips(tiny, tiny_bench, tmp_path):
    free = randomize(MoSE.for_model(tiny, r=4, router=False, experts=("visual", "nonvisual")))
    fixed = randomize(MoSE.for_model(tiny, r=4, router=True, experts=("visual", "nonvisual")))
    fixed.load_state_dict({k: v for k, v in free.state_dict().items()}, strict=False)
    batch = tiny.prepare(list(tiny_bench))
    outputs = []
    for mose, lam in ((free, None), (fixed, 0.5)):
        with applied(tiny, [MoSEIntervention(module=mose, lam=lam)]):
            outputs.append(forward_logits(tiny, batch, mose))
    torch.testing.assert_close(outputs[0], outputs[1])
    free.save(tmp_path)
    loaded = load_mose(tmp_path)
    assert loaded.config.experts == ("visual", "nonvisual") and loaded.config.router is False
    with applied(tiny, [MoSEIntervention(checkpoint=str(tmp_path))]) as (iv,):
        torch.testing.assert_close(forward_logits(tiny, batch, iv), outputs[0])


def test_lora_baseline_rank_matches_the_mose_parameter_count():
    from modbias.training.mose import lora_baseline_rank

    for d, layers, r, n in ((128, 4, 8, 2), (4096, 32, 64, 2), (64, 2, 4, 3)):
        target = count_parameters(d, layers, r, n)
        rank = lora_baseline_rank(d, layers, target)
        lora = count_parameters(d, layers, rank, 1, router=False, experts=1)
        assert abs(lora - target) <= count_parameters(d, layers, 1, 1, router=False, experts=1) / 2 + layers * d


def test_shipped_base_states_load_and_differ_from_the_tuned_organisms():
    for name in ("organism", "organism-attn"):
        tuned, base = modbias.load_model(name), modbias.load_model(f"{name}-base")
        assert base.config.training["subsets"] == ["consistent"]
        assert any(not torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), base.state_dict().values()))
