"""Shared fixtures: tiny random configs of real architectures, and the shipped organism."""

from __future__ import annotations

import pytest
import torch
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

import modbias
from analyses.browser import CHROMIUM, DRIVER, console_errors, dashboard, load

ARCHITECTURES = {
    "llama": (LlamaForCausalLM, LlamaConfig),
    "qwen2": (Qwen2ForCausalLM, Qwen2Config),
    "mistral": (MistralForCausalLM, MistralConfig),
}


def tiny_causal_lm(arch: str, n_kv_heads: int = 2, seed: int = 0):
    """A random 2-layer model of a real architecture (GQA when n_kv_heads < 4)."""
    cls, config_cls = ARCHITECTURES[arch]
    torch.manual_seed(seed)
    config = config_cls(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=n_kv_heads, max_position_embeddings=128)
    return cls(config).eval()


def left_padded_batch(lengths: list[int], vocab: int = 64, seed: int = 0):
    """Random ids, an attention mask with left padding, and mask-aware position ids."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(1, vocab, (len(lengths), width), generator=gen)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, width - n:] = 1
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine, 2 threads spin against other work (~10x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Killed(Exception):
    """Stands for a kill: raised by a batch function patched with :func:`interrupt`."""


@pytest.fixture
def interrupt(monkeypatch):
    """``interrupt(module, "trace_batch", after=2)``: the module's batch function raises :class:`Killed` from
    its ``after + 1``-th call on, as if the run were killed there (committed batches stay)."""
    def patch(module, name: str, after: int):
        real, calls = getattr(module, name), []

        def batch(*args, **kwargs):
            calls.append(1)
            if len(calls) > after:
                raise Killed(f"killed before batch {len(calls)}")
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, batch)
        return lambda: monkeypatch.setattr(module, name, real)  # undo: the run may resume

    return patch


@pytest.fixture(scope="session")
def organism():
    return modbias.load_model("organism")


@pytest.fixture(scope="session")
def small_bench():
    return modbias.load_benchmark("synth", subset="all", limit=6)


# -- the dashboard in headless Chromium (tests/test_app*.py) ---------------------------------------
browser = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                             reason="headless Chromium not installed (apt-get install -y chromium chromium-driver)")


@pytest.fixture(scope="module")
def driver(cache):
    """Chromium on the dashboard serving the test module's own ``cache`` fixture of run stores."""
    with dashboard(cache) as chrome:
        yield chrome


@pytest.fixture
def page(driver):
    """A freshly loaded dashboard (state from earlier tests is gone); afterwards, no errors in the console."""
    console_errors(driver)
    load(driver)
    yield driver
    assert console_errors(driver) == []
