"""The shipped forecast recipes against statsforecast's AutoETS and AutoARIMA, on the same test windows.

    python benchmarks/bench_forecast.py --stats-python /tmp/fcvenv/bin/python          # every series
    python benchmarks/bench_forecast.py --only elnino,co2 --seeds 0,1,2 --out bench.json
    python benchmarks/bench_forecast.py --no-hstep                                       # one-step only
    python benchmarks/bench_forecast.py --only co2 --arima-max-season 24   # weekly: AutoARIMA without the season

statsforecast is NOT a dependency of lstmctl: install it for the benchmark only. statsforecast 2.1 needs
pandas < 3, so it usually lives in an environment of its own, which --stats-python names (default: this
interpreter, if it can import statsforecast):

    python -m venv /tmp/fcvenv && /tmp/fcvenv/bin/pip install statsforecast

For each series (a shipped config; a long table counts each of its series): lstmctl trains the config as
shipped (`lstmctl train`, selection on its validation split) and `lstmctl eval` scores the test split once.
AutoETS and AutoARIMA (season_length = the config's data.season, or the season lstmctl infers from the
dates; 1 without one) are fitted ONCE on every row before the config's test block (its training and
validation rows), then forecast from each test origin with those fixed parameters while being fed the
actual values up to the origin (statsforecast's `model.forward(y[:origin], h)`): like lstmctl, which
trains once and slides its window over the actual values. The origins are exactly lstmctl's test windows
(facts.rows["test"]: every window whose H targets all lie in the test block), read from lstmctl's own
dataset, so both sides score the same targets; naive (last value) and seasonal naive (the same season
one period back) are computed here from the same origins and checked against lstmctl's naive_mae.

One-step (H = 1, the configs as shipped) and H-step (`--set data.horizon=H`, H per series below; the MAE
averaged over the H steps). Reported per series: the MAE of each method, lstmctl's ratio to the better
of AutoETS/AutoARIMA (the best of three where MSTL is added, below), the geometric mean of those ratios,
and how many series lstmctl is ahead on. The aim of issue 14: geometric mean <= 1.10, never worse than
naive, ahead on at least half.

A season of 52 (co2, weekly) is beyond both: AutoETS itself fits no seasonal model for a season over 24
(it picks a non-seasonal ETS), and AutoARIMA's seasonal search did not finish in 15 minutes here.
--arima-max-season N fits AutoARIMA without a season where the season exceeds N (said in the output),
and adds a model that does use the season there: MSTL (STL takes the season out, AutoETS forecasts the
rest; statsforecast's usual answer for long seasons), so that lstmctl is compared with a seasonal
statistical model too. lstmctl's ratio is then to the best of the three.

--before-test runs the same comparison on the rows before each real test block (cut as
bench_forecast_recipe.py cuts them: the shipped configs then validate and test on earlier blocks that the
real test never overlaps). It is the place to develop a recipe against the statistical models without
reading the test numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from common import REPO, cut_before_test, machine, run_lstmctl  # benchmarks/common.py

CONFIGS = REPO / "configs"
STATISTICAL = ("AutoETS", "AutoARIMA", "MSTL")  # MSTL only where --arima-max-season drops the season

# name -> (config, H for the H-step comparison)
SERIES = {
    "sunspots": ("sunspots.yaml", 5),  # yearly: 5 years
    "us_macro": ("us_macro.yaml", 4),  # quarterly: a year
    "elnino": ("elnino.yaml", 12),  # monthly: a year
    "co2": ("co2.yaml", 13),  # weekly: a quarter
    "us_output": ("us_output.yaml", 4),  # long table of five quarterly series: a year
}


def windows(config: Path, horizon: int) -> list[dict]:
    """Each series of the config with its test origins, read from lstmctl's own dataset."""
    from lstmctl import config as cfgmod
    from lstmctl.session import build_dataset

    cfg = cfgmod.load(config, [f"data.horizon={horizon}"])
    facts = build_dataset(cfg).facts
    season = facts.season if facts.season and facts.season > 1 else 1
    rows = facts.rows["test"]
    members = getattr(facts, "members", None) or []
    if not members:
        return [{"name": None, "y": list(facts.series), "n_fit": facts.test_start, "rows": list(rows),
                 "h": horizon, "season": season}]
    which = facts.member["test"]
    return [{"name": m.name, "y": list(m.series), "n_fit": m.test_start,
             "rows": [r for r, j in zip(rows, which) if j == k], "h": horizon, "season": season}
            for k, m in enumerate(members)]


def baseline_mae(s: dict) -> dict:
    """Naive and seasonal naive from the same origins, averaged over the H steps (lstmctl's definitions)."""
    y, h, m = s["y"], s["h"], s["season"]
    naive, snaive = [], []
    for r in s["rows"]:
        t = r - 1  # the origin: the window's last row
        for k in range(1, h + 1):
            naive.append(abs(y[t + k] - y[t]))
            if m > 1:
                back = m * math.ceil(k / m)
                snaive.append(abs(y[t + k] - y[t + k - back]))
    return {"naive": sum(naive) / len(naive), "snaive": sum(snaive) / len(snaive) if snaive else None}


def stats_worker() -> None:
    """Reads [series] as JSON on stdin, writes {i: {model: mae, ...}} on stdout (run by --stats-python)."""
    import warnings

    import numpy as np
    from statsforecast.models import MSTL, AutoARIMA, AutoETS

    warnings.filterwarnings("ignore")
    out = {}
    for i, s in enumerate(json.load(sys.stdin)):
        y = np.asarray(s["y"], dtype=np.float64)
        h, res = s["h"], {}
        actual = np.array([y[r:r + h] for r in s["rows"]])
        models = [("AutoETS", AutoETS(season_length=s["season"])),
                  ("AutoARIMA", AutoARIMA(season_length=s.get("arima_season", s["season"])))]
        if s.get("mstl"):  # a season too long for both: MSTL removes it, AutoETS forecasts the rest
            models.append(("MSTL", MSTL(season_length=s["season"], trend_forecaster=AutoETS(model="ZZN"))))
        for name, model in models:
            t0 = time.perf_counter()
            model.fit(y[: s["n_fit"]])  # every row before the test block, once
            fc = np.array([model.forward(y[:r], h=h)["mean"] for r in s["rows"]])  # fixed parameters, actuals fed
            res[name] = float(np.abs(fc - actual).mean())
            fitted = getattr(model, "model_", None)
            res[name + "_model"] = str(fitted.get("method") or fitted.get("arma") or "") if isinstance(fitted, dict) else ""
            res[name + "_s"] = round(time.perf_counter() - t0, 2)
        out[str(i)] = res
    json.dump(out, sys.stdout)


def statistical(series: list[dict], python: str, cache: Path | None) -> list[dict]:
    """AutoETS and AutoARIMA on each series, through the worker; --stats-cache keeps their results by series,
    cut, origins, horizon and season (the statistical side does not depend on lstmctl's recipe)."""
    keys = [hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest() for s in series]
    saved = json.loads(cache.read_text()) if cache and cache.exists() else {}
    todo = [s for s, k in zip(series, keys) if k not in saved]
    if todo:
        for k, res in zip([k for k in keys if k not in saved], _worker(todo, python)):
            saved[k] = res
        if cache:
            cache.write_text(json.dumps(saved))
    return [saved[k] for k in keys]


def _worker(series: list[dict], python: str) -> list[dict]:
    proc = subprocess.run([python, str(Path(__file__).resolve()), "--stats-worker"], input=json.dumps(series),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"the statsforecast worker ({python}) failed: {proc.stderr.strip()[-2000:]}\n"
                 "install it for the benchmark: python -m venv /tmp/fcvenv && /tmp/fcvenv/bin/pip install statsforecast, "
                 "then pass --stats-python /tmp/fcvenv/bin/python")
    got = json.loads(proc.stdout)
    return [got[str(i)] for i in range(len(series))]


def before_test_configs(names: list[str], folder: Path) -> Path:
    """Copies of the shipped configs pointed at their rows before the real test block (--before-test)."""
    import yaml

    for name in names:
        cfg = SERIES[name][0]
        path = cut_before_test(name, folder)[0]
        config = yaml.safe_load((CONFIGS / cfg).read_text())
        config["data"]["path"] = str(path)
        (folder / cfg).write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


# ---------------------------------------------------------------------------------------------- lstmctl


def lstm_mae(config: Path, horizon: int, seeds: list[int], runs: Path) -> tuple[dict, float, dict]:
    """{series name or None: mean test MAE over seeds}, seconds, lstmctl's own naive MAE (for the check)."""
    maes: dict = {}
    naive: dict = {}
    t0 = time.perf_counter()
    for seed in seeds:
        sets = ["--set", f"seed={seed}", "--set", f"data.horizon={horizon}"]
        out = json.loads(run_lstmctl(["train", str(config), *sets, "--runs-dir", str(runs), "--quiet", "--json"]))
        m = json.loads(run_lstmctl(["eval", out["run"], "--runs-dir", str(runs), "--json"]))["metrics"]
        names = sorted({k.split("/")[1] for k in m if k.startswith("series/")}) or [None]
        for n in names:
            pre = f"series/{n}/" if n else ""
            maes.setdefault(n, []).append(m[pre + "mae"])
            naive[n] = m.get(pre + "naive_mae")
    return {n: sum(v) / len(v) for n, v in maes.items()}, time.perf_counter() - t0, naive


# ---------------------------------------------------------------------------------------------- report


def table(rows: list[dict], horizon_label: str) -> str:
    head = ("| series | H | test windows | lstmctl | AutoETS | AutoARIMA | MSTL | ratio to the best | naive | seasonal naive |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        sn = f"{r['snaive']:.4g}" if r["snaive"] is not None else "–"
        mstl = f"{r['MSTL']:.4g}" if "MSTL" in r else "–"
        lines.append(f"| {r['series']} | {r['h']} | {r['windows']} | {r['lstmctl']:.4g} | {r['AutoETS']:.4g} | "
                     f"{r['AutoARIMA']:.4g} | {mstl} | {r['ratio']:.3f} | {r['naive']:.4g} | {sn} |")
    ratios = [r["ratio"] for r in rows]
    ahead = sum(x < 1 for x in ratios)
    worse_naive = [r["series"] for r in rows if r["lstmctl"] > r["naive"]]
    lines.append(f"\n{horizon_label}: geometric mean of the ratios {statistics.geometric_mean(ratios):.3f}; lstmctl ahead of the best "
                 f"statistical model on {ahead} of {len(rows)}; worse than naive on "
                 f"{', '.join(worse_naive) if worse_naive else 'none'}.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stats-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--stats-python", default=sys.executable, help="a Python that can import statsforecast")
    ap.add_argument("--only", default="", help="comma-separated series names (default: all)")
    ap.add_argument("--seeds", default="0", help="lstmctl seeds, e.g. 0,1,2 (the MAE is their mean)")
    ap.add_argument("--no-hstep", action="store_true", help="one-step only")
    ap.add_argument("--out", type=Path, help="write the results as JSON")
    ap.add_argument("--stats-cache", type=Path, help="a JSON file keeping AutoETS/AutoARIMA results between runs")
    ap.add_argument("--stats-only", action="store_true", help="fill --stats-cache with the statistical side only")
    ap.add_argument("--before-test", action="store_true",
                    help="everything on the rows before each real test block (a development set; see above)")
    ap.add_argument("--arima-max-season", type=int, default=None,
                    help="fit AutoARIMA without a season where the season exceeds this, and add MSTL there (default: never)")
    a = ap.parse_args()
    if a.stats_worker:
        stats_worker()
        return
    names = [n for n in (a.only.split(",") if a.only else SERIES) if n]
    unknown = [n for n in names if n not in SERIES]
    if unknown:
        sys.exit(f"unknown series {unknown}; choose from {list(SERIES)}")
    seeds = [int(s) for s in a.seeds.split(",")]
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    report = {"machine": machine(), "started": started, "seeds": seeds, "before_test": a.before_test, "results": {}}
    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        configs = before_test_configs(names, Path(tmp)) if a.before_test else CONFIGS
        for label, one_step in (("one-step", True), ("H-step", False)):
            if not one_step and a.no_hstep:
                continue
            rows = []
            for name in names:
                cfg, h_bench = SERIES[name]
                h = 1 if one_step else h_bench
                config = configs / cfg
                series = windows(config, h)
                for s in series:
                    if a.arima_max_season is not None and s["season"] > a.arima_max_season:
                        s["arima_season"], s["mstl"] = 1, True
                        print(f"{name}: AutoARIMA without its season ({s['season']} > --arima-max-season "
                              f"{a.arima_max_season}); MSTL added", file=sys.stderr, flush=True)
                stats = statistical(series, a.stats_python, a.stats_cache)
                if a.stats_only:
                    print(f"{name} H={h}: {stats}", file=sys.stderr, flush=True)
                    continue
                lstm, secs, lstm_naive = lstm_mae(config, h, seeds, Path(tmp) / "runs")
                for s, st in zip(series, stats):
                    base = baseline_mae(s)
                    key = s["name"]
                    if lstm_naive.get(key) is not None and abs(lstm_naive[key] - base["naive"]) > 1e-4 * (1 + base["naive"]):
                        sys.exit(f"{name}/{key}: naive MAE {base['naive']} here but {lstm_naive[key]} in lstmctl: the windows differ")
                    best = min(st[m] for m in STATISTICAL if m in st)
                    row = {"series": f"{name}/{key}" if key else name, "h": h, "windows": len(s["rows"]),
                           "lstmctl": lstm[key], "ratio": lstm[key] / best, **base, **st, "lstmctl_s": round(secs, 1)}
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
            if a.stats_only:
                continue
            report["results"][label] = rows
            sections.append(table(rows, label))
    if a.stats_only:
        return
    report["ended"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    mach = report["machine"]
    print(f"Machine: {mach['cores']} cores, {mach['cpu']}, torch {mach['torch']}, Python {mach['python']}; "
          f"{started} to {report['ended']}; lstmctl seeds {seeds}\n")
    print("\n\n".join(sections))
    if a.out:
        a.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
