"""DistributedDataParallel through torchrun: one process per device, PyTorch's own launcher and rendezvous.

    torchrun --nproc_per_node=N -m lstmctl train CONFIG      # what runs
    lstmctl train CONFIG --nproc N                            # shorthand: launches the line above

Under torchrun (RANK, WORLD_SIZE and LOCAL_RANK in the environment) `from_env` joins the process group
(gloo on CPU, nccl on CUDA with device cuda:LOCAL_RANK) and returns a `Dist` that the Trainer uses:
`wrap` the model in DDP, `mean` a float over the ranks, `agree` on a stop flag, `create_run` on rank 0
with the id broadcast to the others, `from_rank0` an epoch's validation values (computed on rank 0 only,
so every rank records and uses the same numbers). Only rank 0 writes the run directory; checkpoints hold the unwrapped
model's state dict, so a single-process `lstmctl eval` loads them. Multi-node runs use torchrun's own
flags (--nnodes, --node_rank, --rdzv_endpoint or --master_addr/--master_port); nothing here is home-made.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch
import torch.distributed as td
from torch.nn.parallel import DistributedDataParallel as DDP

from lstmctl import config as config_mod
from lstmctl.errors import ConfigError, UserError
from lstmctl.runs import RunDir, create_run

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
DUMP_ENV = "LSTMCTL_TEST_DUMP_DIR"  # tests: each rank saves its final weights (rank<N>.pt) and what it
# received from rank 0 and ended with (rank<N>.json: validation values per epoch, the summary) here


def under_torchrun() -> bool:
    return all(k in os.environ for k in ENV_KEYS)


def check_supported(cfg) -> None:
    """What DDP cannot do here, as one clear line each (raised before any process group exists)."""
    if cfg.train.stateful:
        raise ConfigError(
            "train.stateful: true cannot run under DDP (the carried state runs through the batches in order, "
            "which one process must see); train it in a single process (drop --nproc / torchrun)"
        )
    if cfg.device == "mps":
        raise ConfigError("device: mps has no DistributedDataParallel backend; use device: cpu or cuda under torchrun")


def launch(
    nproc: int,
    config: Path,
    sets: list[str] | None = None,
    runs_dir: Path | None = None,
    quiet: bool = False,
    json_out: bool = False,
    debug: bool = False,
) -> int:
    """`lstmctl train CONFIG --nproc N`: validate the config, then run torchrun's launcher on this node.

    Returns the launcher's exit code. Ctrl-C reaches the workers through the terminal's process group; this
    process only waits for them.
    """
    if under_torchrun():
        raise UserError("--nproc is for launching; this process already runs under torchrun (drop --nproc)")
    if nproc < 1:
        raise UserError(f"--nproc must be at least 1, got {nproc}")
    check_supported(config_mod.load(config, sets))  # config errors show here, once, before N processes start
    args = ["--standalone", "--nproc_per_node", str(nproc), "--module", "lstmctl"]
    args += (["--debug"] if debug else []) + ["train", str(config)]
    for s in sets or []:
        args += ["--set", s]
    if runs_dir is not None:
        args += ["--runs-dir", str(runs_dir)]
    if quiet:
        args.append("--quiet")
    if json_out:
        args.append("--json")
    # torchrun sets OMP_NUM_THREADS=1 (with a warning) when unset; share the cores out instead
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    # torchrun's own launcher, in this process: the same code as `python -m torch.distributed.run ARGS`,
    # without starting one more interpreter and importing torch once more
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    try:
        torchrun_main(args)
    except SignalException as e:  # Ctrl-C / SIGTERM: the launcher passed it on and waited for the workers to save
        return 130 if e.sigval == signal.SIGINT else 143
    except ChildFailedError as e:
        codes = [f.exitcode for f in e.failures.values()]
        return next((c for c in codes if c in (2, 130, 143)), codes[0] if codes else 1)
    return 0


def from_env(cfg):
    """A joined `Dist` when this process runs under torchrun, else None."""
    if not under_torchrun():
        return None
    check_supported(cfg)
    return Dist(cfg)


class Dist:
    """This process's place in the process group, and the few collectives the Trainer needs."""

    def __init__(self, cfg):
        self.rank = int(os.environ["RANK"])
        self.world_size = int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ["LOCAL_RANK"])
        want_cuda = cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
        if want_cuda:
            if not torch.cuda.is_available():
                raise UserError(f"device {cfg.device!r} asked for under torchrun but CUDA is not available; use device: cpu")
            if self.local_rank >= torch.cuda.device_count():
                raise UserError(
                    f"LOCAL_RANK {self.local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                    "lower --nproc_per_node to the number of GPUs"
                )
            self.device = torch.device("cuda", self.local_rank)  # one GPU per process, whatever cuda:N said
            torch.cuda.set_device(self.device)
            self.backend = "nccl"
        else:
            self.device = torch.device("cpu")
            self.backend = "gloo"
        kw = {"device_id": self.device} if self.backend == "nccl" else {}
        td.init_process_group(backend=self.backend, **kw)
        self._dump = os.environ.get(DUMP_ENV)
        self._seen: dict = {"validations": [], "summary": None}  # kept for the dump only
        if self.rank != 0:  # one copy of the human-facing output: rank 0's
            sys.stdout = open(os.devnull, "w")

    # -------------------------------------------------------------- the Trainer's interface
    def wrap(self, model):
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(model, device_ids=ids)  # rank 0's initial weights go to every rank

    def mean(self, value: float) -> float:
        """The mean of a float over the ranks (every rank gets the same number)."""
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        td.all_reduce(t)
        return float(t.item()) / self.world_size

    def agree(self, flag: bool) -> bool:
        """True on every rank if it is true on any: stop decisions must be taken together or ranks deadlock."""
        t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=self.device)
        td.all_reduce(t, op=td.ReduceOp.MAX)
        return bool(t.item())

    def from_rank0(self, values: dict | None) -> dict:
        """Rank 0's `values` (a dict of floats/None) on every rank, bit for bit; other ranks pass None.

        An epoch's validation pass runs on rank 0 alone (every rank holds the same weights): its loss and
        metrics reach the others through this, so best.pt, early stopping and the plateau schedule
        decide on identical numbers everywhere.
        """
        box = [values if self.rank == 0 else None]
        td.broadcast_object_list(box, src=0, device=self.device if self.backend == "nccl" else None)
        if self._dump:
            self._seen["validations"].append(box[0])
        return box[0]

    def ended(self, summary: dict) -> None:
        """The Trainer's summary on this rank (best epoch and value), kept for the test dump."""
        if self._dump:
            self._seen["summary"] = summary

    def create_run(self, name: str, runs_dir=None):
        """Rank 0 creates the run directory; every rank gets its id (an error on rank 0 stops them all)."""
        box: list = [None]
        if self.rank == 0:
            try:
                box[0] = ("ok", str(create_run(name, runs_dir).path))
            except UserError as e:
                box[0] = ("error", str(e))
        td.broadcast_object_list(box, src=0, device=self.device if self.backend == "nccl" else None)
        kind, text = box[0]
        if kind == "error":
            raise UserError(text)
        return RunDir(Path(text))

    def finish(self, model) -> None:
        """At the end of a run: for tests, dump this rank's final weights and what it saw (LSTMCTL_TEST_DUMP_DIR)."""
        out = os.environ.get(DUMP_ENV)
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, Path(out) / f"rank{self.rank}.pt")
            (Path(out) / f"rank{self.rank}.json").write_text(json.dumps(self._seen))

    def close(self) -> None:
        if td.is_initialized():
            td.destroy_process_group()
