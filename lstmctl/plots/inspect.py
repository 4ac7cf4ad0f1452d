"""The figures of `lstmctl inspect`: inside the network, drawn from an Inspection (lstmctl/inspection_stats.py).

    plot_inspection(opened, insp, out_dir, fmt)  every figure the model has, the paths written

    inspect-gates-l<k>[-backward]   one sequence: the input on top, then a heatmap (time x units) of
                                    each gate and state of layer k (per direction)
    inspect-gate-means              mean of each sigmoid gate over the units at every step, with its
                                    spread across units (± one standard deviation; models with gates)
    inspect-saturation              share of gate values below 0.05 / above 0.95 over a batch (models with gates)
    inspect-units                   the units that follow the target best: the target as read from each
                                    unit, against the target
    inspect-gradient                ‖∂L/∂h_t‖ against t (log scale): the vanishing-gradient picture
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.ticker import LogFormatter

from lstmctl.errors import UserError
from lstmctl.inspection import SIGMOID, Cell
from lstmctl.inspection_stats import HIGH, LOW, Inspection
from lstmctl.plots.common import plt, save, title
from lstmctl.session import OpenedRun

COLORS = {"input": "tab:green", "forget": "tab:blue", "output": "tab:red", "reset": "tab:purple", "update": "tab:orange"}
SYMBOL = {"input": "i", "forget": "f", "output": "o", "candidate": "g", "cell": "c", "hidden": "h",
          "reset": "r", "update": "z"}


def plot_inspection(opened: OpenedRun, insp: Inspection, out_dir: Path, fmt: str) -> list[Path]:
    out_dir.mkdir(exist_ok=True)
    paths = plot_gates(opened, insp, out_dir, fmt)
    if insp.has_gates:
        paths += [plot_gate_means(opened, insp, out_dir, fmt), plot_saturation(opened, insp, out_dir, fmt)]
    if insp.units:
        paths.append(plot_units(opened, insp, out_dir, fmt))
    paths.append(plot_gradient(opened, insp, out_dir, fmt))
    return paths


def _layer(layer: int, direction: str) -> str:
    return f"layer {layer}" + ("" if direction == "forward" else f" {direction}")


def _where(insp: Inspection) -> str:
    return f"{insp.split} sequence {insp.sample}"


def _draw_input(ax, insp: Inspection) -> None:
    """The sample's input over the same time axis as the heatmaps: lines for a few features, else a heatmap."""
    x = insp.x
    T, F = insp.steps, x.shape[1]  # a conv stem pools the input's rows: they are spread over the T steps
    if F <= 4:
        for k in range(F):
            ax.plot((np.arange(len(x)) + 0.5) * T / len(x) - 0.5, x[:, k], lw=1, label=insp.input_names[k], drawstyle="steps-mid")
        ax.legend(fontsize=7, loc="upper right", ncols=F, framealpha=0.8, handlelength=1.2)
    else:
        ax.imshow(x.T, aspect="auto", interpolation="nearest", cmap="Greys", extent=(-0.5, T - 0.5, F - 0.5, -0.5))
        if F <= 12:
            ax.set_yticks(range(F), insp.input_names, fontsize=6)
    ax.set_ylabel("input", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_xlim(-0.5, T - 0.5)


def _block(gate: str, v: np.ndarray, relu: bool) -> tuple[np.ndarray, str, str]:
    """A gate's values as drawn, its colour map and a note for its label. Gates are on viridis 0..1,
    tanh-bounded values on RdBu -1..1 (one scale for every run); the cell (and a ReLU state), which
    are unbounded, are divided by their largest magnitude and say it in the label."""
    if gate in SIGMOID:
        return v, "viridis", ""
    if gate in ("candidate", "hidden") and not relu:
        return v, "RdBu_r", ""
    top = float(np.abs(v).max()) or 1.0
    return v / top, "RdBu_r", f" (±{top:.3g})" if v.min() < 0 else f" (0 to {top:.3g})"


def plot_gates(opened: OpenedRun, insp: Inspection, out_dir: Path, fmt: str) -> list[Path]:
    """Per layer and direction: the input on top, below it one block per gate and state, each a
    heatmap of time (x) by unit (y, unit 0 at the top of its block), on one time axis."""
    paths = []
    T = insp.steps
    for cell in insp.flat_cells:
        gates, H = cell.gates, cell.units
        gap = max(1.0, H / 8)
        fig, axes = plt.subplots(2, 2, figsize=(10, 1.9 + 1.25 * len(gates)), squeeze=False,
                                 gridspec_kw={"width_ratios": [60, 1], "height_ratios": [1.3, 1.25 * len(gates)]})
        top_ax, ax = axes[:, 0]
        ax.sharex(top_ax)
        top_ax.tick_params(labelbottom=False)
        _draw_input(top_ax, insp)
        axes[0, 1].axis("off")
        images, ticks, labels, y = {}, [], [], 0.0
        for gate in gates:
            v, cmap, note = _block(gate, insp.values[(cell.layer, cell.direction, gate)],
                                   cell.kind == "rnn" and cell.act is torch.relu)
            images[cmap] = ax.imshow(v.T, aspect="auto", interpolation="nearest", cmap=cmap,
                                     vmin=0.0 if cmap == "viridis" else -1.0, vmax=1.0,
                                     extent=(-0.5, T - 0.5, y + H - 0.5, y - 0.5))
            ticks.append(y + (H - 1) / 2)
            symbol = "n" if cell.kind == "gru" and gate == "candidate" else SYMBOL[gate]  # the GRU's papers call it n
            labels.append(f"{gate} {symbol}{note}")
            y += H + gap
        ax.set_ylim(y - gap - 0.5, -0.5)
        ax.set_facecolor("0.8")  # the gaps between blocks: grey, where a value near 0 is white
        ax.set_yticks(ticks, labels, fontsize=8)
        ax.set_xlabel("time step")
        bars = axes[1, 1]
        bars.axis("off")
        for k, (cmap, im) in enumerate(images.items()):  # the gates' scale above the states'
            box = [0, 0, 1, 1] if len(images) == 1 else [0, 0.53 - 0.53 * k, 1, 0.47]
            bar = fig.colorbar(im, cax=bars.inset_axes(box))
            bar.ax.tick_params(labelsize=7)
        suffix = "" if cell.direction == "forward" else f"-{cell.direction}"
        top_ax.set_title(title(opened, f"{_layer(cell.layer, cell.direction)} ({cell.kind}), {_where(insp)}"), fontsize=9)
        paths.append(save(fig, out_dir / f"inspect-gates-l{cell.layer}{suffix}.{fmt}"))
    return paths


def _gated(insp: Inspection, what: str) -> list[Cell]:
    cells = [c for c in insp.flat_cells if any(g in SIGMOID for g in c.gates)]
    if not cells:
        kinds = ", ".join(sorted({c.kind for c in insp.flat_cells}))
        raise UserError(f"the {what} figure needs gates, and this model ({kinds}) has none; its hidden state is in inspect-gates")
    return cells


def plot_gate_means(opened: OpenedRun, insp: Inspection, out_dir: Path, fmt: str) -> Path:
    """Per layer and direction: each sigmoid gate's mean over the units at every step, ± one standard deviation across units."""
    cells = _gated(insp, "gate means")
    fig, axes = plt.subplots(len(cells), 1, figsize=(9, 1.0 + 2.2 * len(cells)), sharex=True, squeeze=False)
    sat = {(s["layer"], s["direction"], s["gate"]): s["saturated"] for s in insp.saturation}
    for ax, cell in zip(axes[:, 0], cells):
        for gate in (g for g in cell.gates if g in SIGMOID):
            v = insp.values[(cell.layer, cell.direction, gate)]
            t = np.arange(v.shape[0])
            mean, sd = v.mean(axis=1), v.std(axis=1)
            color = COLORS[gate]
            ax.fill_between(t, np.clip(mean - sd, 0, 1), np.clip(mean + sd, 0, 1), color=color, alpha=0.12, lw=0)
            ax.plot(t, mean, color=color, lw=1.5,
                    label=f"{gate} (saturated {100 * sat[(cell.layer, cell.direction, gate)]:.0f} %)")
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"{_layer(cell.layer, cell.direction)}\ngate value", fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper right", ncols=3)
    axes[-1, 0].set_xlabel("time step")
    axes[0, 0].set_title(title(opened, f"mean gate over the units (band: ± 1 s.d.), {_where(insp)}"), fontsize=9)
    return save(fig, out_dir / f"inspect-gate-means.{fmt}")


def plot_saturation(opened: OpenedRun, insp: Inspection, out_dir: Path, fmt: str) -> Path:
    """Per gate, layer and direction: the share of values below LOW and above HIGH over the batch."""
    _gated(insp, "saturation")
    rows = insp.saturation
    labels = [f"{_layer(r['layer'], r['direction'])} {r['gate']}" for r in rows]
    y = np.arange(len(rows))
    low = np.array([r["low"] for r in rows]) * 100
    high = np.array([r["high"] for r in rows]) * 100
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.32 * len(rows)))
    ax.barh(y, low, color="tab:blue", label=f"below {LOW} (closed)")
    ax.barh(y, high, left=low, color="tab:orange", label=f"above {HIGH} (open)")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"share of gate values over {insp.batch} {insp.split} sequences (%)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title(opened, "gate saturation"), fontsize=9)
    return save(fig, out_dir / f"inspect-saturation.{fmt}")


def plot_units(opened: OpenedRun, insp: Inspection, out_dir: Path, fmt: str) -> Path:
    """The units that follow the target best, on the sample: the target (dashed) and, per unit, the
    target as read from that unit alone: its value put through the least-squares line(s) fitted over
    the batch (per step across the sequences, or one line for a single long sequence; a unit that
    falls as the target rises is flipped). One panel per target channel; r is in the legend."""
    channels = list(dict.fromkeys(u["channel"] for u in insp.units))
    fig, axes = plt.subplots(len(channels), 1, figsize=(9, 1.2 + 2.6 * len(channels)), sharex=True, squeeze=False)
    T = insp.steps
    t = np.arange(T)
    for ax, ch in zip(axes[:, 0], channels):
        target = np.where(insp.target_valid, insp.target[:, ch], np.nan)
        ax.plot(t, target, color="k", lw=1.5, ls="--", drawstyle="steps-mid", label="target")
        for u, line in zip(insp.units, insp.unit_lines):
            if u["channel"] == ch:
                name = f"{_layer(u['layer'], u['direction'])} {u['state']} unit {u['unit']}"
                ax.plot(t, line, lw=1.2, label=f"read from {name} (r = {u['r']:+.2f})")
        ax.set_ylabel(insp.target_names[ch], fontsize=8)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("time step")
    axes[-1, 0].set_xlim(-0.5, T - 0.5)
    axes[0, 0].set_title(title(opened, f"units that follow the target, {_where(insp)}"), fontsize=9)
    return save(fig, out_dir / f"inspect-units.{fmt}")


def plot_gradient(opened: OpenedRun, insp: Inspection, out_dir: Path, fmt: str) -> Path:
    """‖∂L/∂h_t‖ against t for every layer and direction, log scale."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    positive = any(bool((n > 0).any()) for n in insp.gradient.values())  # log scale; exact zeros left out
    for (layer, direction), norms in insp.gradient.items():
        label = _layer(layer, direction)
        if norms[-1] > 0:
            label += f" (first/last step {norms[0] / norms[-1]:.2g})"
        ax.plot(np.arange(len(norms)), np.where(norms > 0, norms, np.nan) if positive else norms, lw=1.5, label=label)
    if positive:
        ax.set_yscale("log")
        # plain-text labels (the default mathtext ones are slow to lay out); minor ticks get labels
        # too when the curve spans less than a few decades
        ax.yaxis.set_major_formatter(LogFormatter())
        ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(2, 0.5)))
        ax.tick_params(axis="y", which="both", labelsize=7)
    ax.set_xlabel("time step t")
    ax.set_ylabel("‖∂loss/∂h_t‖" + (" (log scale)" if positive else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title(opened, f"gradient flow, {insp.batch} {insp.split} sequences, loss {insp.loss:.3g}"), fontsize=9)
    return save(fig, out_dir / f"inspect-gradient.{fmt}")
