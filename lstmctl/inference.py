"""Rebuild a run's dataset and model from its saved config, load a checkpoint, predict, score."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lstmctl import metrics
from lstmctl.config import Config
from lstmctl.data.base import DataBundle, Split
from lstmctl.errors import UserError
from lstmctl.experiment import build_bundle, build_model, load_data_state
from lstmctl.runs import RunDir
from lstmctl.train import checkpoint as ckpt
from lstmctl.train.loop import EVAL_BATCH, seed_everything


@dataclass
class LoadedRun:
    run: RunDir
    cfg: Config
    bundle: DataBundle
    model: torch.nn.Module
    checkpoint: str
    epoch: int


def open_run(run: RunDir, which: str = "best") -> LoadedRun:
    if which not in ("best", "last"):
        raise UserError(f"--checkpoint must be best or last, got {which!r}")
    cfg = run.load_config()
    path = run.checkpoint(which)
    if not path.exists():
        raise UserError(f"run {run.id} has no {which}.pt checkpoint yet; train it further or use lstmctl resume {run.id}")
    state = ckpt.load(path)
    seed_everything(cfg.seed)
    bundle = build_bundle(cfg, load_data_state(run.data_state))  # transform exactly as training did
    model = build_model(cfg, bundle)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as e:
        raise UserError(f"checkpoint {path} does not fit the model in {run.config_path}: {str(e).splitlines()[0]}") from e
    model.eval()
    return LoadedRun(run, cfg, bundle, model, which, int(state.get("epoch", 0)))


def predict(model: torch.nn.Module, x: torch.Tensor, stateful: bool = False) -> torch.Tensor:
    """Model outputs for a (N, T, F) tensor, batched, in eval mode, on CPU.

    Stateful runs read the chunks one after another, carrying the state, as one series.
    """
    model.eval()
    outs = []
    state = None
    step = 1 if stateful else EVAL_BATCH
    with torch.no_grad():
        for lo in range(0, x.shape[0], step):
            out, new_state = model(x[lo : lo + step], state)
            state = new_state if stateful else None
            outs.append(out)
    return torch.cat(outs) if outs else torch.zeros(0)


def score(loaded: LoadedRun, split_name: str) -> dict:
    split: Split = loaded.bundle.split(split_name)
    out = predict(loaded.model, split.x, loaded.cfg.train.stateful)
    task = loaded.bundle.task
    if task.classification:
        return metrics.classification(out, split.y, loaded.bundle.output_size)
    b = loaded.bundle
    naive = (b.meta.get("naive") or {}).get(split_name)
    if naive is not None:  # a forecast: report the naive last-value forecast and MASE beside the model
        return metrics.forecast(b.inverse_target(out), b.inverse_target(split.y), naive, b.meta.get("mase_scale"))
    result = metrics.regression(b.inverse_target(out), b.inverse_target(split.y))
    if b.meta.get("kind") == "inline" and out.shape[-1] == 1 and len(out) <= 10 and out.dim() == 2:
        # a handful of sequences written in the config: show each prediction beside its target
        names = b.meta["names"] if b.meta.get("test_is_train") and split_name != "val" else None
        pred, target = b.inverse_target(out), b.inverse_target(split.y)
        result["max_abs_error"] = float((pred - target).abs().max())
        for i, (p, t) in enumerate(zip(pred[:, 0].tolist(), target[:, 0].tolist())):
            label = names[i] if names and i < len(names) else f"#{i}"
            result[f"prediction {label} (target {t:g})"] = p
    return result
