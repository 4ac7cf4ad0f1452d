"""`lstmctl inspect`: the gates it draws are the real model's, for every family.

- the recurrence recomputed from a model's weights (lstmctl/inspection.py) gives the model's own
  h and c at every step, its own outputs and predictions (<= 1e-6), for lstm, lstm_cell (standard,
  peephole, coupled), stacked_lstm, bilstm, gru and rnn, PyTorch's layers and the hand-built ones;
- the gradient flow equals ‖∂L/∂h_t‖ taken through the model's own layers stepped one at a time;
- after a training of each family, `lstmctl inspect latest` writes non-blank figures and its JSON
  numbers match a direct computation; bad input is one line and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from matplotlib import image

import lstmctl.config  # noqa: F401  (registers the built-in families)
from lstmctl import load_run
from lstmctl.data.base import IGNORE_INDEX, Task
from lstmctl.errors import UserError
from lstmctl.inspection import GATES, SIGMOID, cells_of, trace
from lstmctl.inspection_stats import LOW, HIGH, gradient_flow, inspect_opened
from lstmctl.models.base import SequenceModel
from lstmctl.models.stacked import StackedLSTM
from lstmctl.plots.inspect import plot_gate_means, plot_saturation
from lstmctl.registry import MODELS
from lstmctl.runs import find_run
from lstmctl.session import open_run
from tests.conftest import Cli

TOL = 1e-6


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are tiny: a second thread only adds synchronisation (several times slower on a
    busy machine), so each test here runs on one and gives the process back its setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

MODELS_TO_CHECK = {
    "lstm": {"name": "lstm", "num_layers": 2},
    "lstm_cell-standard": {"name": "lstm_cell", "num_layers": 2},
    "lstm_cell-standard-bi": {"name": "lstm_cell", "bidirectional": True},
    "lstm_cell-peephole": {"name": "lstm_cell", "variant": "peephole", "num_layers": 2, "bidirectional": True},
    "lstm_cell-coupled": {"name": "lstm_cell", "variant": "coupled", "num_layers": 2},
    "stacked_lstm-torch": {"name": "stacked_lstm", "hidden_sizes": [5, 3]},
    "stacked_lstm-hand": {"name": "stacked_lstm", "hidden_sizes": [4, 6], "cell": "hand"},
    "bilstm": {"name": "bilstm", "num_layers": 2},
    "bilstm-hand": {"name": "bilstm", "cell": "hand"},
    "gru": {"name": "gru", "num_layers": 2},
    "gru-hand-bi": {"name": "gru", "cell": "hand", "bidirectional": True},
    "rnn": {"name": "rnn", "num_layers": 2},
    "rnn-relu-bi": {"name": "rnn", "nonlinearity": "relu", "bidirectional": True},
}


def build(spec: dict, task: Task, input_size: int = 3, output_size: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    entry = MODELS.get(spec["name"])
    params = entry.parse({"hidden_size": 5, **({"forget_bias": 1.0} if "lstm" in spec["name"] else {}), **spec})
    return entry.builder(params, input_size, output_size, task).eval()


def own_finals(model, x) -> dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor | None]]:
    """The model's own final (h, c) per layer and direction, from its backbone."""
    with torch.no_grad():
        _, state = model.backbone(x)
    if isinstance(model.backbone, StackedLSTM):
        h, c = [s[0][0] for s in state], [s[1][0] for s in state]
    elif isinstance(state, tuple):
        h, c = list(state[0]), list(state[1])
    else:
        h, c = list(state), None
    cells = [cell for layer in cells_of(model) for cell in layer]
    return {(cell.layer, cell.direction): (h[i], None if c is None else c[i]) for i, cell in enumerate(cells)}


def close(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


@pytest.mark.parametrize("task", [Task.REGRESSION_SEQ, Task.REGRESSION_STEP])
@pytest.mark.parametrize("family", MODELS_TO_CHECK)
def test_recomputed_states_are_the_models_own(family, task):
    """Every h_t and c_t, the outputs and the prediction equal the model's (<= 1e-6)."""
    model = build(MODELS_TO_CHECK[family], task)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 7, 3, generator=torch.Generator().manual_seed(1))
    tr = trace(model, x)
    with torch.no_grad():
        pred, _ = model(x)
        out, _ = model.backbone(x)
    assert close(tr.prediction, pred) <= TOL
    assert close(tr.output, out) <= TOL
    cells = [c for layer in tr.cells for c in layer]
    has_c = "cell" in cells[0].gates
    for i, (key, (h, c)) in enumerate(own_finals(model, x).items()):
        assert close(tr.final("hidden")[i], h) <= TOL, key
        if has_c:
            assert close(tr.final("cell")[i], c) <= TOL, key
    # every step: the model run on a prefix (forward) or a suffix (backward) of x ends in the state
    # the trace holds at that step (layer 0, and every layer of a one-directional model)
    T = x.shape[1]
    for t in range(1, T + 1):
        prefix, suffix = own_finals(model, x[:, :t]), own_finals(model, x[:, T - t :])
        for cell in cells:
            if cell.layer > 0 and len(tr.cells[0]) == 2:
                continue  # a deeper layer of a bidirectional model reads the whole sequence: the output above covers it
            backward = cell.direction == "backward"
            h, c = (suffix if backward else prefix)[(cell.layer, cell.direction)]
            step = T - t if backward else t - 1
            assert close(tr.values[(cell.layer, cell.direction, "hidden")][:, step], h) <= TOL, (cell, t)
            if has_c:
                assert close(tr.values[(cell.layer, cell.direction, "cell")][:, step], c) <= TOL, (cell, t)
    assert set(k[2] for k in tr.values) == set(cells[0].gates)
    for k, v in tr.values.items():  # gates of a sigmoid are in (0, 1)
        if k[2] in SIGMOID:
            assert 0 <= float(v.min()) and float(v.max()) <= 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the model was modified"
    assert all(p.grad is None for p in model.parameters())


def unrolled_grad_norms(model, x, y, loss_fn) -> np.ndarray:
    """‖∂L/∂h_t‖ with the model's own (one-layer, one-direction) backbone stepped one step at a
    time, each step's output fed back as the next step's h: independent of lstmctl.inspection."""
    state, hs = None, []
    for t in range(x.shape[1]):
        out, state = model.backbone(x[:, t : t + 1], state)
        h = out[:, 0]
        hs.append(h)
        state = (h.unsqueeze(0), state[1]) if isinstance(state, tuple) else h.unsqueeze(0)
    seq = torch.stack(hs, 1)
    loss = loss_fn(model.head(seq) if model.per_step else model.head(seq[:, -1]), y)
    return np.array([float(g.norm()) for g in torch.autograd.grad(loss, hs)])


ONE_LAYER = {"lstm": {"name": "lstm"}, "lstm_cell-standard": {"name": "lstm_cell"},
             "lstm_cell-peephole": {"name": "lstm_cell", "variant": "peephole"},
             "lstm_cell-coupled": {"name": "lstm_cell", "variant": "coupled"},
             "gru": {"name": "gru"}, "gru-hand": {"name": "gru", "cell": "hand"}, "rnn": {"name": "rnn"}}


@pytest.mark.parametrize("task", [Task.REGRESSION_SEQ, Task.REGRESSION_STEP])
@pytest.mark.parametrize("family", ONE_LAYER)
def test_gradient_flow_is_the_models_own(family, task):
    model = build(ONE_LAYER[family], task)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 9, 3, generator=g)
    y = torch.randn(4, 9, 2, generator=g) if task.per_step else torch.randn(4, 2, generator=g)
    loss_fn = torch.nn.MSELoss()
    _, got = gradient_flow(trace(model, x, grad=True), loss_fn, y)
    (norms,) = got.values()
    want = unrolled_grad_norms(model, x, y, loss_fn)
    np.testing.assert_allclose(norms, want, rtol=1e-4, atol=1e-9)
    assert all(p.grad is None for p in model.parameters())


def test_a_model_without_known_recurrent_layers_is_refused():
    model = SequenceModel(torch.nn.Identity(), 3, 1, Task.REGRESSION_SEQ, bidirectional=False)
    with pytest.raises(UserError, match="no gates"):
        cells_of(model)
    with pytest.raises(UserError, match="backbone and a head"):
        cells_of(torch.nn.Linear(2, 2))


# ---------------------------------------------------------------- after a training, through the CLI

BASE = {"name": "tiny", "seed": 0, "device": "cpu", "train": {"epochs": 2, "batch_size": 16, "lr": 0.01}}
ADDING = {"name": "adding", "length": 12, "n_train": 48, "n_test": 20}
COPY = {"name": "copy", "symbols": 3, "copy_length": 2, "delay": 3, "n_train": 48, "n_test": 20}
SINE = {"name": "sine_cosine", "points": 40, "seq_len": 10}
RUNS = {  # a training per family (lstm_cell's variants: their equations are checked above)
    "lstm": (ADDING, {"name": "lstm", "hidden_size": 6}),
    "lstm_cell": (COPY, {"name": "lstm_cell", "variant": "coupled", "hidden_size": 5}),
    "stacked_lstm": (SINE, {"name": "stacked_lstm", "hidden_sizes": [5, 3]}),
    "bilstm": (ADDING, {"name": "bilstm", "hidden_size": 4}),
    "gru": (COPY, {"name": "gru", "hidden_size": 6}),
    "rnn": (ADDING, {"name": "rnn", "hidden_size": 6}),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """trained(family) -> the runs directory holding one tiny run of it (trained once per module)."""
    done: dict[str, Path] = {}
    cli = Cli()

    def get(family: str) -> Path:
        if family not in done:
            folder = tmp_path_factory.mktemp(family)
            data, model = RUNS[family]
            (folder / "cfg.yaml").write_text(yaml.safe_dump({**BASE, "data": data, "model": model}))
            cli("train", folder / "cfg.yaml", "--quiet", "--runs-dir", folder / "runs")
            done[family] = folder / "runs"
        return done[family]

    return get


def direct_r(unit: np.ndarray, target: np.ndarray, valid: np.ndarray) -> float:
    """A unit (N, T) against the target: with 8 sequences or more, the correlation across the
    sequences at each step where both vary, averaged over the steps; else pooled over all pairs."""
    if len(unit) < 8:
        return np.corrcoef(unit[valid], target[valid])[0, 1]
    rs = []
    for t in range(unit.shape[1]):
        a, b = unit[valid[:, t], t].astype(float), target[valid[:, t], t]
        if len(a) >= 2 and ((a - a.mean()) ** 2).sum() * ((b - b.mean()) ** 2).sum() > 1e-24:  # both vary
            rs.append(np.corrcoef(a, b)[0, 1])
    return float(np.mean(rs))


def non_blank(path) -> bool:
    pixels = image.imread(str(path))[..., :3]
    return pixels.std() > 0.05 and (pixels.min(axis=-1) < 0.9).mean() > 0.01


def direct_target(data, split, channel: int) -> tuple[np.ndarray, np.ndarray]:
    """The quantity a unit follows, computed here from the raw split: (N, T) values and where defined."""
    x, y = split.x.numpy(), split.y.numpy()
    if data["name"] == "adding":
        return np.cumsum(x[..., 0] * x[..., 1], axis=1), np.ones(x.shape[:2], bool)
    if data["name"] == "copy":
        return (y == channel).astype(float), y != IGNORE_INDEX
    return y[..., channel], np.ones(x.shape[:2], bool)


@pytest.mark.parametrize("family", RUNS)
def test_inspect_after_training(family, cli, trained):
    runs = trained(family)
    data = RUNS[family][0]
    got = json.loads(cli("inspect", "latest", "--json", "--runs-dir", runs).stdout)
    opened = open_run(find_run("latest", runs))
    cells = [c for layer in cells_of(opened.model) for c in layer]
    gated = any(g in SIGMOID for c in cells for g in c.gates)

    # the figures: one heatmap file per layer and direction, the others when the model has what they draw
    names = {f"inspect-gates-l{c.layer}{'' if c.direction == 'forward' else '-backward'}.png" for c in cells}
    names |= {"inspect-gradient.png", "inspect-units.png"}
    names |= {"inspect-gate-means.png", "inspect-saturation.png"} if gated else set()
    assert {p.rsplit("/", 1)[-1] for p in got["figures"]} == names
    for path in got["figures"]:
        assert non_blank(path), path

    # the numbers, computed directly on the same batch
    batch = opened.data.test.take(slice(0, got["batch"]))
    assert got["batch"] == len(opened.data.test) and got["split"] == "test" and got["sample"] == 0
    tr = trace(opened.model, batch.x)
    rows = {(r["layer"], r["direction"], r["gate"]): r for r in got["saturation"]}
    assert set(rows) == {(c.layer, c.direction, g) for c in cells for g in c.gates if g in SIGMOID}
    for key, row in rows.items():
        v = tr.values[key].numpy()
        assert row["low"] == pytest.approx((v < LOW).mean(), abs=1e-12)
        assert row["high"] == pytest.approx((v > HIGH).mean(), abs=1e-12)
        assert row["mean"] == pytest.approx(v.mean(), abs=1e-6)
    flows = {(r["layer"], r["direction"]): r for r in got["gradient_flow"]}
    assert set(flows) == {(c.layer, c.direction) for c in cells}
    for r in flows.values():
        assert len(r["norms"]) == batch.x.shape[1] and r["first"] == r["norms"][0] and r["last"] == r["norms"][-1]
        assert all(v >= 0 for v in r["norms"]) and r["last"] > 0
    if len(cells) == 1:  # one layer, one direction: the model's own layer stepped by hand
        loss_fn = torch.nn.MSELoss() if not opened.data.task.classification else _ce
        want = unrolled_grad_norms(opened.model, batch.x, batch.y, loss_fn)
        np.testing.assert_allclose(flows[(0, "forward")]["norms"], want, rtol=1e-4, atol=1e-10)
    assert got["units"], "no unit follows the target"
    for u in got["units"]:
        target, valid = direct_target(data, batch, u["channel"])
        unit = tr.values[(u["layer"], u["direction"], u["state"])][..., u["unit"]].numpy()
        assert u["r"] == pytest.approx(direct_r(unit, target, valid), abs=1e-6)
        assert u["measured"] == ("per step, across sequences" if len(unit) >= 8 else "pooled over steps")
    assert abs(got["units"][0]["r"]) >= abs(got["units"][-1]["r"])

    if not gated:  # a figure that needs gates, asked of a model that has none: one line
        insp = inspect_opened(opened)
        for draw in (plot_gate_means, plot_saturation):
            with pytest.raises(UserError, match="needs gates"):
                draw(opened, insp, opened.run.plots, "png")


def _ce(out, y):
    return torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), ignore_index=IGNORE_INDEX)


def one_error_line(r, *needles):
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.output, r.output
    for n in needles:
        assert n in r.output, (n, r.output)


def test_options_table_and_bad_input(cli, trained):
    runs = trained("lstm")
    r = cli("inspect", "latest", "--sample", "3", "--split", "train", "--checkpoint", "last", "--format", "svg",
            "--runs-dir", runs)
    (run,) = runs.iterdir()
    printed = [line for line in r.stdout.splitlines() if line.endswith(".svg")]
    assert printed and all(p.startswith(str(run / "plots")) for p in printed)
    assert (run / "plots" / "inspect-gradient.svg").read_text().lstrip().startswith("<?xml")
    assert "gate saturation" in r.stdout and "gradient flow" in r.stdout and "running sum" in r.stdout

    def fails(*args, needles=()):
        one_error_line(cli("inspect", "latest", *args, "--runs-dir", runs, ok=False), *needles)

    fails("--sample", "20", needles=("--sample 20", "0 to 19"))  # the test split has 20 sequences
    fails("--sample", "-1", needles=("out of range",))
    fails("--split", "val", needles=("no 'val' split",))
    fails("--split", "dev", needles=("--split",))
    fails("--format", "gif", needles=("--format",))
    fails("--checkpoint", "first", needles=("--checkpoint",))

    # the Python API: per-gate arrays keyed (layer, direction, gate)
    api = load_run("latest", runs_dir=str(runs))
    x = api.data.test.x[0].numpy()
    arrays = api.inspect(x)
    assert set(arrays) == {(0, "forward", g) for g in GATES["lstm"]}
    assert arrays[(0, "forward", "forget")].shape == (12, 6)
    with torch.no_grad():
        _, (h_n, c_n) = api.model.backbone(torch.as_tensor(x)[None])
    assert np.abs(arrays[(0, "forward", "hidden")][-1] - h_n[0, 0].numpy()).max() <= TOL
    assert np.abs(arrays[(0, "forward", "cell")][-1] - c_n[0, 0].numpy()).max() <= TOL
    assert api.inspect(api.data.test.x[:3].numpy())[(0, "forward", "input")].shape == (3, 12, 6)
    with pytest.raises(UserError, match="shaped"):
        api.inspect(np.zeros((12, 5)))
