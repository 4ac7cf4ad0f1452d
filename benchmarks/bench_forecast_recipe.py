"""configs/forecast.yaml's window and validation size, measured across the shipped series WITHOUT their test rows.

    python benchmarks/bench_forecast_recipe.py                              # 5 settings x 5 series, seed 0
    python benchmarks/bench_forecast_recipe.py --seeds 0,1,2 --out recipe.json
    python benchmarks/bench_forecast_recipe.py --recipes "data.window_norm=mean_std;data.target_transform=none,data.window_norm=last"

The general recipe must work across series without per-series tuning (issue 14), and its choices must
not be read off test numbers. So each shipped series (sunspots, us_macro, elnino, co2, us_output) is
first cut before its real test block — the last 20% of its rows (of the regular weekly grid for co2,
whose missing weeks are filled; of each series for the long table) — and written to a temporary CSV.
On those earlier rows the recipe runs as a user would run it (`lstmctl train configs/forecast.yaml
--set data.path=... --set data.window=W --set train.val_fraction=V`): it selects its epoch on its
validation block and `lstmctl eval` scores the last 20% of the earlier rows, a block the real test never
overlaps. The score is the MAE over the naive forecast's MAE on the same rows; a setting's summary is
the geometric mean of that ratio over the series (and the seeds).

Settings: the shipped window 24 and 20% validation, and one change at a time (window 12 or 48;
validation 10% or 30%); or --recipes, each a comma-separated list of overrides of forecast.yaml, the
recipes separated by semicolons ("" is forecast.yaml as shipped). The target, dates, season and series
column come from each series' own config; everything else is forecast.yaml's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from common import cut_before_test, machine, run_lstmctl  # benchmarks/common.py

SERIES = ("sunspots", "us_macro", "elnino", "co2", "us_output")
SETTINGS = ("", "data.window=12", "data.window=48", "train.val_fraction=0.1", "train.val_fraction=0.3")


def before_test(name: str, folder: Path) -> tuple[list[str], int, int]:
    """Write the series' rows before its real test block to a CSV; the --set arguments that point
    forecast.yaml at it, and the row counts before and after the cut."""
    path, data, n_all, n_kept = cut_before_test(name, folder)
    sets = [f"data.path={path}", f"data.target={data['target']}", f"data.date_column={data['date_column']}"]
    sets += [f"data.{key}={data[key]}" for key in ("season", "series_column") if key in data]
    return sets, n_all, n_kept


def score(sets: list[str], runs: Path) -> dict:
    args = ["train", "configs/forecast.yaml", "--runs-dir", str(runs), "--json"]
    for s in sets:
        args += ["--set", s]
    run = json.loads(run_lstmctl(args).strip().splitlines()[-1])["run"]
    metrics = json.loads(run_lstmctl(["eval", run, "--runs-dir", str(runs), "--json"]))["metrics"]
    return {"run": run, "mae": metrics["mae"], "naive_mae": metrics["naive_mae"], "ratio": metrics["mae"] / metrics["naive_mae"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0", help="comma-separated run seeds (default 0)")
    ap.add_argument("--only", default=",".join(SERIES), help="comma-separated series (default: all five)")
    ap.add_argument("--recipes", default=";".join(SETTINGS), help="overrides per recipe: a,b;c (default: the window and validation settings)")
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    a = ap.parse_args()
    recipes = a.recipes.split(";")
    seeds = [int(s) for s in a.seeds.split(",")]
    names = a.only.split(",")
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in names:
            sets, n_all, n_kept = before_test(name, folder)
            for recipe in recipes:
                for seed in seeds:
                    key = f"{name} [{recipe or 'as shipped'}] seed={seed}"
                    extra = [s for s in recipe.split(",") if s] + [f"seed={seed}"]
                    results[key] = score(sets + extra, folder / "runs")
                    print(f"{key}: {n_kept} of {n_all} rows, MAE {results[key]['mae']:.4g}, naive "
                          f"{results[key]['naive_mae']:.4g}, ratio {results[key]['ratio']:.3f}", flush=True)
    print(f"\n| forecast.yaml with | {' | '.join(names)} | geometric mean |\n|---|{'---|' * len(names)}---|")
    summary = {}
    for recipe in recipes:
        label = recipe or "as shipped"
        per_series = [statistics.geometric_mean([results[f"{n} [{label}] seed={s}"]["ratio"] for s in seeds]) for n in names]
        summary[label] = statistics.geometric_mean(per_series)
        print(f"| {label} | {' | '.join(f'{r:.3f}' for r in per_series)} | {summary[label]:.3f} |")
    print(f"\nMAE / naive MAE on the 20% of rows before each real test block (geometric mean over seeds {seeds}); "
          f"{started}; {machine()['cores']} cores")
    if a.out:
        a.out.write_text(json.dumps({"started": started, "machine": machine(), "seeds": seeds, "results": results,
                                     "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
