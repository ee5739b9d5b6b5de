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

from modbias.cli_errors import main, use_device, validate

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
    subset: str = typer.Option("all", help="video_aligned | audio_aligned | consistent | all"),
    model: str = typer.Option("organism", help="family[:path]; 'organism' is the shipped default"),
    data: str = typer.Option("synth", help="synth, a dataset path, or reader:path"),
    limit: Optional[int] = typer.Option(None, help="at most N samples per subset"),
    batch_size: int = typer.Option(64, help="samples per batch (the unit of resume)"),
    device: str = typer.Option("cpu", help="torch device, e.g. cpu or cuda"),
    out: Optional[Path] = typer.Option(None, help="store path; default cache/<generated run name>"),
    at: str = typer.Option("first", help="first | answer | both: which emotion token's attention"),
    max_new_tokens: int = typer.Option(16, help="generation length"),
    save_rows: bool = typer.Option(False, "--save-rows", help="also store full attention rows and masks"),
    tau: float = typer.Option(1.0, help="threshold of Eq. 7 for the biased-head columns"),
):
    """Trace attention at the first emotion token; store per-sample, per-layer, per-head metrics."""
    bench = validate(model=model, at=at, subset=subset, data=data, limit=limit, batch_size=batch_size,
                     max_new_tokens=max_new_tokens, out=out)
    import modbias
    from modbias.benchmark_metrics import evaluation_table
    from modbias.report import summary_table, trace_summary
    from modbias.tracing import run_name

    use_device(device)
    adapter = modbias.load_model(model, device=device)
    out = out or Path("cache") / run_name(adapter, subset)
    console.print(f"tracing {len(bench)} samples of {bench.name}/{subset} with {model} → {out}")
    ds = modbias.trace(adapter, bench, out=out, at=at, max_new_tokens=max_new_tokens, batch_size=batch_size,
                       save_rows=save_rows, tau=tau, progress=True)
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
    alpha: Optional[str] = typer.Option(None, help="PAI amplification; a list sweeps"),
    gamma: Optional[float] = typer.Option(None, help="PAI guidance scale (off by default)"),
    repeat: Optional[str] = typer.Option(None, help="audio-token copies k for duplicate_audio; a list sweeps"),
    competitor: Optional[str] = typer.Option(None, help="AR's competing token set: audio (default) or text"),
    checkpoint: Optional[Path] = typer.Option(None, help="MoSE checkpoint directory"),
    subset: str = typer.Option("all", help="video_aligned | audio_aligned | consistent | all"),
    model: str = typer.Option("organism", help="family[:path]"),
    data: str = typer.Option("synth", help="synth, a dataset path, or reader:path"),
    limit: Optional[int] = typer.Option(None, help="at most N samples per subset"),
    batch_size: int = typer.Option(64),
    device: str = typer.Option("cpu"),
    out: Optional[Path] = typer.Option(None, help="store path (single runs only); default cache/intervene-..."),
    cache: Path = typer.Option(Path("cache"), help="where runs and the shared baseline live"),
    at: str = typer.Option("first", help="which emotion token's attention to store: first | answer | both"),
    max_new_tokens: int = typer.Option(16),
):
    """Run the benchmark under an intervention; print per-subset Acc/Rec/Avg/Correct with deltas vs the baseline."""
    grid = {k: v for k, v in {"tau": _values(tau, float, "--tau"), "alpha": _values(alpha, float, "--alpha"),
                              "k": _values(repeat, int, "--repeat"),
                              "layers": None if layers is None else [layers],
                              "gamma": None if gamma is None else [gamma],
                              "competitor": None if competitor is None else [competitor],
                              "checkpoint": None if checkpoint is None else [str(checkpoint)]}.items() if v}
    if checkpoint is not None and not checkpoint.exists():
        raise FileNotFoundError(f"--checkpoint {checkpoint} does not exist")
    bench = validate(model=model, at=at, subset=subset, data=data, limit=limit, batch_size=batch_size,
                     max_new_tokens=max_new_tokens, out=out)
    import modbias
    from modbias.benchmark_metrics import evaluation_table
    from modbias.intervening import build_interventions, sweep
    from modbias.report import intervention_table

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
                               max_new_tokens=max_new_tokens, at=at, progress=True, **params)
        console.print(intervention_table(ds.attrs["summary"], title=f"{ds.attrs.get('path', '')}"))
        if ds.attrs["summary"]["evaluation"]["table"] != "Table 1":  # Table 1 is the per-subset one above
            console.print(evaluation_table(ds.attrs["summary"]["evaluation"], title=f"{ds.attrs.get('path', '')}"))


@app.command("app")
def dashboard(
    cache: Path = typer.Option(Path("cache"), help="directory holding run stores"),
    port: int = typer.Option(8050),
    host: str = typer.Option("127.0.0.1", help="address to bind; another than 127.0.0.1 exposes the runs"),
):
    """Serve the Dash dashboard over every run in the cache (it never runs a model)."""
    if cache.exists() and not cache.is_dir():
        raise NotADirectoryError(f"--cache {cache} is not a directory")
    from modbias_app import serve

    console.print(f"modbias dashboard over {cache} on http://{host}:{port}")
    serve(cache, port, host=host)


@organism_app.command("train")
def organism_train(
    out: Path = typer.Option(None, help="weights directory; default: the package's shipped weights"),
    epochs: int = typer.Option(3),
    audio_repeat: int = typer.Option(1, help="copies of each audio token (App. C.2)"),
    seed: int = typer.Option(0),
):
    """Train the model organism on the synthetic training split (fixed seed, CPU)."""
    import time

    from modbias.models.organism import WEIGHTS_DIR
    from modbias.models.training import TrainConfig, train_organism

    start = time.time()
    model = train_organism(TrainConfig(epochs=epochs, audio_repeat=audio_repeat, seed=seed))
    model.save(out or WEIGHTS_DIR)
    console.print(f"saved organism to {out or WEIGHTS_DIR} after {time.time() - start:.0f} s")


@mose_app.command("train")
def mose_train(
    out: Path = typer.Option(Path("cache/mose-organism"), help="checkpoint directory"),
    model: str = typer.Option("organism", help="the frozen backbone (an organism)"),
    r: int = typer.Option(8, help="LoRA rank (paper: 64 at d=4096)"),
    n_experts: int = typer.Option(2, help="expansion matrices B per expert (paper: N=2)"),
    eps: float = typer.Option(0.1, help="routing bound of Eq. 3 (paper: 0.1)"),
    epochs: int = typer.Option(1),
    n_train: int = typer.Option(3000, help="training samples from the synthetic training split"),
    seed: int = typer.Option(0),
):
    """Fine-tune MoSE on a frozen organism; print trainable-parameter counts (Table 6/15 style)."""
    import time

    import modbias
    from modbias.interventions.mose import format_parameter_table
    from modbias.models.mose_training import train_mose

    use_device("cpu")
    adapter = modbias.load_model(model)
    start = time.time()
    train_mose(adapter, r=r, n_experts=n_experts, eps=eps, epochs=epochs, seed=seed, out=out, n_train=n_train)
    console.print(f"saved MoSE to {out} after {time.time() - start:.0f} s")
    console.print(format_parameter_table(adapter, r=r))


from modbias.cli_data import data_app  # noqa: E402
from modbias.cli_chair import chair as _chair  # noqa: E402
from modbias.cli_evaluate import evaluate as _evaluate  # noqa: E402
from modbias.cli_migr import consistency as _consistency, drift as _drift, mi as _mi  # noqa: E402

app.add_typer(data_app, name="data")
app.command("mi")(_mi)
app.command("drift")(_drift)
app.command("consistency")(_consistency)
app.command("evaluate")(_evaluate)
app.command("chair")(_chair)

if __name__ == "__main__":  # pragma: no cover
    main()
