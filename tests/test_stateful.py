"""train.stateful: chunks of one series read in order, state carried across batches and in eval."""

import json

import torch

from lstmctl.api import load_run
from lstmctl.train.setup import stateful_order


def test_stateful_order_makes_streams():
    order = stateful_order(6, 2)
    batches = order.split(2)
    # row 0 reads chunks 0,1,2 and row 1 reads 3,4,5, each in order
    assert [b[0].item() for b in batches] == [0, 1, 2]
    assert [b[1].item() for b in batches] == [3, 4, 5]
    assert torch.equal(stateful_order(4, 8), torch.arange(4))


def test_stateful_eval_equals_reading_the_whole_series(cli, write_config):
    cli("train", write_config({"data.points": 80, "data.seq_len": 8, "train.stateful": True, "train.batch_size": 1,
                               "train.epochs": 2}), "--quiet")
    run = load_run("latest")
    test = run.bundle.test
    chunked = run.predict(test.x.numpy())  # (N, 8, 1), state carried from chunk to chunk
    whole, _ = run.model(test.x.reshape(1, -1, 1))  # the same series as one sequence
    assert torch.allclose(torch.from_numpy(chunked).reshape(-1), whole.detach().reshape(-1), atol=1e-6)
    result = json.loads(cli("eval", "latest", "--json").stdout)
    expected = float(((whole.detach().reshape(-1) - test.y.reshape(-1)) ** 2).mean())
    assert abs(result["metrics"]["mse"] - expected) < 1e-6


def test_stateful_batches_must_split_into_equal_streams(cli, write_config, runs_dir):
    # 40 points / seq_len 8 -> 2 train chunks... use 72 points: 36 train points -> 4 chunks of 8 (remainder dropped)
    r = cli("train", write_config({"data.points": 72, "data.seq_len": 8, "train.stateful": True, "train.batch_size": 3}), ok=False)
    assert r.exit_code == 2 and "divisor of 4" in r.output
    assert not runs_dir.exists() or not list(runs_dir.iterdir())
    cli("train", write_config({"data.points": 72, "data.seq_len": 8, "train.stateful": True, "train.batch_size": 2}), "--quiet")


def test_stateful_validation_metrics_carry_the_state_like_eval(cli, write_config):
    """val_mae each epoch comes from the validation chunks read in order with the state carried, as eval reads them."""
    cli("train", write_config({"data.points": 120, "data.seq_len": 6, "train.stateful": True, "train.batch_size": 1,
                               "train.val_fraction": 0.3, "train.epochs": 2}), "--quiet")
    last = load_run("latest").metrics[-1]
    result = json.loads(cli("eval", "latest", "--split", "val", "--checkpoint", "last", "--json").stdout)["metrics"]
    assert abs(result["mae"] - last["val_mae"]) <= 1e-6 * abs(last["val_mae"]) + 1e-7
