"""The ``modbias`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="Modality-bias interpretability for audio-visual emotion LLMs.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
organism_app = typer.Typer(help="The embedded model organism.", no_args_is_help=True)
app.add_typer(organism_app, name="organism")
console = Console()


def _threads(device: str) -> None:
    import torch

    if device == "cpu":
        torch.set_num_threads(min(torch.get_num_threads(), 2) or 1)


@app.command()
def trace(
    subset: str = typer.Option("all", help="video_aligned | audio_aligned | consistent | all"),
    model: str = typer.Option("organism", help="family[:path]; 'organism' is the shipped default"),
    data: str = typer.Option("synth", help="benchmark name"),
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
    import modbias
    from modbias.report import summary_table, trace_summary
    from modbias.tracing import run_name

    _threads(device)
    adapter = modbias.load_model(model, device=device)
    bench = modbias.load_benchmark(data, subset=subset, limit=limit)
    out = out or Path("cache") / run_name(adapter, subset)
    console.print(f"tracing {len(bench)} samples of {bench.name}/{subset} with {model} → {out}")
    ds = modbias.trace(adapter, bench, out=out, at=at, max_new_tokens=max_new_tokens, batch_size=batch_size,
                       save_rows=save_rows, tau=tau, show_progress=True)
    for position in ds.at.values.tolist():
        console.print(summary_table(trace_summary(ds, at=position),
                                    f"{out} — at the {position} emotion token (middle layers, tau={tau})"))


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


if __name__ == "__main__":  # pragma: no cover
    app()
