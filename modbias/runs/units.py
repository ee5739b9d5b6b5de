"""Work units: recording one unit's batches, and which units a shard runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # this module is read by the command line before anything heavy loads
    import xarray as xr

RecordBatch = Callable[[list], "xr.Dataset"]


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """Parse a ``--shard`` value.

    Args:
        text: ``"I/N"``, or ``None``.
    Returns:
        ``(I, N)`` with 0 ≤ I < N; ``None`` for ``None``.
    Raises:
        ValueError: not of the form ``I/N`` with 0 ≤ I < N.
    """
    if text is None:
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {text!r}: expected 0 <= I < N")
    return index, count


def in_shard(index: int, shard: tuple[int, int] | None) -> bool:
    """Whether a unit belongs to a shard: units are dealt round-robin.

    Args:
        index: the unit's index.
        shard: ``(i, n)``, or ``None`` (every unit).
    Returns:
        ``index % n == i``, or ``True`` without a shard.
    """
    return shard is None or index % shard[1] == shard[0]


def record_unit(record_batch: RecordBatch, samples: list, batch_size: int, advance=lambda n: None) -> xr.Dataset:
    """One unit's Dataset: ``record_batch`` over ``samples`` in batches of ``batch_size``, concatenated.

    Args:
        record_batch: ``list[Sample] -> Dataset`` (dims start with ``sample``).
        samples: the unit's samples, in order.
        batch_size: samples per ``record_batch`` call.
        advance: called with the number of samples after each batch (progress).
    Returns:
        The unit's samples along ``sample``.
    """
    import xarray as xr

    parts = []
    for start in range(0, len(samples), batch_size):
        parts.append(record_batch(samples[start:start + batch_size]))
        advance(parts[-1].sizes["sample"])
    return parts[0] if len(parts) == 1 else xr.concat(parts, dim="sample")
