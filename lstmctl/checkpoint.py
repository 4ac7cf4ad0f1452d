"""Checkpoints: atomic writes, safe loads (weights_only=True), RNG state as plain tensors and lists."""

from __future__ import annotations

import os
import pickle
import random
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


def save(obj: dict[str, Any], path: Path, *, keep_previous: bool = False) -> None:
    """Write atomically: a temp file named with our pid, fsync, then rename over the real name.

    A process killed at any moment leaves either the previous checkpoint or the new one under the
    real name, never a half-written file. On failure the previous file is untouched.
    keep_previous: before the rename, the file being replaced is kept as `<name>.prev.pt` (a hard
    link, so there is no moment without a complete file under either name); resume falls back to
    it when the newer one cannot be read.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **obj}, f)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.exists():
            _keep_previous(path)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch's zip writer reports a full disk as RuntimeError
        try:
            tmp.unlink()
        except OSError:
            pass
        reason = getattr(e, "strerror", None) or str(e).strip().splitlines()[-1][:160] or type(e).__name__
        raise RunFailed(f"could not write checkpoint {path}: {reason}; the previous checkpoint is kept") from e
    _fsync_dir(path.parent)  # make the rename itself durable


def previous(path: Path) -> Path:
    """`last.pt` -> `last.prev.pt`."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _keep_previous(path: Path) -> None:
    prev = previous(path)
    link_tmp = prev.with_name(f".{prev.name}.{os.getpid()}.tmp")
    try:
        link_tmp.unlink(missing_ok=True)
        os.link(path, link_tmp)  # hard link: the old file stays under its real name until replaced
        os.replace(link_tmp, prev)
    except OSError:  # a file system without hard links: do without the fallback copy
        try:
            link_tmp.unlink(missing_ok=True)
        except OSError:
            pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def remove_stale_temp_files(folder: Path, keep_pid: int | None = None) -> list[Path]:
    """Delete `.<name>.<pid>.tmp` files left by killed writers (call while holding the run's lock)."""
    removed = []
    if not Path(folder).is_dir():
        return removed
    for f in Path(folder).glob(".*.tmp"):
        parts = f.name.rsplit(".", 2)
        if len(parts) == 3 and parts[1].isdigit() and int(parts[1]) != (keep_pid or os.getpid()):
            try:
                f.unlink()
                removed.append(f)
            except OSError:
                pass
    return removed


def _first_sentence(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = text.split(". ")[0].rstrip(".")
    return (text[:160] or type(e).__name__) if text else type(e).__name__


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint without running any code from it; a damaged or foreign file is a UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint not found: {path} (the run has not saved one yet)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower() or "weights_only" in str(e):
            raise UserError(
                f"checkpoint {path} is not safe to load: it asks to run code or build objects that lstmctl "
                "checkpoints never contain (refused; nothing in it was run)"
            ) from e
        raise UserError(f"checkpoint {path} is damaged, truncated or not safe to load ({_first_sentence(e)})") from e
    except Exception as e:  # RuntimeError (zip reader), EOFError, BadZipFile, ValueError, OSError, ...
        raise UserError(f"checkpoint {path} is damaged, truncated or not safe to load ({_first_sentence(e)})") from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UserError(f"{path} is not an lstmctl checkpoint")
    return obj
