"""Every model family: builds from the registry, accepts sin2cos's model block, trains the
sine->cosine experiment to test MSE < 1e-3 through the real CLI, and behaves as documented."""

from __future__ import annotations

import json

import pytest
import torch

from lstmctl import config, load_run
from lstmctl.data.base import Task
from lstmctl.models.base import count_parameters
from lstmctl.registry import MODELS

from conftest import CONFIGS

SIN2COS = str(CONFIGS / "sin2cos.yaml")
FAMILIES = ["lstm", "lstm_cell", "stacked_lstm", "bilstm", "gru", "rnn"]


def build(name, input_size=2, output_size=3, task=Task.REGRESSION_STEP, **params):
    entry = MODELS.get(name)
    return entry.builder(entry.params.model_validate(params), input_size, output_size, task)


def eval_mse(cli) -> float:
    res = cli("eval", "latest", "--json")
    return json.loads(res.stdout)["metrics"]["mse"]


# ----------------------------------------------------------------- training (the per-family proof)

# sin2cos.yaml as shipped; the two slowest per epoch get lr 0.02, which halves their epochs (they
# pass at the default lr 0.01 too: peephole test MSE 3.4e-4 in 307 epochs, gru 3.3e-4 in 245).
# "lstm" is the config's own model: the tutorial's headline result.
TRAIN_CASES = {
    "lstm": [],
    "lstm_cell": [],
    "lstm_cell-peephole": ["--set", "model.variant=peephole", "--set", "train.lr=0.02"],
    "stacked_lstm": [],
    "bilstm": [],
    "gru": ["--set", "train.lr=0.02"],
    "rnn": [],
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_family_learns_sin2cos(cli, case):
    name = case.split("-")[0]
    cli("train", SIN2COS, "--set", f"model.name={name}", *TRAIN_CASES[case], "--quiet")
    mse = eval_mse(cli)
    bound = 5e-4 if case == "lstm" else 1e-3  # lstm: the headline (about 1.1e-4 here), with room for other BLAS
    assert mse < bound, f"{case}: test MSE {mse:.3g}"


# ----------------------------------------------------------------- building


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("task", [Task.REGRESSION_STEP, Task.CLASSIFICATION])
def test_every_family_builds_for_both_task_kinds(name, task):
    m = build(name, task=task, hidden_size=5, num_layers=2)
    x = torch.randn(4, 7, 2)
    out, state = m(x)
    assert out.shape == ((4, 7, 3) if task.per_step else (4, 3))
    out2, _ = m(x, state)  # the state it returned can be fed back (stateful training)
    assert out2.shape == out.shape


@pytest.mark.parametrize("name", FAMILIES)
def test_sin2cos_model_block_validates_for_every_family(name):
    cfg = config.load(SIN2COS, [f"model.name={name}"])
    assert cfg.model["hidden_size"] == 16 and cfg.model["num_layers"] == 1


def test_lstm_cell_state_dict_moves_to_lstm_and_back():
    """Whole models: the hand-built lstm_cell's weights drive the nn.LSTM model and the other way."""
    torch.manual_seed(0)
    hand = build("lstm_cell", hidden_size=6, num_layers=2)
    ref = build("lstm", hidden_size=6, num_layers=2)
    ref.load_state_dict(hand.state_dict())
    x = torch.randn(3, 9, 2)
    assert (hand(x)[0] - ref(x)[0]).abs().max() < 1e-6
    torch.manual_seed(1)
    ref2 = build("lstm", hidden_size=6, num_layers=2)
    hand.load_state_dict(ref2.state_dict())
    assert (hand(x)[0] - ref2(x)[0]).abs().max() < 1e-6


@pytest.mark.parametrize("cell", ["torch", "hand"])
def test_bilstm_sequence_head_sees_both_final_states(cell):
    """Per-sequence: the head reads forward's last step and backward's step 0 (= h_n of the top layer)."""
    torch.manual_seed(0)
    m = build("bilstm", task=Task.CLASSIFICATION, hidden_size=4, num_layers=2, cell=cell).eval()
    x = torch.randn(5, 6, 2)
    logits, (h_n, _) = m(x)
    expected = m.head(torch.cat([h_n[-2], h_n[-1]], dim=-1))  # top layer: forward, reverse
    assert torch.allclose(logits, expected, atol=1e-6)
    out, _ = m.backbone(x)
    assert not torch.allclose(logits, m.head(out[:, -1]), atol=1e-4), "output[:, -1] would be the wrong input"


def test_bilstm_hand_equals_torch():
    torch.manual_seed(0)
    a = build("bilstm", task=Task.CLASSIFICATION, hidden_size=4, num_layers=2, cell="torch")
    b = build("bilstm", task=Task.CLASSIFICATION, hidden_size=4, num_layers=2, cell="hand")
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 6, 2)
    assert (a(x)[0] - b(x)[0]).abs().max() < 1e-6


def test_stacked_lstm_widths_dropout_and_parameter_count():
    m = build("stacked_lstm", input_size=1, output_size=1, hidden_sizes=[100, 50], dropout=0.2)
    widths = [layer.hidden_size for layer in m.backbone.layers]
    assert widths == [100, 50]
    # 4·100·(1+100) + 2·400, 4·50·(100+50) + 2·200, head 50 + 1
    assert count_parameters(m) == 41_200 + 30_400 + 51
    assert isinstance(m.backbone.drop, torch.nn.Dropout) and m.backbone.drop.p == 0.2
    hand = build("stacked_lstm", input_size=1, output_size=1, hidden_sizes=[100, 50], cell="hand")
    assert count_parameters(hand) == count_parameters(m)
    hand.load_state_dict(m.state_dict())
    x = torch.randn(2, 5, 1)
    m.eval(), hand.eval()
    assert (m(x)[0] - hand(x)[0]).abs().max() < 1e-6
    # without hidden_sizes: [hidden_size] * num_layers
    plain = build("stacked_lstm", hidden_size=7, num_layers=3)
    assert [layer.hidden_size for layer in plain.backbone.layers] == [7, 7, 7]


def test_parameter_count_in_run_json(cli, runs_dir):
    cli("train", SIN2COS, "--set", "model.name=stacked_lstm", "--set", "model.hidden_sizes=[100, 50]",
        "--set", "train.epochs=1", "--quiet")
    (run,) = runs_dir.iterdir()
    meta = json.loads((run / "run.json").read_text())
    assert meta["params"] == 41_200 + 30_400 + 51


def test_gru_hand_equals_torch_model():
    torch.manual_seed(0)
    a = build("gru", hidden_size=5, num_layers=2, cell="torch")
    b = build("gru", hidden_size=5, num_layers=2, cell="hand")
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 8, 2)
    assert (a(x)[0] - b(x)[0]).abs().max() < 1e-6


# ----------------------------------------------------------------- initialisation


@pytest.mark.parametrize("name", ["lstm_cell", "bilstm", "stacked_lstm"])
def test_forget_bias(name):
    m = build(name, hidden_size=4, forget_bias=1.0)
    for n, p in m.backbone.named_parameters():
        if ".bias_ih" in f".{n.split('.')[-1]}":
            assert torch.all(p[4:8] == 1.0), n
        if ".bias_hh" in f".{n.split('.')[-1]}":
            assert torch.all(p[4:8] == 0.0), n


def test_forget_bias_coupled_is_chunk_zero():
    m = build("lstm_cell", hidden_size=4, forget_bias=2.0, variant="coupled")
    assert torch.all(m.backbone.bias_ih_l0[:4] == 2.0) and torch.all(m.backbone.bias_hh_l0[:4] == 0.0)
    assert not torch.all(m.backbone.bias_ih_l0[4:8] == 2.0)


@pytest.mark.parametrize("name", ["lstm_cell", "gru", "rnn", "bilstm"])
def test_orthogonal_and_normal_init(name):
    m = build(name, hidden_size=6, init="orthogonal")
    w = m.backbone.weight_hh_l0
    block = w[:6]
    assert torch.allclose(block @ block.T, torch.eye(6), atol=1e-5)
    m = build(name, hidden_size=64, init="normal", std=0.02)
    assert abs(m.backbone.weight_hh_l0.std().item() - 0.02) < 0.004


# ----------------------------------------------------------------- user mistakes: one line, exit 2


@pytest.mark.parametrize(
    "sets, needle",
    [
        (["model.name=gru", "model.dropout=0.3"], "num_layers"),
        (["model.name=lstm_cell", "model.dropout=0.3"], "num_layers"),
        (["model.name=gru", "model.forget_bias=1.0"], "forget_bias"),
        (["model.name=rnn", "model.forget_bias=1.0"], "forget_bias"),
        (["model.name=lstm_cell", "model.variant=peepole"], "variant"),
        (["model.name=stacked_lstm", "model.hidden_sizes=[]"], "hidden_sizes"),
        (["model.name=bilstm", "model.cell=keras"], "cell"),
    ],
)
def test_bad_model_settings_are_one_line_errors(cli, sets, needle):
    args = [a for s in sets for a in ("--set", s)]
    res = cli("train", SIN2COS, *args, "--set", "train.epochs=1", "--quiet", ok=False)
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert "Traceback" not in res.output


def test_stacked_dropout_works_with_one_layer(cli):
    """Keras-style dropout follows every layer, the last included, so a single layer with dropout is
    valid and its dropout acts (unlike nn.LSTM's, which only sits between layers): two training-mode
    passes of the trained run's model differ, two eval-mode passes are equal."""
    cli("train", SIN2COS, "--set", "model.name=stacked_lstm", "--set", "model.dropout=0.2",
        "--set", "train.epochs=2", "--quiet")
    model = load_run("latest").model
    assert len(model.backbone.layers) == 1
    x = torch.sin(torch.linspace(0, 6, 40)).view(1, 40, 1)
    with torch.no_grad():
        model.train()
        a, b = model(x)[0], model(x)[0]
        assert not torch.equal(a, b), "training mode: the one layer's dropout should make two passes differ"
        model.eval()
        c, d = model(x)[0], model(x)[0]
        assert torch.equal(c, d), "eval mode: no dropout"


# ----------------------------------------------------------------- stateful training (TBPTT)


def _spy_states(monkeypatch):
    """Record (state passed in, state returned) of every training forward call."""
    import lstmctl.session as experiment

    seen = []
    original = experiment.build_model

    def spy(cfg, bundle):
        model = original(cfg, bundle)
        model.register_forward_hook(lambda mod, args, out: seen.append((args[1] if len(args) > 1 else None, out[1])) if mod.training else None)
        return model

    monkeypatch.setattr(experiment, "build_model", spy)
    return seen


@pytest.mark.parametrize("stateful", [True, False])
def test_stateful_carries_state_between_batches(cli, write_config, monkeypatch, stateful):
    seen = _spy_states(monkeypatch)
    # 80 points, 40 for training, in 4 consecutive chunks of 10; one chunk per step; 2 epochs
    path = write_config({"model.name": "lstm_cell", "data.points": 80, "data.seq_len": 10,
                         "train.batch_size": 1, "train.epochs": 2, "train.stateful": stateful})
    cli("train", path, "--quiet")
    assert len(seen) == 8
    if not stateful:
        assert all(s_in is None for s_in, _ in seen)
        return
    for epoch in range(2):
        calls = seen[4 * epoch : 4 * epoch + 4]
        assert calls[0][0] is None, "each epoch starts the series from a zero state"
        for (_, prev_out), (s_in, _) in zip(calls, calls[1:]):
            for a, b in zip(s_in, prev_out):
                assert torch.equal(a, b.detach()), "the next chunk starts from the previous chunk's final state"
                assert not a.requires_grad, "the carried state is detached (truncated BPTT)"
