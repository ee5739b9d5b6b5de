"""The one place that knows how the installed transformers names the KV cache.

transformers 5.24 renamed the forward keyword and output field ``past_key_values``
to ``cache`` (the old name still works there, with a deprecation warning, until 5.40).
Code that passes or reads a cache goes through these helpers, so it is correct on
every release ``pyproject.toml`` allows.
"""

from __future__ import annotations

import transformers
from packaging.version import Version

CACHE_KEYWORD = "cache" if Version(transformers.__version__).release >= (5, 24) else "past_key_values"


def with_cache(cache) -> dict:
    """Forward keyword arguments passing ``cache``: ``{CACHE_KEYWORD: cache}``.

    Args:
        cache: a transformers KV cache (or ``None``).

    Returns:
        A one-entry dict to splat into ``forward`` or ``generate``.
    """
    return {CACHE_KEYWORD: cache}


def output_cache(output):
    """The KV cache a forward or ``generate`` returned (``None`` if it kept none).

    Args:
        output: a model output (``ModelOutput`` or ``GenerateOutput``).
    """
    return getattr(output, CACHE_KEYWORD, None)


def forward_cache(kwargs: dict):
    """The KV cache among a forward's keyword arguments (as a module pre-hook sees them).

    Args:
        kwargs: the forward's keyword arguments.

    Returns:
        The cache, or ``None``.
    """
    return kwargs.get(CACHE_KEYWORD)


def crop_cache(cache, length: int) -> None:
    """Keep the first ``length`` positions of a KV cache (a negative count to drop is the form
    every release accepts; 5.24 refuses a positive target length).

    Args:
        cache: a transformers ``DynamicCache`` (changed in place).
        length: positions to keep.
    """
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)
