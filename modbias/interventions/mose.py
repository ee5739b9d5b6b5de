"""Modality-Specific Experts (MoSE), CA-MER paper Sec. 5.1, Eqs. (2)-(4).

Three experts sit on the FFN (``mlp``) of every decoder layer of a frozen backbone:

- visual  E_v, applied to the visual tokens V;
- non-visual E_n, applied to N = {A, T} (audio, prompt text and generated tokens);
- omni E_o, applied to every token.

Each expert is an *asymmetric soft mixture of LoRAs* (Eq. 2): one shared
down-projection ``A`` (r x d) and N up-projections ``B_i`` (d x r), mixed per
token by ``alpha(x) = softmax(W x)``::

    E(x) = sum_i alpha_i(x) B_i A x                                   (2)

A per-layer router f (a small MLP) turns the per-sample mean FFN inputs of the
visual and non-visual prompt tokens into the routing score::

    lambda = 1/2 + eps * tanh(f(mean_v ; mean_n)),  eps in [0, 1/2]   (3)

and each layer's FFN output becomes::

    y = FFN(x) + E_o(x) + lambda 1[x in V] E_v(x) + (1 - lambda) 1[x in N] E_n(x)   (4)

**Eq. 4 vs. the text.**  The paper's Eq. (4) writes ``1[x in A]`` for the
non-visual term while the text defines E_n over N = {A, T}.  The default
(``nonvisual="audio_text"``) follows the text: E_n acts on audio, prompt text
and generated tokens, and the router's ``mean_n`` averages the audio and text
prompt tokens.  ``nonvisual="audio"`` is the literal reading of Eq. (4): E_n
acts on audio tokens only and ``mean_n`` averages the audio tokens.

**Token types.**  :meth:`MoSE.set_batch` takes the prompt layouts (left-padded
batch coordinates); a forward pre-hook on the backbone's base model reads the
absolute offset of each forward from its 2-D ``attention_mask`` (``[B, past +
new]``: the start is its length minus the new tokens; without a mask, the
cache's length under either keyword, ``past_key_values`` before transformers
5.24, ``cache`` since) so the incremental forwards of cached generation, and the
cropped-cache re-run of :func:`modbias.runs.trace.rows_at_steps`, type their tokens
correctly.  Positions
past the prompt are generated text (non-visual); left padding gets no expert.
lambda is computed at the forward that starts at position 0 (the prefill, or
the single teacher-forced forward of training) from the prompt tokens only,
and reused by later forwards of the batch, so training and generation see the
same lambda.

Details the paper leaves open (choices made here): LoRA ``B`` starts at zero
(attaching an untrained MoSE changes nothing), ``A`` and ``W`` use PyTorch's
default ``nn.Linear`` initialisation, there is no LoRA scaling factor, the
router is ``Linear(2d, h) -> GELU -> Linear(h, 1)`` with its last layer
zero-initialised (lambda = 1/2 at the start), one router per layer with a
small hidden width (8 by default: Table 6 (c) puts the router at ~0.5 % of
MoSE's parameters; on the organism it is ~17 %).

**Table 6 designs** are built, not toggled: ``MoSEConfig.experts`` names the
experts that exist (a MoSE without the visual expert has no parameters for
it) and ``router=False`` drops f (lambda = 1/2).  ``experts=("omni",),
n_experts=1, router=False`` is a plain LoRA on every token's FFN, the
baseline of :func:`modbias.training.mose.lora_baseline_rank`.

>>> from modbias.interventions.mose import MoSEIntervention   # doctest: +SKIP
>>> ds = modbias.trace(model, data, interventions=[MoSEIntervention(checkpoint="cache/mose")])
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from modbias.core.hf_compat import forward_cache
from modbias.core.layout import TokenLayout, batch_masks
from modbias.interventions.base import Intervention, register

EXPERTS = ("visual", "nonvisual", "omni")
NONVISUAL_SETS = ("audio_text", "audio")
WEIGHTS_FILE, CONFIG_FILE = "mose.safetensors", "mose.json"


@dataclass
class MoSEConfig:
    """Shape of a MoSE; defaults scale the paper's r=64, N=2, eps=0.1 to the organism (d=128)."""

    d_model: int
    n_layers: int
    r: int = 8
    n_experts: int = 2
    eps: float = 0.1
    router_hidden: int = 8
    nonvisual: str = "audio_text"
    experts: tuple[str, ...] = EXPERTS  # the experts built (Table 6 (d): a MoSE without one of them)
    router: bool = True  # False: no f, lambda = 1/2 (Table 6 (c))

    def __post_init__(self):
        self.experts = tuple(self.experts)
        if not self.experts or any(e not in EXPERTS for e in self.experts):
            raise ValueError(f"experts must be a non-empty subset of {EXPERTS}, got {self.experts}")
        if self.nonvisual not in NONVISUAL_SETS:
            raise ValueError(f"nonvisual must be one of {NONVISUAL_SETS}, got {self.nonvisual!r}")
        if not 0.0 <= self.eps <= 0.5:
            raise ValueError(f"eps must lie in [0, 0.5] (Eq. 3), got {self.eps}")
        if self.r < 1 or self.n_experts < 1 or self.router_hidden < 1:
            raise ValueError("r, n_experts and router_hidden must be positive")


# -- Eq. (2): one expert ----------------------------------------------------

class SoftLoRAMixture(nn.Module):
    """Asymmetric soft mixture of N LoRAs: ``sum_i softmax(W x)_i B_i A x`` (Eq. 2)."""

    def __init__(self, d: int, r: int, n: int):
        super().__init__()
        self.A = nn.Parameter(torch.empty(r, d))  # shared rank reduction, r x d
        self.B = nn.Parameter(torch.zeros(n, d, r))  # N rank expansions, d x r each (zero: LoRA init)
        self.W = nn.Parameter(torch.empty(n, d))  # gate
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # nn.Linear's default
        nn.init.kaiming_uniform_(self.W, a=math.sqrt(5))

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The gate alpha(x) = softmax(W x) of Eq. (2).

        Args:
            x: inputs ``[..., d]``.
        Returns:
            ``[..., N]``, summing to 1 over the N LoRAs.
        """
        return F.linear(x, self.W).softmax(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One expert E(x) = Σ_i alpha_i(x) B_i A x (Eq. 2).

        Args:
            x: FFN inputs ``[..., d]``.
        Returns:
            ``[..., d]``.
        """
        alpha = self.gate(x)  # [..., N]
        h = F.linear(x, self.A)  # [..., r]
        up = torch.einsum("...r,ndr->...nd", h, self.B)  # [..., N, d]
        return (alpha[..., None] * up).sum(-2)


# -- Eq. (3): router ----------------------------------------------------------

class Router(nn.Module):
    """f of Eq. (3): ``[mean_v ; mean_n]`` (2d) -> scalar."""

    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * d, hidden), nn.GELU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, mean_v: torch.Tensor, mean_n: torch.Tensor) -> torch.Tensor:
        """f of Eq. (3) before the tanh.

        Args:
            mean_v: mean FFN input over the visual prompt tokens ``[B, d]``.
            mean_n: mean FFN input over the non-visual prompt tokens ``[B, d]``.
        Returns:
            ``[B]``.
        """
        return self.net(torch.cat([mean_v, mean_n], dim=-1)).squeeze(-1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the positions a mask selects; zero where it selects none.

    Args:
        x: ``[B, T, d]``.
        mask: ``[B, T]`` (bool or 0/1).
    Returns:
        ``[B, d]``.
    """
    m = mask.to(x.dtype)[..., None]
    return (x * m).sum(1) / m.sum(1).clamp(min=1)


def routing_score(router: Router, x: torch.Tensor, visual: torch.Tensor, nonvisual: torch.Tensor,
                  eps: float) -> torch.Tensor:
    """lambda of Eq. (3): ``1/2 + eps * tanh(f(mean_v ; mean_n))``.

    Args:
        router: f of the layer.
        x: the layer's FFN inputs ``[B, T, d]``.
        visual: prompt tokens averaged into mean_v ``[B, T]``.
        nonvisual: prompt tokens averaged into mean_n ``[B, T]``.
        eps: Eq. (3)'s bound, in [0, 1/2].
    Returns:
        lambda ``[B]``, in [1/2 - eps, 1/2 + eps].
    """
    return 0.5 + eps * torch.tanh(router(masked_mean(x, visual), masked_mean(x, nonvisual)))


# -- Eq. (4): one layer ---------------------------------------------------------

def weighted_experts(x: torch.Tensor, experts: list[SoftLoRAMixture], weights: torch.Tensor) -> torch.Tensor:
    """``sum_e weights_e * E_e(x)`` over soft LoRA mixtures E_e (Eq. 2), every expert and LoRA at once.

    One product ``x @ [A_1 .. A_E ; W_1 .. W_E]ᵀ`` gives each expert's code ``h_e = A_e x`` and gate
    ``alpha_e = softmax(W_e x)``; with ``u_{e,i} = weights_e * alpha_{e,i} * h_e`` one more product
    ``u @ [B_{1,1} .. B_{E,N}]ᵀ`` adds up every ``B_{e,i} h_e`` (all B's of all experts in one matmul).

    Args:
        x: FFN inputs ``[..., d]``.
        experts: E experts of the same shape (A ``r x d``, N B's ``d x r``, W ``N x d``).
        weights: each expert's weight per token ``[..., E]`` (Eq. 4: 1, lambda or 1 - lambda, times
            the token's type mask).
    Returns:
        ``[..., d]``.
    """
    n_experts, rank = len(experts), experts[0].A.shape[0]
    n_loras, d = experts[0].B.shape[:2]
    down = F.linear(x, torch.cat([e.A for e in experts] + [e.W for e in experts]))  # [..., E r + E N]
    codes = down[..., :n_experts * rank].unflatten(-1, (n_experts, rank))  # h_e        [..., E, r]
    alpha = down[..., n_experts * rank:].unflatten(-1, (n_experts, n_loras)).softmax(-1)  # [..., E, N]
    mixed = (weights[..., None] * alpha)[..., None] * codes[..., None, :]  # u_{e,i}  [..., E, N, r]
    up = torch.stack([e.B for e in experts]).transpose(-1, -2).reshape(n_experts * n_loras * rank, d)
    return mixed.flatten(-3) @ up


class MoSELayer(nn.Module):
    """The three experts and the router of one decoder layer."""

    def __init__(self, config: MoSEConfig):
        super().__init__()
        d, r, n = config.d_model, config.r, config.n_experts
        self.present = config.experts
        for name in config.experts:
            setattr(self, name, SoftLoRAMixture(d, r, n))
        self.router = Router(d, config.router_hidden) if config.router else None

    def forward(self, x: torch.Tensor, visual: torch.Tensor, nonvisual: torch.Tensor, lam: torch.Tensor,
                valid: torch.Tensor | None = None, enabled: dict[str, bool] | None = None) -> torch.Tensor:
        """The experts' share of Eq. (4) (without FFN(x)), all experts in one pass (:func:`weighted_experts`).

        Args:
            x: FFN inputs ``[B, T, d]``.
            visual, nonvisual, valid: ``[B, T]`` masks (``valid``: not padding; ``None``: no padding).
            lam: lambda of Eq. (3), ``[B]``.
            enabled: switches experts off by name.
        Returns:
            ``E_o(x) + lambda 1[x in V] E_v(x) + (1 - lambda) 1[x in N] E_n(x)``, ``[B, T, d]``.
        """
        names = [name for name in EXPERTS if name in self.present and (enabled or {}).get(name, True)]
        if not names:
            return torch.zeros_like(x)
        lam = lam.to(x.dtype)[:, None]
        weight = {"omni": torch.ones_like(x[..., 0]) if valid is None else valid.to(x.dtype),
                  "visual": lam * visual.to(x.dtype), "nonvisual": (1 - lam) * nonvisual.to(x.dtype)}
        return weighted_experts(x, [getattr(self, name) for name in names],
                                torch.stack([weight[name] for name in names], -1))


@dataclass
class ForwardTypes:
    """Token types of the positions of the current forward, ``[B, T]`` each."""

    visual: torch.Tensor
    nonvisual: torch.Tensor
    valid: torch.Tensor
    router_visual: torch.Tensor  # prompt tokens averaged into mean_v
    router_nonvisual: torch.Tensor  # prompt tokens averaged into mean_n
    start: int  # absolute (padded-batch) position of the forward's first token


class MoSE(nn.Module):
    """Per-layer experts + routers, plus the token-type state of the current batch.

    Inference toggles (plain attributes, read at every forward): ``enabled``
    (expert name -> bool), ``fixed_lambda`` (``None`` or a value replacing Eq. 3),
    ``eps`` (Eq. 3's bound; starts at the config's).
    """

    def __init__(self, config: MoSEConfig):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(MoSELayer(config) for _ in range(config.n_layers))
        self.enabled = {name: True for name in EXPERTS}
        self.fixed_lambda: float | None = None
        self.eps = config.eps
        self.nonvisual_set = config.nonvisual
        self._masks: dict[str, torch.Tensor] | None = None
        self._length = 0
        self._types: ForwardTypes | None = None
        self._lam: dict[int, torch.Tensor] = {}

    @classmethod
    def for_model(cls, model, seed: int | None = 0, **config) -> "MoSE":
        """A fresh (zero-effect) MoSE shaped for ``model``'s backbone.

        Args:
            model: a model adapter; ``backbone.config`` gives d_model and the number of layers.
            seed: seed of the initialisation, drawn in a forked RNG that leaves the global one untouched
                (``None``: drawn from the global RNG).
            config: further :class:`MoSEConfig` fields (``r``, ``n_experts``, ``experts``, ...).
        Returns:
            The new MoSE.
        """
        cfg = model.backbone.config
        if seed is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return cls(MoSEConfig(cfg.hidden_size, cfg.num_hidden_layers, **config))
        return cls(MoSEConfig(cfg.hidden_size, cfg.num_hidden_layers, **config))

    def trainable_parameters(self) -> int:
        """Number of parameters MoSE adds (all of them train; the backbone is frozen)."""
        return sum(p.numel() for p in self.parameters())

    # -- token types ------------------------------------------------------
    def set_batch(self, layouts: list[TokenLayout], offsets: torch.Tensor, length: int) -> None:
        """Take the layouts of the batch about to run (the token types of every forward that follows).

        Args:
            layouts: one prompt layout per sample.
            offsets: ``[B]``: sample b's prompt starts at ``offsets[b]`` (left padding before it).
            length: padded prompt length; later positions (generation, teacher-forced answers) are generated text.
        """
        self._masks = batch_masks(layouts, torch.as_tensor(offsets), length)
        self._masks["valid"] = torch.arange(length)[None, :] >= torch.as_tensor(offsets)[:, None]
        self._length = length
        self._types = None
        self._lam = {}

    def clear_batch(self) -> None:
        """Forget the batch's layouts, token types and lambdas (on detach)."""
        self._masks, self._types, self._lam, self._length = None, None, {}, 0

    def begin_forward(self, start: int, n_tokens: int, batch_size: int, device) -> None:
        """Type the positions ``[start, start + n_tokens)`` of the coming forward (:attr:`current`).

        Args:
            start: absolute (padded-batch) position of the forward's first token.
            n_tokens: number of positions the forward runs.
            batch_size: B; must match the layouts of :meth:`set_batch`.
            device: device of the masks.
        """
        if self._masks is None:
            raise RuntimeError("MoSE is attached but has no batch layout: call set_batch() (begin_batch) first")
        if batch_size != self._masks["visual"].shape[0]:
            raise RuntimeError(f"MoSE: forward batch {batch_size} != layout batch {self._masks['visual'].shape[0]}")
        if start > 0 and not self._lam and self.fixed_lambda is None and self.config.router:
            raise RuntimeError("MoSE: a cached forward (start > 0) before any forward from position 0; "
                               "lambda (Eq. 3) is computed at the prefill")
        stop = start + n_tokens
        inside = slice(min(start, self._length), min(stop, self._length))
        extra = stop - max(start, self._length)  # positions past the prompt layout: generated text

        def take(name: str, fill: bool) -> torch.Tensor:
            part = self._masks[name][:, inside]
            if extra > 0:
                part = torch.cat([part, torch.full((batch_size, extra), fill)], dim=1)
            return part.to(device)

        vis, aud, txt, gen, valid = (take(k, f) for k, f in
                                     (("visual", False), ("audio", False), ("text", False), ("generated", True),
                                      ("valid", True)))
        if self.nonvisual_set == "audio_text":
            nonvis, router_nonvis = (aud | txt | gen) & valid, aud | txt
        else:
            nonvis, router_nonvis = aud, aud
        self._types = ForwardTypes(vis, nonvis, valid, vis, router_nonvis, start)

    @property
    def current(self) -> ForwardTypes | None:
        """Token types of the forward in progress (for inspection and tests)."""
        return self._types

    def lam(self, layer: int) -> torch.Tensor | None:
        """lambda of Eq. (3) of one layer for the current batch.

        Args:
            layer: decoder layer index.
        Returns:
            ``[B]``, or ``None`` before the batch's first forward (or when lambda is fixed or there is no router).
        """
        return self._lam.get(layer)

    def layer_delta(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """The experts' share of Eq. (4) for one layer (lambda from Eq. 3 at the prefill, reused after).

        Args:
            layer: decoder layer index.
            x: the layer's FFN inputs ``[B, T, d]`` for the positions typed by :meth:`begin_forward`.
        Returns:
            ``[B, T, d]``, added to FFN(x).
        """
        types = self._types
        if types is None:
            raise RuntimeError("MoSE: FFN called outside a backbone forward typed by begin_forward()")
        module = self.layers[layer]
        if self.fixed_lambda is not None or module.router is None:
            value = 0.5 if self.fixed_lambda is None else float(self.fixed_lambda)
            lam = torch.full((x.shape[0],), value, device=x.device, dtype=x.dtype)
        elif types.start == 0:
            lam = routing_score(module.router, x, types.router_visual, types.router_nonvisual, self.eps)
            self._lam[layer] = lam.detach()
        else:
            lam = self._lam[layer]
        return module(x, types.visual, types.nonvisual, lam, types.valid, self.enabled)

    # -- persistence ------------------------------------------------------
    def save(self, path: str | Path, extra: dict | None = None) -> Path:
        """Write ``path/mose.safetensors`` and ``path/mose.json`` (config and ``extra`` metadata).

        Args:
            path: directory, created if missing.
            extra: JSON-able metadata stored next to the config.
        Returns:
            ``path``.
        """
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, path / WEIGHTS_FILE)
        (path / CONFIG_FILE).write_text(json.dumps({"config": asdict(self.config), **(extra or {})}, indent=1))
        return path


def load_mose(path: str | Path) -> MoSE:
    """A MoSE saved by :meth:`MoSE.save` / ``train_mose``, in eval mode, with ``metadata`` set.

    Args:
        path: the checkpoint directory, or its ``mose.safetensors``.
    Returns:
        The MoSE.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_file():
        path = path.parent
    if not (path / WEIGHTS_FILE).exists():
        raise FileNotFoundError(f"no MoSE checkpoint at {path} (expected {WEIGHTS_FILE} and {CONFIG_FILE})")
    meta = json.loads((path / CONFIG_FILE).read_text())
    mose = MoSE(MoSEConfig(**meta["config"]))
    mose.load_state_dict(load_file(path / WEIGHTS_FILE))
    mose.metadata = meta
    return mose.eval()


# -- attaching to a backbone ----------------------------------------------------

class MoSEMLP(nn.Module):
    """``layer.mlp`` while MoSE is attached: ``FFN(x)`` + the experts of Eq. (4)."""

    def __init__(self, base: nn.Module, mose: MoSE, layer: int):
        super().__init__()
        self.base = base
        self.layer = layer
        object.__setattr__(self, "mose", mose)  # not a submodule: keeps the backbone's parameters unchanged

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``FFN(x)`` plus the experts of Eq. (4).

        Args:
            x: the layer's FFN inputs ``[B, T, d]``.
        Returns:
            ``[B, T, d]``.
        """
        return self.base(x) + self.mose.layer_delta(self.layer, x)


def _forward_start(module, args, kwargs):
    """(start position, n tokens, batch size, device) of a base-model forward.

    The start is read from the 2-D padding mask, which covers the cached and the new
    positions (``start = mask.shape[1] - n_tokens``).  Generation leaves the mask out
    when nothing is padded (a batch of one); then the start is the cache's length.
    """
    x = kwargs.get("inputs_embeds")
    if x is None:
        x = kwargs.get("input_ids", args[0] if args else None)
    n_tokens, batch_size = x.shape[1], x.shape[0]
    mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
    if mask is not None:
        if mask.dim() != 2:
            raise RuntimeError(f"MoSE: expected a 2-D attention_mask [batch, positions], got {tuple(mask.shape)}")
        return mask.shape[1] - n_tokens, n_tokens, batch_size, x.device
    cache = forward_cache(kwargs)
    start = int(cache.get_seq_length()) if cache is not None else 0
    return start, n_tokens, batch_size, x.device


class Attachment:
    """Handle of a MoSE attached to a model; :meth:`detach` restores the original modules."""

    def __init__(self, model, mose: MoSE):
        self.mose = mose
        base = model.backbone.base_model
        self.layers = list(base.layers)
        if len(self.layers) != len(mose.layers):
            raise ValueError(f"MoSE has {len(mose.layers)} layers, the model {len(self.layers)}")
        hidden = model.backbone.config.hidden_size
        if hidden != mose.config.d_model:
            raise ValueError(f"MoSE width {mose.config.d_model} != model hidden size {hidden}")
        if any(isinstance(layer.mlp, MoSEMLP) for layer in self.layers):
            raise RuntimeError("a MoSE is already attached to this model")
        param = next(model.backbone.parameters())
        mose.to(device=param.device, dtype=param.dtype)
        self.originals = [layer.mlp for layer in self.layers]
        for i, layer in enumerate(self.layers):
            layer.mlp = MoSEMLP(self.originals[i], mose, i)

        def pre_hook(module, args, kwargs):
            mose.begin_forward(*_forward_start(module, args, kwargs))

        self.hook = base.register_forward_pre_hook(pre_hook, with_kwargs=True)

    def detach(self) -> None:
        """Remove the pre-hook, restore every layer's original ``mlp`` and clear the batch state (idempotent)."""
        if self.hook is None:
            return
        self.hook.remove()
        for layer, original in zip(self.layers, self.originals):
            layer.mlp = original
        self.mose.clear_batch()
        self.hook = None


def attach_mose(model, mose: MoSE) -> Attachment:
    """Wrap every decoder layer's ``mlp`` of ``model.backbone`` with ``mose``.

    Args:
        model: a model adapter whose backbone has MoSE's width and number of layers.
        mose: the MoSE (moved to the backbone's device and dtype).
    Returns:
        The :class:`Attachment`; its :meth:`~Attachment.detach` undoes the wrapping.
    """
    return Attachment(model, mose)


# -- the intervention ----------------------------------------------------------

@register("mose")
class MoSEIntervention(Intervention):
    """MoSE as an intervention (module level): attach, type each batch, detach.

    ``checkpoint``: a directory written by ``train_mose`` (``None``: a fresh, zero-effect MoSE of
    shape ``r`` / ``n_experts``, e.g. for tests).  Inference toggles: ``off`` (comma list of experts
    to switch off: visual, nonvisual, omni), ``lam`` (fix lambda), ``eps`` (override Eq. 3's bound),
    ``nonvisual`` (``audio_text`` or ``audio``: the token set N, see module doc).  ``module``
    passes a MoSE object directly (not stored in run configs).
    """

    def __init__(self, checkpoint: str | None = None, r: int | None = None, n_experts: int | None = None,
                 eps: float | None = None, lam: float | None = None, off: str | list | None = None,
                 nonvisual: str | None = None, router_hidden: int | None = None, seed: int | None = None,
                 module: MoSE | None = None):
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.r, self.n_experts, self.router_hidden, self.seed = r, n_experts, router_hidden, seed
        self.eps = None if eps is None else float(eps)
        if self.eps is not None and not 0.0 <= self.eps <= 0.5:
            raise ValueError(f"eps must lie in [0, 0.5] (Eq. 3), got {eps}")
        self.lam = None if lam is None else float(lam)
        names = off.split(",") if isinstance(off, str) else list(off or [])
        self.off = [n.strip() for n in names if n.strip()]
        bad = [n for n in self.off if n not in EXPERTS]
        if bad:
            raise ValueError(f"unknown experts {bad} in off; choose from {EXPERTS}")
        if nonvisual is not None and nonvisual not in NONVISUAL_SETS:
            raise ValueError(f"nonvisual must be one of {NONVISUAL_SETS}, got {nonvisual!r}")
        self.nonvisual = nonvisual
        self.module = module
        self._attachment: Attachment | None = None
        self._saved_toggles = None

    def params(self) -> dict:
        """The constructor's arguments (except ``module``), as stored in run configs."""
        return {"checkpoint": self.checkpoint, "r": self.r, "n_experts": self.n_experts, "eps": self.eps,
                "lam": self.lam, "off": ",".join(self.off) or None, "nonvisual": self.nonvisual,
                "router_hidden": self.router_hidden, "seed": self.seed}

    def build(self, model) -> MoSE:
        """The MoSE this intervention attaches (loaded or created once, then kept).

        Args:
            model: a model adapter, for the shape of a fresh MoSE.
        Returns:
            The MoSE.
        Raises:
            ValueError: ``r``, ``n_experts`` or ``router_hidden`` disagree with the checkpoint.
        """
        if self.module is None:
            if self.checkpoint is not None:
                self.module = load_mose(self.checkpoint)
                for name in ("r", "n_experts", "router_hidden"):
                    want = getattr(self, name)
                    if want is not None and want != getattr(self.module.config, name):
                        raise ValueError(f"{name}={want} but checkpoint {self.checkpoint} has "
                                         f"{getattr(self.module.config, name)}")
            else:
                shape = {k: v for k, v in (("r", self.r), ("n_experts", self.n_experts),
                                           ("router_hidden", self.router_hidden)) if v is not None}
                self.module = MoSE.for_model(model, seed=0 if self.seed is None else self.seed, **shape)
        return self.module

    def attach(self, model) -> None:
        """Build the MoSE, apply the inference toggles (saving the old ones) and wrap the FFNs.

        Args:
            model: the model adapter.
        """
        mose = self.build(model)
        self._saved_toggles = (dict(mose.enabled), mose.fixed_lambda, mose.eps, mose.nonvisual_set, mose.training)
        mose.enabled = {name: name not in self.off for name in EXPERTS}
        mose.fixed_lambda = self.lam
        if self.eps is not None:
            mose.eps = self.eps
        if self.nonvisual is not None:
            mose.nonvisual_set = self.nonvisual
        mose.eval()
        self._attachment = attach_mose(model, mose)

    def detach(self, model) -> None:
        """Unwrap the FFNs and restore the MoSE's toggles and training mode.

        Args:
            model: the model adapter (unused).
        """
        if self._attachment is not None:
            self._attachment.detach()
            self._attachment = None
        if self._saved_toggles is not None:
            mose = self.module
            mose.enabled, mose.fixed_lambda, mose.eps, mose.nonvisual_set, training = self._saved_toggles
            mose.train(training)
            self._saved_toggles = None

    def begin_batch(self, model, batch, samples) -> None:
        """Give the MoSE the batch's layouts (:meth:`MoSE.set_batch`).

        Args:
            model: the model adapter (unused).
            batch: the prepared batch: its layouts, offsets and padded length.
            samples: the batch's samples (unused).
        """
        self.module.set_batch(batch.layouts, batch.offsets, batch.inputs_embeds.shape[1])


# -- parameter counts (Tables 6 / 15) ----------------------------------------------

def count_parameters(d: int, n_layers: int, r: int = 8, n_experts: int = 2, router_hidden: int = 8,
                     symmetric: bool = False, router: bool = True, experts: int = 3) -> int:
    """Parameters of a MoSE design (Tables 6, 15): per layer, experts x (A, N B's, gate W) + router.

    Args:
        d: hidden width.
        n_layers: decoder layers.
        r: LoRA rank.
        n_experts: N, LoRAs per expert.
        router_hidden: hidden width of f.
        symmetric: every LoRA has its own A (Table 6 b).
        router: False drops f (Table 6 c).
        experts: how many of the three experts are built (Table 6 d).
    Returns:
        The number of trainable parameters.
    """
    a = (n_experts if symmetric else 1) * r * d
    expert = a + n_experts * d * r + n_experts * d
    f = (2 * d * router_hidden + router_hidden + router_hidden + 1) if router else 0
    return n_layers * (experts * expert + f)


def parameter_rows(model, r: int = 8, n_values=(1, 2, 3), router_hidden: int = 8) -> list[dict]:
    """Rows of Table 15 (N sweep) and Table 6 (designs b, c) for ``model``: trainable vs total.

    Args:
        model: a model adapter (its backbone's config and parameters).
        r: LoRA rank.
        n_values: the N of the sweep; designs b, c use N=2 when swept, else the first.
        router_hidden: hidden width of f.
    Returns:
        One dict per design: ``design``, ``r``, ``trainable``, ``frozen``, ``total``, ``trainable_pct``.
    """
    cfg = model.backbone.config
    base = sum(p.numel() for p in (model.parameters() if isinstance(model, nn.Module) else model.backbone.parameters()))
    d, L = cfg.hidden_size, cfg.num_hidden_layers
    designs = [(f"MoSE N={n}", dict(n_experts=n)) for n in n_values]
    two = 2 if 2 in n_values else n_values[0]
    designs += [(f"MoSE w. symm. LoRAs N={two}", dict(n_experts=two, symmetric=True)),
                (f"MoSE w.o. router N={two}", dict(n_experts=two, router=False))]
    rows = []
    for name, kw in designs:
        trainable = count_parameters(d, L, r=r, router_hidden=router_hidden, **kw)
        rows.append({"design": name, "r": r, "trainable": trainable, "frozen": base, "total": base + trainable,
                     "trainable_pct": 100 * trainable / (base + trainable)})
    return rows


def format_parameter_table(model, r: int = 8, n_values=(1, 2, 3), router_hidden: int = 8) -> str:
    """Table 6/15-style parameter counts as text (see :func:`parameter_rows`).

    Args:
        model: a model adapter.
        r: LoRA rank.
        n_values: the N of the sweep.
        router_hidden: hidden width of f.
    Returns:
        A fixed-width table, one line per design.
    """
    lines = [f"{'design':<28}{'#trainable':>12}{'#total':>12}{'trainable %':>13}"]
    for row in parameter_rows(model, r, n_values, router_hidden):
        lines.append(f"{row['design']:<28}{row['trainable']:>12,}{row['total']:>12,}{row['trainable_pct']:>12.2f}%")
    return "\n".join(lines)
