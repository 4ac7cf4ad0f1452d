"""Many series in one long table (data.series_column), checked by hand on tests/data/three_series.csv: three
monthly series (stores a, b: 48 months; c: 40, ending the same month) interleaved by date. Each series is
cut, scaled and windowed on its own; one global model; metrics, baselines and predictions per series."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstmctl.data.tabular import TabularParams, build_tabular
from lstmctl.errors import UserError
from lstmctl.evaluation import in_units, split_metrics
from tests.test_robust_data import one_line

DATA = Path(__file__).parent / "data" / "three_series.csv"
W, H = 6, 2


def table() -> dict[str, pd.DataFrame]:
    frame = pd.read_csv(DATA, dtype={"store": str})
    return {k: g.reset_index(drop=True) for k, g in frame.groupby("store", sort=False)}


def build(val_fraction=0.0, path=DATA, **kw):
    kw = {"target": "sales", "date_column": "month", "series_column": "store", "window": W, "horizon": H,
          "test_fraction": 0.25, **kw}
    return build_tabular(TabularParams(path=str(path), **kw), seed=0, val_fraction=val_fraction, state={})


def test_per_series_cut_scaler_windows_and_baselines():
    b = build(0.2, features=["sales", "price"])
    series = table()
    names = [m.name for m in b.facts.members]
    assert names == ["a", "b", "c"] and b.state["columns"] == ["sales", "price"]
    for j, (name, g) in enumerate(series.items()):
        y, n = g["sales"].to_numpy(), len(g)
        n_test = round(n * 0.25)  # each series' own last quarter is its test block
        n_val = int(np.ceil((n - n_test) * 0.2))
        n_tr = n - n_test - n_val
        saved = b.state["series"][name]
        assert saved["rows"] == {"total": n, "train": n_tr, "val": n_val, "test": n_test}
        # the scaler of each series: its own training rows' mean and (population) std, per column
        train = g[["sales", "price"]].to_numpy()[:n_tr]
        np.testing.assert_allclose(saved["offset"], train.mean(axis=0))
        np.testing.assert_allclose(saved["scale"], train.std(axis=0))
        assert saved["mase_scale"] == pytest.approx(np.abs(np.diff(y[:n_tr])).mean())
        for split, (lo, hi) in {"train": (0, n_tr), "val": (n_tr, n - n_test), "test": (n - n_test, n)}.items():
            sel = np.asarray(b.facts.member[split]) == j
            first = np.asarray(b.facts.rows[split])[sel]
            lo = max(lo, W)  # the first training target follows the first window
            assert len(first) == hi - lo - H + 1  # every window whose H targets lie in the block
            assert first.min() == lo and first.max() + H - 1 == hi - 1
            x = b.split(split).x[torch.from_numpy(sel)].double().numpy()
            # every input row of every window is a row of its own series: no window crosses series
            back = x[:, :, 0] * saved["scale"][0] + saved["offset"][0]
            np.testing.assert_allclose(back, y[first[:, None] - W + np.arange(W)], atol=1e-4)
            targets = in_units(b, split, b.split(split).y)[torch.from_numpy(sel)].numpy()
            np.testing.assert_allclose(targets, y[first[:, None] + np.arange(H)], atol=1e-4)
            naive = b.facts.naive[split][torch.from_numpy(sel)].numpy()
            np.testing.assert_allclose(naive, np.repeat(y[first - 1][:, None], H, 1), atol=1e-4)
            dates = np.asarray(b.facts.split_dates[split])[sel]
            assert list(dates) == list(g["month"].to_numpy()[first])


def test_metrics_overall_and_per_series():
    b = build(scale="none")
    series = table()
    target = b.test.y
    member = np.asarray(b.facts.member["test"])
    offsets = torch.tensor([1.0, -2.0, 4.0], dtype=torch.float64)[torch.from_numpy(member)]
    pred = target.double() + offsets[:, None]  # series a off by 1, b by 2, c by 4
    m = split_metrics(b, "test", pred)
    assert m["series/a/mae"] == pytest.approx(1) and m["series/b/mae"] == pytest.approx(2)
    assert m["series/c/mae"] == pytest.approx(4) and m["series/c/rmse"] == pytest.approx(4)
    assert m["mae"] == pytest.approx(float(offsets.abs().mean()))  # overall: every window of every series
    scales = {k: np.abs(np.diff(g["sales"].to_numpy()[: b.state["series"][k]["rows"]["train"]])).mean()
              for k, g in series.items()}
    for k, err in zip("abc", (1, 2, 4)):
        assert m[f"series/{k}/mase"] == pytest.approx(err / scales[k])
    # overall MASE: each window's error over its own series' scale, averaged over the windows
    per_window = np.array([(1, 2, 4)[j] / scales["abc"[j]] for j in member])
    assert m["mase"] == pytest.approx(per_window.mean())
    naive = b.facts.naive["test"].double()
    for k, j in zip("abc", range(3)):
        sel = member == j
        assert m[f"series/{k}/naive_mae"] == pytest.approx(float((naive[sel] - target[sel]).abs().mean()), rel=1e-6)
    assert all(isinstance(v, (int, float)) or v is None for v in m.values())  # flat numbers: eval GROUP aggregates


def test_long_table_through_the_cli(cli, tmp_path, write_config):
    cfg = write_config({"data": {"name": "tabular", "path": str(DATA), "target": "sales", "date_column": "month",
                                 "series_column": "store", "window": W, "horizon": H, "test_fraction": 0.25},
                        "model.hidden_size": 6, "train.epochs": 2, "train.batch_size": 16, "train.val_fraction": 0.2})
    cli("train", cfg, "--quiet")
    m = json.loads(cli("eval", "latest", "--json").output)["metrics"]
    for k in ("mae", "mase", "naive_mae", "series/a/mae", "series/b/mase", "series/c/naive_mae", "series/c/drift_mae"):
        assert isinstance(m[k], float), k
    assert "forecast.png" in cli("plot", "latest").output
    cli("predict", "latest", "--input", DATA, "--output", tmp_path / "p.csv")
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert list(rows[0]) == ["series", "label", "sales_h1", "sales_h2"]
    for k, g in table().items():
        mine = [r for r in rows if r["series"] == k]
        assert len(mine) == len(g) - W + 1  # one forecast per window of the series' own rows
        assert mine[0]["label"] == g["month"][W] and mine[-1]["label"] == f"{g['month'].iloc[-1]}+1"
    out = cli("backtest", cfg, "--folds", "2", "--json").output
    assert len(json.loads(out)["folds"]) == 2


def test_bad_long_tables(cli, tmp_path, write_config):
    one = tmp_path / "one.csv"
    one.write_text("month,store,sales\n" + "".join(f"2000-{k + 1:02d},s{k},{k}\n" for k in range(10)))
    with pytest.raises(UserError, match=r"holds a different value on every row \(10 series of one row each\)") as e:
        build(path=one)
    assert "\n" not in str(e.value)
    short = tmp_path / "short.csv"
    lines = DATA.read_text().splitlines()
    short.write_text("\n".join(lines + [f"2003-{k:02d},d,{k}.5,5" for k in range(1, 9)]) + "\n")
    cfg = write_config({"data": {"name": "tabular", "path": str(short), "target": "sales", "date_column": "month",
                                 "series_column": "store", "window": W, "horizon": H, "test_fraction": 0.25},
                        "train.epochs": 1})
    one_line(cli("train", cfg, ok=False), "series 'd'", "training part has 6 rows (of 8)")
    cfg = write_config({"data": {"name": "tabular", "path": str(one), "target": "sales", "date_column": "month",
                                 "series_column": "store", "window": 2}, "train.epochs": 1})
    one_line(cli("train", cfg, ok=False), "data.series_column 'store'", "one row each")
