"""The attention probe: the decoded query's attention rows, next to fused SDPA.

Everything modbias measures or edits (Eq. 1, Eqs. 5-7, AR Eqs. 12-14, PAI)
concerns one query row per head: the token being decoded.  The probe is an
attention function registered in transformers' ``AttentionInterface`` (with
the matching ``AttentionMaskInterface`` entry, without which the causal
mask would be dropped).  It returns the normal SDPA output and, while a
:class:`ProbeRequest` is active, also computes

    rows = softmax(q[selected] · Kᵀ · scale + mask)      # [B, H, Q, T_k]

for the selected query positions only, so memory grows with L·H·T, never T².
*Row editors* (interventions) may change the rows; the rows the model then
uses pass through a ``row_tap`` identity module on each attention module, so
nnsight (or a forward hook) can save or replace them.  When the rows were
changed, ``rows @ V`` replaces the SDPA output of those queries.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass, field
from typing import Iterator, Protocol

import nnsight
import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

PROBE_ATTENTION = "modbias_probe"


class RowTap(nn.Module):
    """Identity on the probe's rows ``[B, H, Q, T_k]``: the point nnsight reads or replaces."""

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """Pass the rows through unchanged (nnsight or a forward hook reads or replaces them here).

        Args:
            rows: attention rows ``[B, H, Q, T_k]``.

        Returns:
            ``rows``, the same tensor.
        """
        return rows


@dataclass
class RowContext:
    """What a row editor sees besides the rows ``[B, H, Q, T_k]``.

    ``scores`` are the pre-softmax logits (scaled, masked with -inf), ``masks``
    the modality masks over keys ``[B, T_k]``, ``query_index`` the selected
    queries ``[B, Q]`` within this forward's query block.
    """

    layer: int
    masks: dict[str, torch.Tensor]
    query_index: torch.Tensor
    scores: torch.Tensor


class RowEditor(Protocol):
    """An attention-row intervention: returns edited rows (or the same tensor to leave them)."""

    def edit_rows(self, rows: torch.Tensor, context: RowContext) -> torch.Tensor:
        """Edit the selected queries' attention rows of one layer.

        Args:
            rows: post-softmax rows ``[B, H, Q, T_k]`` (float32).
            context: the layer, modality masks, query index and pre-softmax scores.

        Returns:
            Rows of the same shape (the input tensor itself to leave them unedited).
        """
        ...


@dataclass
class ProbeRequest:
    """What the probe does during one forward (or one whole ``generate``).

    ``query_index`` ``[B, Q]`` selects queries inside the forward's query block;
    ``None`` selects the last query (the decoded token at every generation step).
    ``masks`` are modality masks over key positions ``[B, T]`` (longer sequences
    are padded with False: generated keys belong to no input modality).
    """

    query_index: torch.Tensor | None = None
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    editors: list[RowEditor] = field(default_factory=list)
    _sized_masks: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def query_for(self, query: torch.Tensor) -> torch.Tensor:
        """The selected queries for one forward.

        Args:
            query: the forward's queries ``[B, H, Q, D]``.

        Returns:
            long ``[B, Q']``: :attr:`query_index`, or the last query ``[B, 1]`` when it is ``None``.
        """
        if self.query_index is not None:
            return self.query_index.to(query.device)
        return torch.full((query.shape[0], 1), query.shape[2] - 1, device=query.device, dtype=torch.long)

    def masks_for(self, n_keys: int, device) -> dict[str, torch.Tensor]:
        """The modality masks cut or padded (with False) to ``n_keys`` keys, built once per key length and
        shared by every layer of that forward.

        Args:
            n_keys: the number of keys ``T_k`` of this forward.
            device: where the masks go.

        Returns:
            ``{name: bool [B, n_keys]}``.
        """
        key = (n_keys, str(device))
        if key not in self._sized_masks:
            self._sized_masks.clear()  # one forward at a time: only the latest length is used again
            out = {}
            for name, mask in self.masks.items():
                mask = mask[:, :n_keys].to(device)
                if mask.shape[1] < n_keys:
                    mask = torch.cat([mask, mask.new_zeros(mask.shape[0], n_keys - mask.shape[1])], dim=1)
                out[name] = mask
            self._sized_masks[key] = out
        return self._sized_masks[key]


_ACTIVE: list[ProbeRequest] = []


@contextlib.contextmanager
def probing(request: ProbeRequest | None) -> Iterator[ProbeRequest | None]:
    """Activate ``request`` for every probed forward inside the block (``None``: probe off).

    Args:
        request: what the probe computes and which editors it applies; requests nest (innermost wins).

    Yields:
        ``request``.
    """
    _ACTIVE.append(request)
    try:
        yield request
    finally:
        _ACTIVE.remove(request)


def key_mask_rows(attention_mask: torch.Tensor | None, query_index: torch.Tensor, n_queries: int,
                  n_keys: int) -> torch.Tensor:
    """Additive float mask ``[B, 1|H, Q, T_k]`` for the selected queries (0 allowed, -inf masked).

    Args:
        attention_mask: the mask transformers passes to attention (bool or additive
            ``[B, 1|H, Q_all, T_k]``), or ``None`` for SDPA's implicit causal mask.
        query_index: long ``[B, Q]`` selected queries within the forward's query block.
        n_queries: the forward's number of queries ``Q_all``.
        n_keys: the number of keys ``T_k``.

    Returns:
        float32 ``[B, 1|H, Q, T_k]``.
    """
    if attention_mask is None:  # SDPA's implicit causal mask; queries are the last n_queries keys
        allowed = torch.arange(n_keys, device=query_index.device) <= (n_keys - n_queries + query_index)[..., None]
        return torch.zeros(allowed.shape, device=query_index.device).masked_fill(~allowed, float("-inf"))[:, None]
    index = query_index[:, None, :, None].expand(-1, attention_mask.shape[1], -1, attention_mask.shape[-1])
    rows = attention_mask.gather(2, index)
    if rows.dtype == torch.bool:
        return torch.zeros(rows.shape, device=rows.device).masked_fill(~rows, float("-inf"))
    return rows.float()


def grouped_matmul(per_head: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
    """``per_head @ shared`` for grouped-query heads, without copying K or V once per query head.

    Args:
        per_head: ``[B, H, Q, n]``, one slice per query head.
        shared: ``[B, H_kv, n, m]``, the key/value heads; query head h uses kv head h // (H / H_kv), as
            ``repeat_kv`` orders them.

    Returns:
        ``[B, H, Q, m]``.
    """
    B, H, Q, n = per_head.shape
    kv_heads = shared.shape[1]
    out = per_head.reshape(B, kv_heads, (H // kv_heads) * Q, n) @ shared  # a head group's queries share K/V
    return out.reshape(B, H, Q, out.shape[-1])


def attention_scores(query: torch.Tensor, key: torch.Tensor, attention_mask: torch.Tensor | None,
                     query_index: torch.Tensor, scaling: float | None) -> torch.Tensor:
    """``q·Kᵀ·scale + mask`` for the selected queries, in float32: ``[B, H, Q, T_k]`` (rows = its softmax).

    Args:
        query: ``[B, H, Q_all, D]``.
        key: ``[B, H_kv, T_k, D]`` (grouped-query heads: :func:`grouped_matmul`).
        attention_mask: as for :func:`key_mask_rows`.
        query_index: long ``[B, Q]``.
        scaling: the softmax scale (``None``: ``D**-0.5``).

    Returns:
        float32 scores ``[B, H, Q, T_k]`` with masked keys at ``-inf`` (or the mask's value).
    """
    index = query_index[:, None, :, None].expand(-1, query.shape[1], -1, query.shape[-1])
    q = query.gather(2, index).float()
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = grouped_matmul(q, key.float().transpose(-1, -2)) * scale
    return scores + key_mask_rows(attention_mask, query_index, query.shape[2], key.shape[2])


def probe_attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                            **kwargs):
    """SDPA plus the probe (see module doc); registered as ``modbias_probe``.

    Args:
        module: the attention module (its ``layer_idx`` and ``row_tap`` are used).
        query: ``[B, H, Q, D]``.
        key: ``[B, H_kv, T_k, D]``.
        value: ``[B, H_kv, T_k, D]``.
        attention_mask: transformers' attention mask for SDPA (or ``None``).
        dropout: attention dropout probability.
        scaling: the softmax scale.
        is_causal: passed to SDPA.
        **kwargs: further arguments of transformers' attention interface.

    Returns:
        ``(output [B, Q, H, D], None)``; the selected queries' output is ``rows @ V`` when
        an editor or the tap changed their rows.
    """
    output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                       scaling=scaling, is_causal=is_causal, **kwargs)
    if not _ACTIVE or _ACTIVE[-1] is None or not hasattr(module, "row_tap"):
        return output, None
    request = _ACTIVE[-1]
    query_index = request.query_for(query)
    scores = attention_scores(query, key, attention_mask, query_index, scaling)
    rows = original = scores.softmax(-1)
    if request.editors:
        context = RowContext(module.layer_idx, request.masks_for(key.shape[2], key.device), query_index, scores)
        for editor in request.editors:
            rows = editor.edit_rows(rows, context)
    rows = module.row_tap(rows)  # what the model uses; nnsight may read or replace it here
    if rows is not original:  # an editor or an nnsight user replaced the rows
        edited = grouped_matmul(rows, value.float()).to(output.dtype).transpose(1, 2)  # [B, Q, H, D]
        if output.requires_grad:  # SDPA's backward needs its output; otherwise it is ours to overwrite
            output = output.clone()
        output.scatter_(1, query_index[:, :, None, None].expand_as(edited), edited)
    return output, None


AttentionInterface.register(PROBE_ATTENTION, probe_attention_forward)
AttentionMaskInterface.register(PROBE_ATTENTION, sdpa_mask)


def attention_modules(backbone: nn.Module) -> list[tuple[str, nn.Module]]:
    """The decoder's self-attention modules in layer order (any HF model using AttentionInterface).

    Args:
        backbone: an HF decoder (modules with ``q_proj`` and ``layer_idx`` count as attention).

    Returns:
        ``[(dotted name, module)]`` sorted by ``layer_idx``.
    """
    found = [(name, m) for name, m in backbone.named_modules()
             if hasattr(m, "layer_idx") and hasattr(m, "q_proj") and not name.endswith("row_tap")]
    if not found:
        raise ValueError(f"{type(backbone).__name__}: no attention modules with q_proj/layer_idx found")
    return sorted(found, key=lambda item: item[1].layer_idx)


def instrument(backbone: nn.Module) -> list[str]:
    """Give each attention module a ``row_tap`` and switch the model to the probe attention.

    Idempotent; the taps stay until removed (:func:`instrumented` removes them).

    Args:
        backbone: an HF decoder.

    Returns:
        The dotted paths of the taps, in layer order.
    """
    paths = []
    for name, module in attention_modules(backbone):
        if not hasattr(module, "row_tap"):
            module.add_module("row_tap", RowTap())
        paths.append(f"{name}.row_tap")
    if backbone.config._attn_implementation != PROBE_ATTENTION:
        backbone.set_attn_implementation(PROBE_ATTENTION)
    return paths


@contextlib.contextmanager
def instrumented(backbone: nn.Module) -> Iterator[list[str]]:
    """:func:`instrument` for the block only: afterwards the taps it added are removed and the
    attention implementation is restored, so the model's modules are as they were.

    Args:
        backbone: an HF decoder.

    Yields:
        The dotted paths of the taps, in layer order.
    """
    previous = backbone.config._attn_implementation
    had_tap = {name for name, module in attention_modules(backbone) if hasattr(module, "row_tap")}
    paths = instrument(backbone)
    try:
        yield paths
    finally:
        for name, module in attention_modules(backbone):
            if name not in had_tap:
                del module.row_tap
        if previous != PROBE_ATTENTION:
            backbone.set_attn_implementation(previous)


def tapped_rows(backbone: nn.Module, query_index: torch.Tensor, **forward_kwargs) -> torch.Tensor:
    """One forward of an instrumented ``backbone`` returning the rows of ``query_index`` ``[B, Q]``
    from every layer, ``[B, L, H, Q, T_k]``, read with plain forward hooks on the taps.

    Args:
        backbone: an instrumented HF decoder.
        query_index: long ``[B, Q]`` (``None``: the last query).
        **forward_kwargs: the backbone's forward arguments (``inputs_embeds``, ``attention_mask``, ...).

    Returns:
        float32 ``[B, L, H, Q, T_k]``.
    """
    saved = []
    hooks = [module.row_tap.register_forward_hook(lambda tap, args, rows: saved.append(rows))
             for _, module in attention_modules(backbone)]
    try:
        with probing(ProbeRequest(query_index)):
            backbone(**forward_kwargs)
    finally:
        for hook in hooks:
            hook.remove()
    return torch.stack(saved, dim=1)


def _envoy_at(envoy, path: str):
    for part in path.split("."):
        envoy = envoy[int(part)] if part.isdigit() else getattr(envoy, part)
    return envoy


class AttentionProbe:
    """nnsight-driven capture of the probe's rows on an instrumented backbone.

    >>> probe = AttentionProbe(model.backbone)                          # doctest: +SKIP
    >>> rows = probe.rows(query_index=q, inputs_embeds=x, attention_mask=m)  # [B, L, H, Q, T]
    """

    def __init__(self, backbone: nn.Module):
        self.backbone = backbone
        self.tap_paths = instrument(backbone)
        self.traced = nnsight.NNsight(backbone)

    @torch.no_grad()
    def rows(self, query_index: torch.Tensor | None, masks: dict[str, torch.Tensor] | None = None,
             editors: list[RowEditor] | None = None, **forward_kwargs) -> torch.Tensor:
        """Run one forward and return the rows of every layer: ``[B, L, H, Q, T_k]``.

        Args:
            query_index: long ``[B, Q]`` selected queries (``None``: the last).
            masks: modality masks over keys ``{name: bool [B, T]}`` handed to editors.
            editors: row editors applied in order (interventions).
            **forward_kwargs: the backbone's forward arguments.

        Returns:
            The rows as the model used them (after editors), float32 ``[B, L, H, Q, T_k]``.
        """
        request = ProbeRequest(query_index, masks or {}, list(editors or []))
        saved = []  # filled inside the trace; taps are read in execution (layer) order
        with probing(request):
            with self.traced.trace(**forward_kwargs):
                for path in self.tap_paths:
                    saved.append(_envoy_at(self.traced, path).output.save())
        return torch.stack([torch.as_tensor(s) for s in saved], dim=1)


_PROBES: "weakref.WeakKeyDictionary[nn.Module, AttentionProbe]" = weakref.WeakKeyDictionary()


def probe_for(backbone: nn.Module) -> AttentionProbe:
    """The :class:`AttentionProbe` of ``backbone``, made once per backbone and process (so a batch function
    that travels to another process makes its own there).

    Args:
        backbone: the model's language model.
    Returns:
        Its probe.
    """
    if backbone not in _PROBES:
        _PROBES[backbone] = AttentionProbe(backbone)
    return _PROBES[backbone]


def eager_rows(backbone: nn.Module, query_index: torch.Tensor, **forward_kwargs) -> torch.Tensor:
    """Reference rows from ``output_attentions=True`` under eager attention: ``[B, L, H, Q, T]``.

    Args:
        backbone: an HF decoder (its attention implementation is restored afterwards).
        query_index: long ``[B, Q]``.
        **forward_kwargs: the backbone's forward arguments.

    Returns:
        ``[B, L, H, Q, T]`` in the model's dtype.
    """
    previous = backbone.config._attn_implementation
    backbone.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            attentions = backbone(output_attentions=True, **forward_kwargs).attentions
    finally:
        backbone.set_attn_implementation(previous)
    index = query_index[:, None, :, None]
    return torch.stack([a.gather(2, index.expand(-1, a.shape[1], -1, a.shape[-1])) for a in attentions], dim=1)


