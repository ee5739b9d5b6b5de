"""The ``modbias`` command line.

Every command validates its options and paths before loading a model; heavy
libraries (torch, transformers, xarray) are imported inside the commands, so
``--help`` answers at once.  :func:`main` is the entry point: a user error is
one line ``error: ...`` on stderr with exit status 1 (2 for a bad option);
``--debug`` or ``MODBIAS_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from modbias.cli import options
from modbias.cli.errors import main, use_device, validate

app = typer.Typer(help="Modality-bias interpretability for audio-visual emotion LLMs.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
organism_app = typer.Typer(help="The embedded model organism.", no_args_is_help=True)
app.add_typer(organism_app, name="organism")
mose_app = typer.Typer(help="Modality-specific experts (MoSE, Eqs. 2-4).", no_args_is_help=True)
app.add_typer(mose_app, name="mose")
console = Console()


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="show the traceback of an error (or MODBIAS_DEBUG=1)")):
    """Modality-bias interpretability for audio-visual emotion LLMs."""
    if debug:
        import os

        os.environ["MODBIAS_DEBUG"] = "1"


@app.command()
def trace(
    subset: str = options.SUBSET,
    model: str = options.MODEL,
    data: Optional[str] = options.DATA,
    limit: Optional[int] = options.LIMIT,
    batch_size: int = options.batch_size(64),
    device: str = options.DEVICE,
    out: Optional[Path] = options.OUT,
    cache: Path = options.CACHE,
    at: str = typer.Option("first", help="first | answer | both: which emotion token's attention"),
    max_new_tokens: int = options.MAX_NEW_TOKENS,
    save_rows: bool = typer.Option(False, "--save-rows", help="also store full attention rows and masks"),
    tau: float = typer.Option(1.0, help="threshold of Eq. 7 the summary reads the biased heads at "
                                        "(not part of the run: any τ reads the same store)"),
    shard: Optional[str] = options.SHARD,
    dask: Optional[str] = options.DASK,
):
    """Trace attention at the first emotion token; store per-sample, per-layer, per-head attention sums.

    The same command again opens (or resumes) the same store: its default path is named by the run's
    identity; another --limit, --subset or edited data is refused, naming what differs.
    \f
    Args:
        subset, model, data, limit, batch_size, device, max_new_tokens: the shared options of :mod:`modbias.cli.options`.
        out: the store (default: named by the run's identity under ``--cache``).
        at: ``first``, ``answer`` or ``both`` emotion tokens.
        save_rows: also store full attention rows and key masks.
        tau: τ of Eq. 7 the printed biased-head share is read at (not part of the run).
        shard, dask: scale-out (:func:`modbias.runs.loop.run`); not part of the run.
        (Each parameter is the command-line option of the same name; ``modbias trace --help`` gives its help.)
    """
    scale = options.scale_out(shard, dask, out)
    bench = validate(model=model, at=at, subset=subset, data=options.benchmark_for(data, model), limit=limit,
                     batch_size=batch_size, max_new_tokens=max_new_tokens, out=out)
    import modbias
    from modbias.analysis.report import summary_table, trace_summary
    from modbias.runs.summaries import evaluation_table

    use_device(device)
    adapter = modbias.load_model(model, device=device)
    console.print(f"tracing {len(bench)} samples of {bench.name}/{subset} with {model} → {out or cache}")
    ds = modbias.trace(adapter, bench, out=out, cache_dir=cache, at=at, max_new_tokens=max_new_tokens,
                       batch_size=batch_size, save_rows=save_rows, tau=tau, progress=True, **scale)
    out = ds.attrs.get("path", out)
    console.print(f"store: {out}")
    if options.committed_note(ds):
        console.print(options.committed_note(ds))
        return
    for position in ds.at.values.tolist():
        console.print(summary_table(trace_summary(ds, at=position),
                                    f"{out} — at the {position} emotion token (middle layers, tau={tau})"))
    console.print(evaluation_table(ds.attrs["summary"]["evaluation"], title=str(out)))


def _values(text: Optional[str], cast, option: str) -> Optional[list]:
    """A comma-separated list of numbers (a sweep), or None."""
    if text is None:
        return None
    try:
        return [cast(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a {cast.__name__} or a comma-separated list of them",
                                 param_hint=option) from None


@app.command()
def intervene(
    method: str = typer.Option("ar", help="ar | pai | duplicate_audio | mose | none, or a stack like mose+ar"),
    tau: Optional[str] = typer.Option(None, help="AR threshold of Eq. 7; a list like 0,1,2,3 sweeps"),
    layers: Optional[str] = typer.Option(None, help="layers to edit: all, start:end, or 1,3,5"),
    alpha: Optional[str] = typer.Option(None, help="PAI amplification (default 0.2, the reference's); a list sweeps"),
    gamma: Optional[float] = typer.Option(None, help="PAI image-free guidance γ on log-probabilities "
                                                      "(default 1.1, the reference's; 1: conditional branch only)"),
    floor: Optional[float] = typer.Option(None, help="AR: heads with 0 < S_v < floor are left unedited "
                                                      "(default 1e-6)"),
    repeat: Optional[str] = typer.Option(None, help="audio-token copies k for duplicate_audio; a list sweeps"),
    competitor: Optional[str] = typer.Option(None, help="AR's competing token set: audio (default) or text"),
    checkpoint: Optional[Path] = typer.Option(None, help="MoSE checkpoint directory"),
    subset: str = options.SUBSET,
    model: str = options.MODEL,
    data: Optional[str] = options.DATA,
    limit: Optional[int] = options.LIMIT,
    batch_size: int = options.batch_size(64),
    device: str = options.DEVICE,
    out: Optional[Path] = typer.Option(None, help="store path (single runs only); default: under --cache, "
                                                  "named by the run's identity"),
    cache: Path = typer.Option(Path("cache"), help="where runs and the shared baseline live"),
    at: str = typer.Option("first", help="which emotion token's attention to store: first | answer | both"),
    max_new_tokens: int = options.MAX_NEW_TOKENS,
    scope: str = typer.Option("conclusion", help="read Ŷ from the final conclusion (Sec. 6.1) or the whole answer"),
    grouper: Optional[str] = typer.Option(None, help="module:function mapping an emotion word to its group "
                                                     "(default: the built-in lexicon)"),
    shard: Optional[str] = options.SHARD,
    dask: Optional[str] = options.DASK,
):
    """Run the benchmark under an intervention; print per-subset Acc/Rec/Avg/Correct with deltas vs the baseline.
    \f
    Args:
        method: an intervention or a ``+`` stack of them.
        tau, alpha, repeat: AR's τ, PAI's α, duplicate_audio's k; comma lists sweep.
        layers, gamma, floor, competitor, checkpoint: further intervention parameters.
        subset, model, data, limit, batch_size, device, max_new_tokens: the shared options of :mod:`modbias.cli.options`.
        out: the store of a single run; cache: where sweeps and the shared baseline go.
        at: which emotion token's attention is stored.
        scope: where Ŷ is read (conclusion or answer); grouper: G of Eq. 22 as ``module:function``.
        (Each parameter is the command-line option of the same name; ``modbias intervene --help`` gives its help.)
    """
    grid = {k: v for k, v in {"tau": _values(tau, float, "--tau"), "alpha": _values(alpha, float, "--alpha"),
                              "k": _values(repeat, int, "--repeat"),
                              "layers": None if layers is None else [layers],
                              "gamma": None if gamma is None else [gamma],
                              "floor": None if floor is None else [floor],
                              "competitor": None if competitor is None else [competitor],
                              "checkpoint": None if checkpoint is None else [str(checkpoint)]}.items() if v}
    if checkpoint is not None and not checkpoint.exists():
        raise FileNotFoundError(f"--checkpoint {checkpoint} does not exist")
    scale = options.scale_out(shard, dask, out or cache)
    bench = validate(model=model, at=at, subset=subset, data=options.benchmark_for(data, model), limit=limit,
                     batch_size=batch_size, max_new_tokens=max_new_tokens, out=out)
    import modbias
    from modbias.analysis.report import intervention_table
    from modbias.core.evaluation import SCOPES, load_grouper
    from modbias.runs.intervene import build_interventions, sweep
    from modbias.runs.summaries import evaluation_table

    if scope not in SCOPES:
        raise typer.BadParameter(f"must be one of {SCOPES}, got {scope!r}", param_hint="--scope")
    try:
        group = load_grouper(grouper)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--grouper") from None

    settings = sweep(grid)
    if out is not None and len(settings) > 1:
        raise typer.BadParameter("--out names one store; a sweep writes one run per value under --cache")
    for params in settings:  # every method name and parameter, before the model loads
        build_interventions(method, **params)
    use_device(device)
    adapter = modbias.load_model(model, device=device)
    for params in settings:
        console.print(f"{method} {params or ''} on {len(bench)} samples of {bench.name}/{subset}")
        ds = modbias.intervene(adapter, bench, method=method, out=out, cache_dir=cache, batch_size=batch_size,
                               max_new_tokens=max_new_tokens, at=at, progress=True, scope=scope,
                               grouper=group, **scale, **params)
        if options.committed_note(ds):
            console.print(options.committed_note(ds))
            continue
        console.print(intervention_table(ds.attrs["summary"], title=f"{ds.attrs.get('path', '')}"))
        if ds.attrs["summary"]["evaluation"]["table"] != "Table 1":  # Table 1 is the per-subset one above
            console.print(evaluation_table(ds.attrs["summary"]["evaluation"], title=f"{ds.attrs.get('path', '')}"))


@app.command("app")
def dashboard(
    cache: Path = typer.Option(Path("cache"), help="directory holding run stores"),
    port: int = typer.Option(8050),
    host: str = typer.Option("127.0.0.1", help="address to bind; another than 127.0.0.1 exposes the runs"),
):
    """Serve the Dash dashboard over every run in the cache (it never runs a model).
    \f
    Args:
        cache: the folder of run stores.
        port: the port; host: the address to bind.
        (Each parameter is the command-line option of the same name; ``modbias app --help`` gives its help.)
    """
    if cache.exists() and not cache.is_dir():
        raise NotADirectoryError(f"--cache {cache} is not a directory")
    from modbias_app import serve

    console.print(f"modbias dashboard over {cache} on http://{host}:{port}")
    serve(cache, port, host=host)


@organism_app.command("train")
def organism_train(
    name: str = typer.Option("organism", help="organism | organism-attn (its data preset and weights dir)"),
    out: Path = typer.Option(None, help="weights directory; default: the package's shipped weights of NAME"),
    epochs: int = typer.Option(3, help="task epochs (organism-attn: fine-tuning epochs from its base state)"),
    base_epochs: int = typer.Option(3, help="epochs of the base state (consistent samples only)"),
    base_only: bool = typer.Option(False, "--base-only", help="train only the base state into OUT/base"),
    audio_repeat: int = typer.Option(1, help="copies of each audio token (App. C.2)"),
    seed: int = typer.Option(0),
    threads: int = typer.Option(2, help="torch CPU threads"),
):
    """Train a model organism on its synthetic training split (fixed seed, CPU).

    ``organism`` trains from scratch; ``organism-attn`` trains its base state first, then fine-tunes
    it.  Either way the base state (consistent samples only) is saved under OUT/base (float16),
    the starting point of `modbias mose train` and its LoRA baseline.
    \f
    Args:
        name: ``organism`` or ``organism-attn``.
        out: the weights folder (default: the package's shipped weights of ``name``).
        epochs: task (or fine-tuning) epochs; base_epochs: epochs of the base state.
        base_only: train only the base state.
        audio_repeat: copies of each audio token (App. C.2).
        seed: the seed; threads: torch CPU threads.
        (Each parameter is the command-line option of the same name; ``modbias organism train --help`` gives its help.)
    """
    import time

    from modbias.data.synth import ATTN_CONFIG, SynthConfig
    from modbias.models.organism import BASE_STATE, ORGANISMS
    from modbias.training.organism import TrainConfig, train_base_state, train_from_base, train_organism

    import torch

    if name not in ORGANISMS:
        raise typer.BadParameter(f"unknown organism {name!r}; choose from {sorted(ORGANISMS)}")
    out = out or ORGANISMS[name]
    data = ATTN_CONFIG if name == "organism-attn" else SynthConfig()
    start = time.time()
    base = train_base_state(name, data, epochs=base_epochs, seed=seed, threads=threads)
    base.save(out / BASE_STATE, dtype=torch.float16)
    console.print(f"saved base state to {out / BASE_STATE} after {time.time() - start:.0f} s")
    if base_only:
        return
    if name == "organism-attn":
        model = train_from_base(base, name, data, epochs=epochs, seed=seed, threads=threads)
    else:
        model = train_organism(TrainConfig(epochs=epochs, audio_repeat=audio_repeat, seed=seed, threads=threads), data,
                               name=name)
    model.save(out)
    console.print(f"saved {name} to {out} after {time.time() - start:.0f} s")


@mose_app.command("train")
def mose_train(
    out: Path = typer.Option(Path("cache/mose-organism"), help="checkpoint directory"),
    model: str = typer.Option("organism", help="the organism whose base state MoSE fine-tunes (organism, organism-attn)"),
    start: str = typer.Option("base", help="base: the organism's base state, as the paper (default); "
                                           "tuned: the converged organism"),
    r: int = typer.Option(8, help="LoRA rank (paper: 64 at d=4096)"),
    n_experts: int = typer.Option(2, help="expansion matrices B per expert (paper: N=2)"),
    eps: float = typer.Option(0.1, help="routing bound of Eq. 3 (paper: 0.1)"),
    without: Optional[str] = typer.Option(None, help="experts not built, e.g. visual or visual,omni (Table 6 d)"),
    no_router: bool = typer.Option(False, "--no-router", help="no router f: lambda = 1/2 (Table 6 c)"),
    lora_baseline: bool = typer.Option(False, "--lora-baseline",
                                       help="train the plain-LoRA baseline instead: one LoRA on every token's "
                                            "FFN, its rank matched to this MoSE's parameter count"),
    epochs: int = typer.Option(4, help="epochs over the training samples (4 x 2,400 = 300 steps of 32)"),
    n_train: int = typer.Option(2400, help="training samples from the synthetic training split"),
    lr: float = typer.Option(1e-2, help="AdamW learning rate (warm-up, cosine decay)"),
    seed: int = typer.Option(0),
):
    """Train MoSE (or its plain-LoRA baseline) on a frozen organism; print parameter counts (Table 6/15 style).

    Evaluate it on the model it was trained on, e.g. `modbias intervene --model organism-base --method mose
    --checkpoint OUT`.
    \f
    Args:
        out: the checkpoint folder.
        model: the organism; start: ``base`` (its base state) or ``tuned``.
        r, n_experts, eps: LoRA rank, expansion matrices per expert, routing bound of Eq. 3.
        without, no_router, lora_baseline: Table 6 variants (experts left out, no router, plain LoRA of matched size).
        epochs, n_train, lr, seed: training settings.
        (Each parameter is the command-line option of the same name; ``modbias mose train --help`` gives its help.)
    """
    import time

    import modbias
    from modbias.interventions.mose import EXPERTS, count_parameters, format_parameter_table
    from modbias.training.mose import lora_baseline_rank, train_mose

    use_device("cpu")
    if start not in ("base", "tuned"):
        raise typer.BadParameter(f"--start must be base or tuned, got {start!r}")
    adapter = modbias.load_model(f"{model}-base" if start == "base" else model)
    experts = tuple(e for e in EXPERTS if e not in (without or "").split(","))
    d, layers = adapter.backbone.config.hidden_size, adapter.backbone.config.num_hidden_layers
    design = dict(r=r, n_experts=n_experts, experts=experts, router=not no_router)
    if lora_baseline:
        matched = count_parameters(d, layers, r, n_experts, router=not no_router, experts=len(experts))
        design = dict(r=lora_baseline_rank(d, layers, matched), n_experts=1, experts=("omni",), router=False)
    start_time = time.time()
    mose = train_mose(adapter, eps=eps, epochs=epochs, lr=lr, seed=seed, out=out, n_train=n_train, **design)
    console.print(f"saved {'LoRA baseline' if lora_baseline else 'MoSE'} ({mose.trainable_parameters():,} trainable, "
                  f"{design}) to {out} after {time.time() - start_time:.0f} s")
    console.print(format_parameter_table(adapter, r=r))


from modbias.cli.causal import causal_app  # noqa: E402
from modbias.cli.chair import chair as _chair  # noqa: E402
from modbias.cli.data import data_app  # noqa: E402
from modbias.cli.evaluate import evaluate as _evaluate  # noqa: E402
from modbias.cli.migr import consistency as _consistency, drift as _drift, mi as _mi  # noqa: E402
from modbias.cli.store import store_app  # noqa: E402

app.add_typer(data_app, name="data")
app.add_typer(causal_app, name="causal")
app.add_typer(store_app, name="store")
app.command("mi")(_mi)
app.command("drift")(_drift)
app.command("consistency")(_consistency)
app.command("evaluate")(_evaluate)
app.command("chair")(_chair)

if __name__ == "__main__":  # pragma: no cover
    main()
