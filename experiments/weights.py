"""A finished run's trained weights, kept beside its result (loaded back by :mod:`experiments.loading`).

A run that ends writes its final weights to ``<task>/<key[:16]>.safetensors``
beside its result (:func:`keep`), and the result names the file with its
size and SHA-256 (``result["weights"]``). safetensors holds tensors and
nothing else, so a planted file cannot run code when it is read.

The results folder is untrusted input: a weights file that is missing,
truncated, of another run (its hash is not the one the result names), of
another shape or dtype, a link out of the folder, a FIFO or a huge file is
refused with :class:`WeightsError`, one line naming the problem, and never
loaded (:func:`verify`). A result whose weights file is there but is not the
one it names is set aside by the cache, so a rerun trains the run again; a
result whose weights file is gone (deleted to save space) stays a result,
one with no model to load.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as save_tensors

from experiments import untrusted
from experiments.atomic import atomic_path

SUFFIX = ".safetensors"
MAX_BYTES = 2**31  # a ceiling no model of the profiles comes near (the full profile's largest is tens of MB)


class WeightsError(ValueError):
    """A run or its weights cannot be loaded: the message is one line naming the problem."""


def keep(checkpoint: Path, out: Path) -> dict[str, Any]:
    """Write the model weights of the training checkpoint ``checkpoint`` (the run's last state) to ``out`` in
    safetensors; returns what the result records of them: file name, bytes and SHA-256."""
    data = untrusted.read_bytes(checkpoint, root=checkpoint.parent, limit=MAX_BYTES)
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)["model"]
    # tied weights (the output head is the embedding) share storage, which safetensors refuses: one copy each
    payload = save_tensors({name: tensor.detach().clone().contiguous() for name, tensor in state.items()})
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(payload)
    return {"file": out.name, "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


def verify(result: dict[str, Any], path: Path, root: str | os.PathLike) -> bytes:
    """The bytes of the weights file ``path`` if it is the one ``result`` names; WeightsError otherwise."""
    named = result.get("weights")
    if not isinstance(named, dict) or not isinstance(named.get("sha256"), str):
        raise WeightsError(f"the result of {result.get('run_id', '?')} names no weights (it was trained before "
                           "weights were kept, or they were not written); rerun it with --force to keep them")
    size = named.get("bytes") if isinstance(named.get("bytes"), int) else MAX_BYTES
    try:  # read no more than the result says the file holds
        data = untrusted.read_bytes(path, root=root, limit=min(size, MAX_BYTES))
    except untrusted.Untrusted as error:
        raise WeightsError(f"weights {error}") from None
    if hashlib.sha256(data).hexdigest() != named["sha256"]:
        raise WeightsError(f"weights {path} are not the ones its result names (SHA-256 differs: truncated, "
                           "edited or another run's)")
    return data
