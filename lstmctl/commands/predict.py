"""`lstmctl predict`: run a trained run's best checkpoint on new data and write the predictions as CSV.

Input: a CSV with the training columns, for datasets that register `prediction_inputs` (tabular), or a
.npy array of sequences shaped (N, steps, features) in the data's raw units, for any run. A forecast
of H steps writes H columns (<target>_h1 ... <target>_hH) per window; the last window's lie past the
end of the file. A quantile run (train.loss: quantile) writes every level of every value, in order:
<name>_q10, <name>_q50, <name>_q90 (e.g. y_h1_q10 ... y_h3_q90). A run on a long table of many series
(data.series_column) labels every window with its series: a `series` column before `label`.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np

from lstmctl.api import Run
from lstmctl.errors import UserError
from lstmctl.evaluation import predict as model_outputs, quantile_levels
from lstmctl.metrics import level_label
from lstmctl.groups import single_run
from lstmctl.runs import RunDir, write_text_atomic


def predict_file(run: RunDir, input_path: Path, output: Path | None) -> tuple[str, int]:
    """Run a trained model on new data; returns (csv text, number of predictions) and writes `output` if given."""
    r = Run(run)
    input_path = Path(input_path)
    if not input_path.is_file():
        raise UserError(f"input file not found: {input_path}")
    labels = None
    if input_path.suffix.lower() == ".csv":
        prepared = r.prediction_inputs(input_path)
        if prepared is None:
            raise UserError(
                f"run {run.id} was trained on {r.config.data['name']!r}, which takes no CSV input; "
                "give a .npy array of sequences shaped (N, steps, features)"
            )
        x, labels, *to_units = prepared  # a third item: the dataset's own inverse (per-window norms, diffs)
        values = r.outputs(model_outputs(r.model, x, r.config.train.stateful), *to_units)
    elif input_path.suffix.lower() == ".npy":
        try:
            arr = np.load(input_path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise UserError(f"cannot read {input_path} as a numpy array: {e}") from e
        values = r.predict(arr)
    else:
        raise UserError(f"--input must be a .csv (tabular runs) or a .npy array, got {input_path.name}")
    text = to_csv(values, r.data.task, labels, _names(r, values))
    if output is not None:
        write_text_atomic(Path(output), text)
    return text, values.shape[0]


def _names(r: Run, values: np.ndarray) -> list[str] | None:
    """The value columns: the dataset's target names, each with a _q<level> suffix in a quantile run."""
    levels = quantile_levels(r.data)
    if not levels:
        return r.data.target_names
    base = r.data.target_names or [f"prediction_{j}" for j in range(values.shape[-1] // len(levels))]
    return [f"{name}_q{level_label(q)}" for name in base for q in levels]


def to_csv(values: np.ndarray, task, labels, target_names) -> str:
    """One row per sequence (per step for per-step tasks): class and probabilities, or the predicted values."""
    buf = io.StringIO()
    w = csv.writer(buf)
    n = values.shape[0]
    first = "sequence" if labels is None else "label"
    if task.classification:
        cols = [f"prob_{i}" for i in range(values.shape[-1])]
        if task.per_step:
            w.writerow(["sequence", "step", "predicted_class", *cols])
            for i in range(n):
                for t in range(values.shape[1]):
                    w.writerow([i, t, int(values[i, t].argmax()), *map(float, values[i, t])])
        else:
            w.writerow([first, "predicted_class", *cols])
            for i in range(n):
                w.writerow([i if labels is None else labels[i], int(values[i].argmax()), *map(float, values[i])])
    else:
        names = target_names or [f"prediction_{j}" for j in range(values.shape[-1])]
        if labels and isinstance(labels[0], tuple):  # (series, label): a long table of many series
            w.writerow(["series", "label", *names])
            for i in range(n):
                w.writerow([*labels[i], *map(float, values[i])])
        elif task.per_step:
            w.writerow(["sequence", "step", *names])
            for i in range(n):
                for t in range(values.shape[1]):
                    w.writerow([i, t, *map(float, values[i, t])])
        else:
            w.writerow([first, *names])
            for i in range(n):
                w.writerow([i if labels is None else labels[i], *map(float, values[i])])
    return buf.getvalue()


def predict(ref: str, input_path: Path, output: Path | None = None, runs_dir=None) -> None:
    text, n = predict_file(single_run(ref, runs_dir, "predict"), input_path, output)
    if output is None:
        sys.stdout.write(text)
    else:
        print(f"wrote {n} predictions to {output}", file=sys.stderr)
