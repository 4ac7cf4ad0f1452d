"""lstmctl predict on a tabular run: windows over a new CSV, scaled with the run's scaler, in original units."""

import csv
import json

import numpy as np

from lstmctl import load_run
from lstmctl.evaluation import predict
from tests.conftest import CONFIGS
from tests.test_manage import forward_best


def test_predict_on_new_csv_matches_the_test_split(cli, tmp_path):
    cli("train", CONFIGS / "sunspots.yaml", "--quiet", "--set", "train.epochs=3")
    rows = list(csv.reader(open(CONFIGS / "data" / "sunspots_yearly.csv")))
    header, body = rows[0], rows[1:]
    tail = body[-60:]  # the last 60 years: all inside the test period's context
    new = tmp_path / "recent.csv"
    with open(new, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(tail)
    out = tmp_path / "pred.csv"
    cli("predict", "latest", "--input", new, "--output", out)
    pred = list(csv.DictReader(open(out)))
    assert len(pred) == 60 - 20 + 1  # one forecast per 20-year window
    assert pred[-1]["label"] == f"{tail[-1][0]}+1"  # the forecast past the end of the file
    assert pred[0]["label"] == tail[20][0]  # first window's target: the year after its last row

    run = load_run("latest")
    b = run.data
    test_years = [str(b.facts.dates[r]) for r in b.facts.rows["test"]]
    model_test = dict(zip(test_years, b.inverse_target(predict(run.model, b.test.x)).reshape(-1).tolist()))
    common = [p for p in pred if p["label"] in model_test]
    assert len(common) >= 30
    for p in common:
        assert abs(float(p["prediction_0"]) - model_test[p["label"]]) < 1e-4


def test_api_predict_scales_raw_windows(cli):
    cli("train", CONFIGS / "sunspots.yaml", "--quiet", "--set", "train.epochs=2")
    run = load_run("latest")
    values = np.array([float(r[1]) for r in list(csv.reader(open(CONFIGS / "data" / "sunspots_yearly.csv")))[1:]])
    window = values[-20:].reshape(20, 1)
    y = run.predict(window)
    assert y.shape == (1, 1)
    # expected without lstmctl: scale the raw window with the scaler saved in data_state.json, run it
    # through best.pt's weights (per-sequence head: the last step), unscale with the same numbers
    state = json.loads((run.path / "data_state.json").read_text())
    col = state["columns"].index("sunspots")
    offset, scale = state["offset"][col], state["scale"][col]
    assert scale > 10 and offset > 10  # sunspot counts: standardising moves them well away from raw
    scaled = forward_best(run.path, ((window - offset) / scale)[None], per_step=False)
    expected = scaled * scale + offset
    assert np.allclose(y, expected, rtol=1e-5, atol=1e-4), (y, expected)


def test_predict_needs_the_feature_columns(cli, tmp_path):
    cli("train", CONFIGS / "sunspots.yaml", "--quiet", "--set", "train.epochs=1")
    bad = tmp_path / "bad.csv"
    bad.write_text("year,spots\n2001,3\n")
    r = cli("predict", "latest", "--input", bad, ok=False)
    assert r.exit_code == 2 and "'sunspots'" in r.output
