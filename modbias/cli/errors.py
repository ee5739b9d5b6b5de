"""The command line's one error path and its up-front checks.

:func:`main` runs the ``modbias`` command: a user error (bad option, unknown
family / method / subset, missing file, store mismatch, data problem, missing
optional package) ends as one line ``error: ...`` on stderr and a non-zero
exit; ``--debug`` (anywhere on the line) or ``MODBIAS_DEBUG=1`` re-raises it
with its traceback.  :func:`validate` checks a run command's options and
reads its benchmark before any model is loaded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

try:  # recent typer releases carry their own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer on click
    from click import exceptions as click_errors

# optional packages -> the pyproject extra that installs them
EXTRAS = {"av": "media", "PIL": "media", "selenium": "test", "nbclient": "test", "nbformat": "test",
          "kaleido": "app"}
USER_ERRORS = (ValueError, LookupError, OSError, ImportError, TimeoutError)
AT_CHOICES = ("first", "answer", "both")


def debugging() -> bool:
    """Whether ``MODBIAS_DEBUG`` asks for tracebacks instead of one-line errors."""
    return os.environ.get("MODBIAS_DEBUG", "") not in ("", "0")


def one_line(text: str) -> str:
    """``text`` with all whitespace runs folded to single spaces.

    Args:
        text: any object (``str()`` is taken).

    Returns:
        One line.
    """
    return " ".join(str(text).split())


def error_message(error: BaseException) -> str:
    """The one line shown for ``error`` (without the ``error:`` prefix).

    Args:
        error: the exception a command raised.

    Returns:
        The message (a hint to install for a missing optional package; "internal error" for a bug).
    """
    if isinstance(error, click_errors.UsageError):
        where = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
        return one_line(error.format_message()) + where
    if isinstance(error, ModuleNotFoundError) and error.name:
        package = error.name.split(".")[0]
        extra = EXTRAS.get(package)
        hint = f'pip install -e ".[{extra}]"' if extra else f"pip install {package}"
        return f"this command needs the package {package!r}, which is not installed: {hint}"
    if isinstance(error, KeyError) and error.args:
        return one_line(error.args[0])
    if isinstance(error, USER_ERRORS):
        return one_line(error)
    return (f"internal error {type(error).__name__}: {one_line(error)} "
            "(re-run with --debug for the traceback, and please report it)")


def main(argv: list[str] | None = None) -> None:
    """The ``modbias`` entry point (see the module doc); exits with the command's status.

    Args:
        argv: the arguments (default ``sys.argv[1:]``); ``--debug`` anywhere before ``--`` shows tracebacks.
    """
    from modbias.cli import app

    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args[: args.index("--") if "--" in args else len(args)]:
        args.remove("--debug")
        os.environ["MODBIAS_DEBUG"] = "1"
    command = typer.main.get_command(app)
    try:
        status = command.main(args=args, prog_name="modbias", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as help_:
        typer.echo(help_.format_message())
        status = 0
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        status = 1
    except Exception as error:  # noqa: BLE001 - the one place errors become a line
        if debugging():
            raise
        typer.echo(f"error: {error_message(error)}", err=True)
        status = error.exit_code if isinstance(error, click_errors.ClickException) else 1
    sys.exit(status if isinstance(status, int) else 0)


def use_device(device: str) -> None:
    """Check ``--device`` (a torch device this machine has) and, on the CPU, use at most 2 threads.

    Args:
        device: a torch device string.
    """
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError as err:
        raise typer.BadParameter(f"{device!r} is not a torch device ({err})", param_hint="--device") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter(f"{device!r}: this machine has no CUDA device (use cpu)", param_hint="--device")
    if kind == "cpu":
        torch.set_num_threads(min(torch.get_num_threads(), 2) or 1)


def choice(option: str, value: str, choices) -> str:
    """``value`` if it is one of ``choices``, else a ``BadParameter`` naming the option.

    Args:
        option: the option, e.g. ``"--at"``.
        value: the given value.
        choices: the allowed values.

    Returns:
        ``value``.
    """
    if value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}", param_hint=option)
    return value


def at_least(option: str, value: int | None, lowest: int = 1) -> None:
    """Refuse a number below ``lowest`` (``None`` passes).

    Args:
        option: the option, for the error.
        value: the given number.
        lowest: the smallest allowed.
    """
    if value is not None and value < lowest:
        raise typer.BadParameter(f"{value} is below {lowest}", param_hint=option)


def validate(*, model: str, data: str, subset: str, limit: int | None, batch_size: int, max_new_tokens: int,
             at: str | None = None, out: Path | None = None):
    """Check a run command's options and read its benchmark (validating every sample); returns the
    benchmark.  Imports neither torch nor xarray, so a mistake is reported at once.

    Args:
        model: ``--model`` (``family[:path]``).
        data: the benchmark name or path.
        subset: ``--subset``.
        limit: ``--limit``.
        batch_size: ``--batch-size``.
        max_new_tokens: ``--max-new-tokens``.
        at: ``--at`` (``None``: the command has none).
        out: ``--out``: must be a run store, an empty folder or absent.

    Returns:
        The :class:`~modbias.data.sample.Benchmark` (not empty).
    """
    from modbias.data import SUBSETS, load_benchmark
    from modbias.models import check_model_spec

    check_model_spec(model)
    if at is not None:
        choice("--at", at, AT_CHOICES)
    choice("--subset", subset, (*SUBSETS, "all"))
    at_least("--limit", limit)
    at_least("--batch-size", batch_size)
    at_least("--max-new-tokens", max_new_tokens)
    if out is not None and out.exists() and not (out / "modbias.json").exists() and any(out.iterdir()):
        raise FileExistsError(f"--out {out} exists and is not a modbias run store; choose another path")
    bench = load_benchmark(data, subset=subset, limit=limit)
    if not len(bench):
        raise ValueError(f"benchmark {bench.name!r} has no samples in subset {subset!r}")
    return bench
