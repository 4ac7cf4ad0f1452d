"""Untrusted files: checkpoints load with weights_only=True (a crafted pickle never runs), damaged or
foreign files are one clear line, YAML is read safely, and run ids are names, never paths."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from lstmctl import checkpoint as ckpt
from tests.conftest import REPO, run_lstmctl
from tests.robust_util import load_ckpt, only_run, run_info, write_cfg


class Payload:
    """Unpickling this calls open(marker, 'w'): a file appears if the pickle's code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_crafted(path: Path, marker: Path, kind: str) -> None:
    if kind == "torch-zip":  # what a tampered checkpoint looks like: torch's zip format, a payload inside
        torch.save({"format": ckpt.FORMAT, "epoch": 1, "model": Payload(marker)}, path)
    else:  # a bare pickle stream
        path.write_bytes(pickle.dumps({"format": ckpt.FORMAT, "model": Payload(marker)}, protocol=2))


def one_error_line(r, *needles):
    assert r.exit_code == 2, r.output
    lines = [l for l in r.output.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.output, r.output
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture
def trained(cli, write_config, runs_dir):
    cli("train", write_config({"train.epochs": 2}), "--quiet")  # saves once, at the end: no last.prev.pt
    return only_run(runs_dir)


@pytest.mark.parametrize("kind", ["torch-zip", "pickle"])
def test_crafted_checkpoint_does_not_run(cli, tmp_path, trained, kind):
    marker = tmp_path / "PWNED"
    best, last = trained / "checkpoints" / "best.pt", trained / "checkpoints" / "last.pt"
    write_crafted(tmp_path / "probe.pt", marker, kind)
    try:
        torch.load(tmp_path / "probe.pt", weights_only=False)  # the payload is real: an unsafe load runs it
    except RuntimeError:  # the bare pickle is no valid torch file, but its code ran before torch noticed
        pass
    assert marker.exists()
    marker.unlink()

    write_crafted(best, marker, kind)
    write_crafted(last, marker, kind)
    one_error_line(cli("eval", trained.name, ok=False), str(best), "not safe to load")
    one_error_line(cli("eval", trained.name, "--checkpoint", "last", ok=False), str(last), "not safe to load")
    one_error_line(cli("plot", trained.name, ok=False), str(best), "not safe to load")
    one_error_line(cli("resume", trained.name, "--epochs", "3", ok=False), str(last), "not safe to load")
    one_error_line(cli("resume", trained.name, "--from", "best", "--new-run", ok=False), str(best), "not safe to load")
    assert not marker.exists()
    assert run_info(trained)["status"] == "completed"


def test_crafted_last_falls_back_to_the_previous_checkpoint(cli, tmp_path, runs_dir):
    cli("train", write_cfg(tmp_path / "c.yaml", epochs=3), "--quiet")  # saves every epoch: last.prev.pt exists
    run = only_run(runs_dir)
    marker = tmp_path / "PWNED"
    write_crafted(run / "checkpoints" / "last.pt", marker, "torch-zip")
    r = cli("resume", run.name, "--epochs", "4", "--quiet")
    assert "last.pt is not safe to load" in r.output and "resuming from last.prev.pt" in r.output
    assert not marker.exists()
    assert load_ckpt(run / "checkpoints" / "last.pt")["epoch"] == 4


def test_everything_stored_loads_under_weights_only_without_allowlisting(cli, tmp_path, runs_dir):
    cli("train", write_cfg(tmp_path / "c.yaml", epochs=2), "--quiet")
    run = only_run(runs_dir)
    for name in ("last.pt", "last.prev.pt", "best.pt"):
        state = torch.load(run / "checkpoints" / name, map_location="cpu", weights_only=True)
        assert state["format"] == ckpt.FORMAT
    state = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert {"python", "numpy", "torch"} <= set(state["rng"])
    ckpt.set_rng_state(state["rng"])  # the RNG states come back usable
    # nothing was allowlisted to make that work (torch registers a few of its own classes itself)
    allowed = [g if isinstance(g, tuple) else getattr(g, "__module__", "") for g in torch.serialization.get_safe_globals()]
    assert all(isinstance(m, str) and m.startswith("torch.") for m in allowed), allowed
    sources = "\n".join(p.read_text() for p in (REPO / "lstmctl").rglob("*.py"))
    assert "add_safe_globals" not in sources and "weights_only=False" not in sources


def test_damaged_and_foreign_checkpoints_are_clear_errors(cli, tmp_path, trained, write_config):
    best = trained / "checkpoints" / "best.pt"
    good = best.read_bytes()
    cases = [
        (good[: len(good) // 2], "damaged, truncated or not safe to load"),
        (b"", "damaged, truncated or not safe to load"),
        (b"hello, I am a text file\n", "damaged, truncated or not safe to load"),
    ]
    for content, needle in cases:
        best.write_bytes(content)
        one_error_line(cli("eval", trained.name, ok=False), str(best), needle)
    torch.save({"weights": torch.ones(3)}, best)  # a torch file, but not one of ours
    one_error_line(cli("eval", trained.name, ok=False), "is not an lstmctl checkpoint")
    # an lstmctl checkpoint of another model
    cli("train", write_config({"train.epochs": 1, "model.hidden_size": 7}), "--quiet", "--runs-dir", tmp_path / "other")
    best.write_bytes((only_run(tmp_path / "other") / "checkpoints" / "best.pt").read_bytes())
    one_error_line(cli("eval", trained.name, ok=False), "does not fit the model")


def test_yaml_python_tags_are_rejected(cli, tmp_path):
    marker = tmp_path / "PWNED"
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(f"name: !!python/object/apply:builtins.open ['{marker}', 'w']\ndata: {{name: sine_cosine}}\nmodel: {{name: lstm}}\n")
    one_error_line(cli("train", cfg, ok=False), "evil.yaml", "invalid YAML")
    one_error_line(cli("config", "validate", cfg, ok=False), "invalid YAML")
    assert not marker.exists()


BAD_IDS = ["../../etc", "..", "a/b", "/etc/passwd", "x/../y", "run\\x", ".hidden"]


@pytest.mark.parametrize("command", ["eval", "plot", "resume", "show"])
def test_run_ids_are_names_not_paths(cli, trained, command):
    for ref in BAD_IDS:
        one_error_line(cli(command, ref, ok=False), "is not a run id")


def test_run_id_traversal_through_a_real_process(tmp_path):
    (tmp_path / "etc").mkdir()
    r = run_lstmctl("eval", "../../etc", "--runs-dir", tmp_path / "runs" / "x")
    assert r.returncode == 2 and "is not a run id" in r.stderr and "Traceback" not in r.stderr
