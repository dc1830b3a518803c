"""Checkpoints as tensors + JSON, never a pickle: the one file format for every saved model.

A ``torch.load(weights_only=False)`` of a shared run folder runs whatever code the file names, so
synthmed stores models in ``safetensors`` (the format the field uses for shared weights): a JSON
header plus raw tensor bytes, which can hold data only. The nested state a model needs (config,
optimiser state, RNG states, training record) goes into the header's metadata as JSON, with every
tensor and numpy array replaced by a reference to a stored tensor:

    {"__tensor__": "t3"}                               a torch tensor (any dtype safetensors stores)
    {"__ndarray__": "t4", "dtype": "<u4", "shape": [624]}   a numeric numpy array (stored as its bytes)
    {"__tuple__": [...]}                               a tuple (JSON has lists only)
    {"__items__": [[key, value], ...]}                 a dict whose keys are not all plain strings

Writes are atomic (temp file + rename). Reading refuses, with one line, anything that is not such a
file of the expected ``kind``: a pickle (an old checkpoint or a crafted one), a truncated file, a
classifier where a generator is expected. The file names (``generator.pt``, ``checkpoint.pt``,
``classifier.pt``) are kept, so run folders keep their layout; the content is safetensors.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.errors import DataFormatError, DataNotFoundError

FORMAT = "synthmed-checkpoint/2"  # /1 was a torch pickle; it is never read
_TAGS = ("__tensor__", "__ndarray__", "__tuple__", "__items__")
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save zip archive; a raw pickle (protocol ≥ 2)


# -- encoding ---------------------------------------------------------------------------------------
class _Encoder:
    def __init__(self):
        self.tensors: dict[str, Any] = {}

    def _store(self, tensor) -> str:
        name = f"t{len(self.tensors)}"
        # a private contiguous copy: safetensors refuses views and tensors that share storage
        self.tensors[name] = tensor.detach().cpu().contiguous().clone()
        return name

    def encode(self, obj: Any) -> Any:
        import torch

        if isinstance(obj, torch.Tensor):
            return {"__tensor__": self._store(obj)}
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                raise TypeError("checkpoint: numpy arrays of Python objects cannot be stored as tensors")
            raw = torch.frombuffer(bytearray(np.ascontiguousarray(obj).tobytes()), dtype=torch.uint8)
            return {"__ndarray__": self._store(raw), "dtype": obj.dtype.str, "shape": list(obj.shape)}
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, tuple):
            return {"__tuple__": [self.encode(v) for v in obj]}
        if isinstance(obj, list):
            return [self.encode(v) for v in obj]
        if isinstance(obj, dict):
            if all(isinstance(k, str) and k not in _TAGS for k in obj):
                return {k: self.encode(v) for k, v in obj.items()}
            return {"__items__": [[self.encode(k), self.encode(v)] for k, v in obj.items()]}
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        raise TypeError(f"checkpoint: cannot store a {type(obj).__name__} (only tensors, arrays and JSON values)")


def _decode(obj: Any, tensors: dict[str, Any]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        raw = tensors[obj["__ndarray__"]]
        if raw is None:  # header-only read
            return None
        dtype = np.dtype(obj["dtype"])
        if dtype.hasobject:
            raise ValueError("object array")
        return np.frombuffer(raw.numpy().tobytes(), dtype=dtype).reshape(obj["shape"]).copy()
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


# -- files ------------------------------------------------------------------------------------------
def save_checkpoint_file(path: str | os.PathLike, tree: dict[str, Any], kind: str) -> Path:
    """Write ``tree`` (nested dicts/lists/tuples of tensors, numpy arrays and JSON values) to ``path``
    as safetensors, atomically. ``kind`` ("generator", "classifier") is checked again on load."""
    from safetensors.torch import save

    from synthmed.utils.io import write_bytes_atomic

    enc = _Encoder()
    header = json.dumps(enc.encode(tree))
    return write_bytes_atomic(path, save(enc.tensors, metadata={"format": FORMAT, "kind": kind, "tree": header}))


def _refusal(path: Path, kind: str, why: str) -> DataFormatError:
    return DataFormatError(f"{path.name} in {path.parent.name or '.'}/ is not a synthmed {kind} checkpoint ({why}); "
                           f"synthmed only reads the tensors-and-JSON files it writes itself — retrain or re-save it")


def _why_unreadable(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(_PICKLE_MAGIC):
        return "it is a pickle, which is never loaded because unpickling can run code"
    return "it is truncated or not a safetensors file"


def load_checkpoint_file(path: str | os.PathLike, kind: str, *, tensors: bool = True) -> dict[str, Any]:
    """Read a file written by ``save_checkpoint_file`` with the same ``kind``.

    With ``tensors=False`` only the header is read (tensor references become None): enough to see
    what a file holds (e.g. its generator family) without loading the weights.

    Raises:
        DataNotFoundError: no file at ``path``.
        DataFormatError: anything else than a complete synthmed checkpoint of this ``kind`` (one line).
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"no {kind} checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise _refusal(path, kind, f"format {meta.get('format')!r}, expected {FORMAT!r}")
            if meta.get("kind") != kind:
                raise _refusal(path, kind, f"it holds a {meta.get('kind')!r}")
            stored = {k: (f.get_tensor(k) if tensors else None) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except DataFormatError:
        raise
    except Exception:  # noqa: BLE001 — safetensors' header/size errors all mean "not a complete file"
        raise _refusal(path, kind, _why_unreadable(path)) from None
    try:
        tree = _decode(json.loads(meta["tree"]), stored)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _refusal(path, kind, "its JSON header is damaged") from None
    if not isinstance(tree, dict):
        raise _refusal(path, kind, "its JSON header is not an object")
    return tree
