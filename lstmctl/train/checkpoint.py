"""Checkpoints: atomic writes, safe loads (weights_only=True), RNG state as plain tensors and lists."""

from __future__ import annotations

import os
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmctl.errors import RunFailed, UserError

FORMAT = "lstmctl-checkpoint"
VERSION = 1


def rng_state() -> dict[str, Any]:
    """Every RNG the loop touches, as types that torch.load(weights_only=True) accepts."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),  # (int, tuple[int, ...], float | None)
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(obj: dict[str, Any], path: Path) -> None:
    """Write atomically: a temp file named with our pid, fsync, then rename over the real name.

    A process killed at any moment leaves either the previous checkpoint or the new one under the
    real name, never a half-written file. On failure the previous file is untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **obj}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise RunFailed(
            f"could not write checkpoint {path}: {e.strerror or e}; the previous checkpoint is kept"
        ) from e
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint without running any code from it; a damaged or foreign file is a UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint not found: {path} (the run has not saved one yet)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, TypeError, KeyError, AttributeError) as e:
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserError(f"checkpoint {path} is damaged, truncated or not safe to load ({reason})") from e
    except Exception as e:  # pickle.UnpicklingError and friends
        raise UserError(f"checkpoint {path} is damaged, truncated or not safe to load ({type(e).__name__})") from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UserError(f"{path} is not an lstmctl checkpoint")
    return obj
