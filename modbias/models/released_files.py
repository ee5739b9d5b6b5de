"""Reading released checkpoint folders as they are on disk: one clear error per missing piece.

Shared by the ``emotion_llama`` and ``r1_omni`` families: an optional
``modbias_<family>.json`` beside the weights points to files kept elsewhere
(paths relative to the folder), :class:`TensorFile` reads named tensors
lazily from ``.safetensors`` files (single or sharded with an index) and
:func:`fingerprint` identifies a checkpoint part by content for run identities without hashing gigabytes.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

from modbias.core.fingerprint import folder_fingerprint


class CheckpointError(ValueError):
    """A released checkpoint that does not have what the loader needs: names the file and the key."""

    def __init__(self, file, problem: str):
        super().__init__(f"{file}: {problem}")
        self.file = str(file)


def options_of(folder: Path, name: str) -> dict:
    """``folder/name`` as a dict (``{}`` when absent); a broken file is a :class:`CheckpointError`.

    Args:
        folder: the checkpoint folder.
        name: the options file's name (e.g. ``modbias_r1_omni.json``).

    Returns:
        The options.
    """
    file = folder / name
    if not file.exists():
        return {}
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(file, f"not valid JSON ({err})") from err


def resolve(folder: Path, value, what: str, key: str, config_file: str) -> Path:
    """A path named by option ``key`` (relative to ``folder``), which must exist.

    Args:
        folder: the checkpoint folder.
        value: the option's value (absolute, relative to ``folder``, or ``~``-prefixed).
        what: what the path is, for the error.
        key: the option's name, for the error.
        config_file: the options file's name, for the error.

    Returns:
        The existing path.
    """
    path = Path(value).expanduser()
    path = path if path.is_absolute() else folder / path
    if not path.exists():
        raise CheckpointError(path, f"{what} not found (set {key!r} in {folder / config_file})")
    return path


DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def torch_dtype(value, source):
    """``"auto"`` (the checkpoint's own dtype), a ``torch.dtype``, or one of :data:`DTYPES` by name.

    Args:
        value: ``"auto"``, a dtype name or a ``torch.dtype``.
        source: the file the value came from, for errors.

    Returns:
        ``"auto"`` or a ``torch.dtype``.
    """
    if not isinstance(value, str) or value == "auto":
        return value
    if value not in DTYPES:
        raise CheckpointError(source, f"dtype {value!r}: expected auto or one of {sorted(DTYPES)}")
    return DTYPES[value]


def fingerprint(path) -> dict:
    """Where a checkpoint part lies and the content fingerprint of its files, for run identities.

    Args:
        path: a file or a folder (its files, not subfolders: :func:`modbias.core.fingerprint.folder_fingerprint`).

    Returns:
        ``{"path": resolved path, "files": {name: "<bytes>:<sha1>"}}``.
    """
    path = Path(path)
    return {"path": str(path.resolve()), "files": folder_fingerprint(path)}


class TensorFile:
    """Tensors of a safetensors checkpoint (``model.safetensors`` or a sharded ``*.index.json``), read lazily."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        index = sorted(self.folder.glob("*.safetensors.index.json"))
        if index:
            self.source = index[0]
            weight_map = json.loads(index[0].read_text())["weight_map"]
            self.files = {key: self.folder / name for key, name in weight_map.items()}
            for file in set(self.files.values()):
                if not file.exists():
                    raise CheckpointError(file, f"shard listed in {index[0].name} is missing")
        else:
            found = sorted(self.folder.glob("*.safetensors"))
            if not found:
                raise CheckpointError(self.folder, "no *.safetensors weights in the checkpoint folder")
            from safetensors import safe_open

            self.source = found[0] if len(found) == 1 else self.folder
            self.files = {}
            for file in found:
                with safe_open(file, "pt") as f:
                    self.files.update({key: file for key in f.keys()})

    def keys(self) -> list[str]:
        """Every tensor name in the checkpoint."""
        return list(self.files)

    def with_prefix(self, prefix: str, required: bool = True) -> dict[str, torch.Tensor]:
        """``{key without prefix: tensor}`` of every key starting with ``prefix``.

        Args:
            prefix: the key prefix, e.g. ``"model.mm_projector."``.
            required: raise :class:`CheckpointError` when no key has the prefix.

        Returns:
            The tensors, read from their shards.
        """
        from safetensors import safe_open

        keys = [k for k in self.files if k.startswith(prefix)]
        if required and not keys:
            raise CheckpointError(self.source, f"no tensors under {prefix!r}")
        out = {}
        for file in {self.files[k] for k in keys}:
            with safe_open(file, "pt") as f:
                out.update({k[len(prefix):]: f.get_tensor(k) for k in keys if self.files[k] == file})
        return out


def load_exactly(module: torch.nn.Module, state: dict, source, prefix: str = "") -> None:
    """``module.load_state_dict(state)``, with a missing, unexpected or mis-shaped key reported as one
    :class:`CheckpointError` naming the file and the full key.

    Args:
        module: the module to fill (tensors cast to its dtypes).
        state: ``{key: tensor}`` relative to ``module``.
        source: the file, for errors.
        prefix: the keys' prefix in the file, for errors.
    """
    own = module.state_dict()
    for key, value in own.items():
        if key not in state:
            raise CheckpointError(source, f"missing key {prefix + key!r}")
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(source, f"key {prefix + key!r} has shape {tuple(state[key].shape)}, "
                                          f"expected {tuple(value.shape)}")
    extra = sorted(set(state) - set(own))
    if extra:
        raise CheckpointError(source, f"unexpected key {prefix + extra[0]!r}")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


@contextlib.contextmanager
def quiet_loading():
    """transformers' load reports off: the towers are loaded from checkpoints with parts they do not use
    (Whisper's decoder, SigLIP's text model) by design; the keys modbias needs are checked by modbias."""
    from transformers.utils import logging

    previous = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(previous)
