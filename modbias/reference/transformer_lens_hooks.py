"""AR and PAI as TransformerLens hooks: the reference implementation beside the attention probe.

modbias edits attention through the probe (:mod:`modbias.core.probe`): an attention
function that recomputes the decoded query's rows and hands them to row
editors.  This module expresses the same two edits as TransformerLens
forward hooks, for TL users and as an independent check of the probe path
(``tests/test_transformer_lens_hooks.py`` shows both give the same logits):

- :func:`ar_pattern_hook` — AR (CA-MER Eqs. 12-14, :func:`~modbias.interventions.ar.reallocate`)
  on ``blocks.{l}.attn.hook_pattern`` (post-softmax, ``[batch, head, query, key]``);
- :func:`ar_scores_hook` — the same AR edit on ``blocks.{l}.attn.hook_attn_scores``
  (pre-softmax), as the additive bias :func:`~modbias.interventions.ar.log_factors`;
- :func:`pai_scores_hook` — PAI's ``a → a + α|a|`` on visual keys, on ``hook_attn_scores``;
- :func:`fwd_hooks_for` — a modbias ``AttentionReallocation`` / ``PAI`` object → a TL
  ``fwd_hooks`` list honoring its layer spec;
- :func:`bridge_from_hf` — a ``TransformerBridge`` over an HF model object already in memory.

Like the probe, every hook edits only the selected query rows (``query_index``
``[B, Q]`` within the forward's query block; ``None``: the last query, i.e. the
token being decoded) and leaves every other row bit-identical.  Modality masks
are over key positions ``[B, T]`` (or ``[T]``); keys beyond a mask's length
(generated tokens under a KV cache) belong to no modality.

Masked scores.  ``TransformerBridge`` (TL 4.3) rebuilds attention for RoPE
models (``PositionEmbeddingsAttentionBridge.forward``) and fires
``hook_attn_scores`` after the causal/padding mask is applied.  By default the
masked entries hold ``torch.finfo(dtype).min`` (≈ -3.4e38 in float32; the HF
additive mask adds the same value), and a fully masked row (a left-pad query)
softmaxes to a uniform pattern; after ``enable_compatibility_mode()`` they hold
``-inf`` and fully masked rows are zeroed.  The score hooks treat any entry
``<= finfo(dtype).min / 2`` (so both sentinels) as masked and never change it:
PAI's ``a + α|a|`` on ``-inf`` would be NaN and on ``finfo.min`` with α ≥ 1 would
unmask the key (or overflow to +inf), and AR's weights are computed with
masked keys at exactly zero and fully masked rows at zero, as in the probe.
No hook form needs compatibility mode: ``hook_attn_scores`` and ``hook_pattern``
fire, and their edits reach the output, in the bridge's default mode.

The bridge rather than ``HookedTransformer``: ``TransformerBridge.boot_transformers``
accepts a pre-loaded ``hf_model=`` (and ``tokenizer=``), so no download and no weight
conversion is needed; its un-hooked logits equal the HF model's (raw HF weights,
no LayerNorm folding unless compatibility mode processes them).
"""

from __future__ import annotations

import copy as _copy
import tempfile
from typing import Callable, Sequence

import torch

from modbias.interventions.ar import AttentionReallocation, log_factors, reallocate
from modbias.interventions.base import Intervention, layer_set
from modbias.interventions.pai import PAI, amplify_visual_scores

__all__ = [
    "ar_pattern_hook", "ar_scores_hook", "pai_scores_hook", "fwd_hooks_for", "bridge_from_hf",
    "pattern_hook_name", "scores_hook_name", "masked_scores",
]

Hook = Callable[..., torch.Tensor]
QueryIndex = torch.Tensor | int | Sequence[int] | None


def pattern_hook_name(layer: int) -> str:
    """TL name of layer ``layer``'s post-softmax pattern ``[batch, head, query, key]``.

    Args:
        layer: the layer index.

    Returns:
        ``"blocks.{layer}.attn.hook_pattern"``.
    """
    return f"blocks.{layer}.attn.hook_pattern"


def scores_hook_name(layer: int) -> str:
    """TL name of layer ``layer``'s pre-softmax, masked, scaled scores ``[batch, head, query, key]``.

    Args:
        layer: the layer index.

    Returns:
        ``"blocks.{layer}.attn.hook_attn_scores"``.
    """
    return f"blocks.{layer}.attn.hook_attn_scores"


def masked_scores(scores: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the entries TL masked: ``-inf`` (compatibility mode) or ``finfo.min`` (default).

    Args:
        scores: attention scores ``[..., key]``.

    Returns:
        bool, same shape.
    """
    return scores <= torch.finfo(scores.dtype).min / 2


def _queries(query_index: QueryIndex, batch: int, n_queries: int, device) -> torch.Tensor:
    """The selected queries as ``[B, Q]`` long indices into the forward's query block."""
    if query_index is None:
        index = torch.full((batch, 1), n_queries - 1, dtype=torch.long, device=device)
    else:
        index = torch.as_tensor(query_index, dtype=torch.long, device=device)
        if index.ndim == 0:
            index = index.reshape(1, 1)
        elif index.ndim == 1:
            index = index[None]
        if index.ndim != 2:
            raise ValueError(f"query_index must be an int, [Q] or [B, Q]; got shape {tuple(index.shape)}")
        index = torch.where(index < 0, index + n_queries, index)
        if index.shape[0] == 1 and batch > 1:
            index = index.expand(batch, -1)
    if index.shape[0] != batch:
        raise ValueError(f"query_index has {index.shape[0]} rows for a batch of {batch}")
    if bool(((index < 0) | (index >= n_queries)).any()):
        raise IndexError(f"query_index {index.tolist()} outside this forward's {n_queries} queries")
    return index


def _keys(mask, batch: int, n_keys: int, device) -> torch.Tensor:
    """A modality mask as bool ``[B, n_keys]``: cut to the keys, or padded with False (generated keys)."""
    mask = torch.as_tensor(mask, device=device).bool()
    if mask.ndim == 1:
        mask = mask[None]
    if mask.shape[0] == 1 and batch > 1:
        mask = mask.expand(batch, -1)
    if mask.shape[0] != batch:
        raise ValueError(f"modality mask has {mask.shape[0]} rows for a batch of {batch}")
    mask = mask[:, :n_keys]
    if mask.shape[1] < n_keys:
        mask = torch.cat([mask, mask.new_zeros(batch, n_keys - mask.shape[1])], dim=1)
    return mask


def _rows(x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """``x [B, H, Q, K]`` at the selected queries ``[B, Q']`` → ``[B, H, Q', K]``."""
    index = query[:, None, :, None].expand(-1, x.shape[1], -1, x.shape[-1])
    return x.gather(2, index)


def _put_rows(x: torch.Tensor, query: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """A copy of ``x`` with the selected query rows replaced by ``rows``."""
    index = query[:, None, :, None].expand(-1, x.shape[1], -1, x.shape[-1])
    return x.clone().scatter_(2, index, rows.to(x.dtype))


def _ar_selection(x: torch.Tensor, query_index: QueryIndex, visual_mask, audio_mask):
    """AR's inputs for a hooked ``x [B, H, Q_all, K]``: the query index ``[B, Q]`` and the V and A
    masks ``[B, 1, K]`` (broadcast over a row block ``[B, Q, H, K]``)."""
    batch, _, n_queries, n_keys = x.shape
    query = _queries(query_index, batch, n_queries, x.device)
    visual = _keys(visual_mask, batch, n_keys, x.device)[:, None, :]
    audio = _keys(audio_mask, batch, n_keys, x.device)[:, None, :]
    return query, visual, audio


def ar_pattern_hook(visual_mask, audio_mask, tau: float = 1.0, query_index: QueryIndex = None) -> Hook:
    """AR on ``hook_pattern``: each selected row is reallocated by Algorithm 1 (:func:`reallocate`).

    Rows are reallocated per layer over heads, exactly as ``AttentionReallocation.edit_rows``
    (CA-MER Eqs. 12-14).

    Args:
        visual_mask: V, the keys that gain attention (``[B, T]`` or ``[T]``, see module doc).
        audio_mask: A, the competitor keys that lose it: audio, or text for ``competitor="text"``.
        tau: τ of Eq. (7): layers with c ≤ τ are left alone.
        query_index: the rows to edit (module doc); ``None``: the last query.

    Returns:
        A TL hook ``(pattern [B, H, Q_all, K], hook) -> pattern``.
    """
    tau = float(tau)

    def hook(pattern: torch.Tensor, hook=None) -> torch.Tensor:
        query, visual, audio = _ar_selection(pattern, query_index, visual_mask, audio_mask)
        rows = _rows(pattern, query).transpose(1, 2)  # [B, Q, H, K]: heads next to tokens
        return _put_rows(pattern, query, reallocate(rows, visual, audio, tau).transpose(1, 2))

    return hook


def ar_scores_hook(visual_mask, audio_mask, tau: float = 1.0, query_index: QueryIndex = None) -> Hook:
    """AR on ``hook_attn_scores``: ``s + log f`` with the factors of the rows' own softmax (:func:`log_factors`).

    ``softmax(s + log f) = reallocate(softmax(s))`` since the reallocated row still sums to 1
    (Eq. 9).  Masked entries keep their sentinel; the weights the factors are computed from are
    exactly zero there (and zero on a fully masked row, which is then never edited).

    Args:
        visual_mask: V over keys, as for :func:`ar_pattern_hook`.
        audio_mask: A over keys, as for :func:`ar_pattern_hook`.
        tau: τ of Eq. (7).
        query_index: the rows whose scores are shifted; ``None``: the last query.

    Returns:
        A TL hook ``(scores [B, H, Q_all, K], hook) -> scores``.
    """
    tau = float(tau)

    def hook(scores: torch.Tensor, hook=None) -> torch.Tensor:
        query, visual, audio = _ar_selection(scores, query_index, visual_mask, audio_mask)
        rows = _rows(scores, query)  # [B, H, Q, K]
        masked = masked_scores(rows)
        empty = masked.all(-1, keepdim=True)
        weights = rows.float().masked_fill(masked, float("-inf")).masked_fill(empty, 0.0)
        weights = weights.softmax(-1).masked_fill(empty, 0.0)
        bias = log_factors(weights.transpose(1, 2), visual, audio, tau).transpose(1, 2)  # [B, H, Q, K]
        edited = torch.where(masked, rows, rows + bias.to(rows.dtype))
        return _put_rows(scores, query, edited)

    return hook


def pai_scores_hook(visual_mask, alpha: float = 0.5, query_index: QueryIndex = None) -> Hook:
    """PAI on ``hook_attn_scores``: ``a → a + α|a|`` on unmasked visual keys of the selected rows.

    Args:
        visual_mask: V over key positions, ``[B, T]`` or ``[T]``.
        alpha: α.
        query_index: the selected queries within the forward's query block: an int, ``[Q]`` or
            ``[B, Q]`` (negative counts from the end); ``None``: the last query.

    Returns:
        A TL hook ``(scores [B, H, Q_all, K], hook) -> scores``.
    """
    alpha = float(alpha)

    def hook(scores: torch.Tensor, hook=None) -> torch.Tensor:
        batch, _, n_queries, n_keys = scores.shape
        query = _queries(query_index, batch, n_queries, scores.device)
        visual = _keys(visual_mask, batch, n_keys, scores.device)[:, None, None, :]
        rows = _rows(scores, query)
        masked = masked_scores(rows)
        amplified = amplify_visual_scores(rows.masked_fill(masked, 0.0), visual & ~masked, alpha)
        return _put_rows(scores, query, torch.where(masked, rows, amplified))

    return hook


def fwd_hooks_for(intervention: Intervention, n_layers: int, masks: dict[str, torch.Tensor],
                  query_index: QueryIndex = None, ar_form: str = "pattern") -> list[tuple[str, Hook]]:
    """A TL ``fwd_hooks`` list doing what ``intervention`` does to the probe's rows.

    PAI always acts on ``hook_attn_scores``; its visual-free guidance (``gamma``) is a
    decoding-time logits mix, not an attention edit, and is refused here.  The bare
    ``Intervention`` ("none") gives no hooks.

    >>> run = bridge.run_with_hooks(ids, fwd_hooks=fwd_hooks_for(make("ar", tau=1.0), 32, masks))  # doctest: +SKIP

    Args:
        intervention: an ``AttentionReallocation``, a ``PAI`` with ``gamma=None``, or the bare ``Intervention``.
        n_layers: resolves the intervention's layer spec (``bridge.cfg.n_layers``).
        masks: modality masks over keys: ``"visual"``, and ``"audio"`` or ``"text"`` for AR's competitor.
        query_index: the selected queries within the forward's query block: an int, ``[Q]`` or
            ``[B, Q]`` (negative counts from the end); ``None``: the last query.
        ar_form: AR's hook point: ``"pattern"`` (``hook_pattern``) or ``"scores"`` (``hook_attn_scores``).

    Returns:
        ``[(hook name, hook)]`` for every edited layer, in layer order.
    """
    if isinstance(intervention, AttentionReallocation):
        if ar_form not in ("pattern", "scores"):
            raise ValueError(f"ar_form must be 'pattern' or 'scores', got {ar_form!r}")
        factory, name = ((ar_pattern_hook, pattern_hook_name) if ar_form == "pattern"
                         else (ar_scores_hook, scores_hook_name))
        hook = factory(masks["visual"], masks[intervention.competitor], intervention.tau, query_index)
    elif isinstance(intervention, PAI):
        if intervention.gamma is not None:
            raise ValueError("PAI's guidance (gamma) is a logits processor, not an attention hook; "
                             "use PAI(gamma=None) here and mix the logits yourself")
        hook, name = pai_scores_hook(masks["visual"], intervention.alpha, query_index), scores_hook_name
    elif type(intervention) is Intervention:
        return []
    else:
        raise TypeError(f"{intervention!r} has no TransformerLens attention-hook form (only AR and PAI)")
    return [(name(layer), hook) for layer in sorted(layer_set(intervention.layers, n_layers))]


def _offline_tokenizer(vocab_size: int, directory: str):
    """A word-level tokenizer ``t0 … t{V-1}`` saved to and reloaded from ``directory``.

    TL's ``get_tokenizer_with_bos`` reads ``init_kwargs["name_or_path"]`` and may reload the
    tokenizer from it, so an in-memory ``PreTrainedTokenizerFast`` is not enough.
    """
    from tokenizers import Tokenizer, models
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(vocab_size)}
    fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")),
                                   unk_token="t0", pad_token="t0", bos_token="t1", eos_token="t2")
    fast.save_pretrained(directory)
    return AutoTokenizer.from_pretrained(directory)


def bridge_from_hf(model, tokenizer=None, device=None, copy: bool = True, name: str | None = None):
    """``TransformerBridge.boot_transformers(name, hf_model=model, tokenizer=...)`` without any download.

    The bridge *wraps* the HF model in place: it replaces the attention modules and blocks
    by bridge components and switches the model to eager attention.

    Args:
        model: an HF causal LM in memory.
        tokenizer: its tokenizer; ``None`` builds a word-level one over the vocabulary offline
            (enough for token-id inputs); one built in memory is saved and reloaded (TL reads
            ``init_kwargs["name_or_path"]``).
        device: the bridge's device (default: the model's).
        copy: boot over a deep copy, so ``model`` stays usable (e.g. instrumented by the probe);
            ``False`` shares (and rewires) the caller's model.
        name: the model name TL is given (default: the config's ``_name_or_path`` or the class name).

    Returns:
        The ``TransformerBridge``.
    """
    from transformer_lens.model_bridge import TransformerBridge

    hf_model = _copy.deepcopy(model) if copy else model
    name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
    device = device if device is not None else next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    with tempfile.TemporaryDirectory() as directory:
        if tokenizer is None:
            tokenizer = _offline_tokenizer(model.config.vocab_size, directory)
        elif "name_or_path" not in tokenizer.init_kwargs:  # built in memory: TL needs a path to reload
            from transformers import AutoTokenizer

            tokenizer.save_pretrained(directory)
            tokenizer = AutoTokenizer.from_pretrained(directory)
        return TransformerBridge.boot_transformers(name, hf_model=hf_model, tokenizer=tokenizer,
                                                   device=device, dtype=dtype)
