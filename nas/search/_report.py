"""A study's report files: Pareto table (CSV), front plots (PNG, HTML), hypervolume history, and
for a study with more objectives than accuracy and latency, its front as pairwise plots."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import optuna

from nas.search._pareto import hypervolume_2d

__all__ = ["write_reports"]


def write_reports(job: Any, study: optuna.Study, fronts: dict[str, list], out: Path) -> list[Path]:
    """The report files of ``job``'s study in ``out``: the Pareto table, the front plots per
    device and the hypervolume history."""
    import matplotlib

    matplotlib.use("Agg")

    trials = job._complete(study)
    files = [
        _pareto_csv(fronts, out / "pareto.csv"),
        *_front_plots(job, trials, fronts, out),
        _hypervolume_plot(job, trials, out / "hypervolume_history.png"),
    ]
    extra = job.extra_objectives
    if extra:
        files.append(_pairwise_plot(job, trials, fronts, extra, out / "pareto_pairs.png"))
    return files


def _pareto_csv(fronts: dict[str, list], csv_path: Path) -> Path:
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["device", "trial", "config", "accuracy", "latency_ms", "size_kb", "mlflow_run_id"]
        )
        for name, front in fronts.items():
            for t in front:
                writer.writerow(
                    [
                        name,
                        t.number,
                        t.user_attrs["config"],
                        t.user_attrs["accuracy"],
                        t.user_attrs["latency_ms"][name],
                        t.user_attrs.get("size_kb", ""),
                        t.user_attrs.get("mlflow_run_id", ""),
                    ]
                )
    return csv_path


def _front_plots(job: Any, trials: list, fronts: dict[str, list], out: Path) -> list[Path]:
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    fig, axes = plt.subplots(1, len(fronts), figsize=(5.5 * len(fronts), 4.2), squeeze=False)
    html = go.Figure()
    for ax, (name, front) in zip(axes[0], fronts.items(), strict=True):
        ax.scatter(
            [t.user_attrs["latency_ms"][name] for t in trials],
            [t.user_attrs["accuracy"] for t in trials],
            s=10,
            alpha=0.4,
            label="trials",
        )
        xs = [t.user_attrs["latency_ms"][name] for t in front]
        ys = [t.user_attrs["accuracy"] for t in front]
        if job.extra_objectives:  # a front in more objectives: no step line
            ax.scatter(xs, ys, color="C3", s=16, label="Pareto front (all objectives)")
        else:
            ax.step(xs, ys, where="post", color="C3", marker="o", ms=4, label="Pareto front")
        ax.set_xlabel(f"latency on {name} (ms, predicted from LUT)")
        ax.set_ylabel(
            "top-1 (validation)" if job.spec.evaluator.kind == "supernet" else "top-1 (predicted)"
        )
        ax.legend(fontsize=8)
        ax.set_title(name)
        html.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                name=f"front: {name}",
                text=[t.user_attrs["config"] for t in front],
                line_shape="hv",
            )
        )
    fig.tight_layout()
    png = out / "pareto_front.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    html.update_layout(xaxis_title="latency (ms, predicted)", yaxis_title="top-1")
    html_path = out / "pareto_front.html"
    html.write_html(str(html_path), include_plotlyjs=True)
    return [png, html_path]


def _pairwise_plot(job: Any, trials: list, fronts: dict[str, list], extra, path: Path) -> Path:
    """The first device's front in every pair of objectives (latency, top-1 and each of
    ``extra``), over all trials: a front in three or more objectives, drawn flat."""
    import itertools

    import matplotlib.pyplot as plt

    target = job.device_names[0]
    label = {
        "accuracy": "top-1",
        "latency": f"latency on {target} (ms, predicted)",
        "size": "size (KiB, predicted)",
        "params": "parameters",
        "macs": "MACs",
    }

    def value(t: Any, objective: str) -> float:
        if objective == "latency":
            return t.user_attrs["latency_ms"][target]
        if objective == "accuracy":
            return t.user_attrs["accuracy"]
        return job._extra_objectives(t)[list(extra).index(objective)]

    pairs = list(itertools.combinations(["latency", *extra, "accuracy"], 2))
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.8 * len(pairs), 4.0), squeeze=False)
    for ax, (x, y) in zip(axes[0], pairs, strict=True):
        ax.scatter([value(t, x) for t in trials], [value(t, y) for t in trials], s=8, alpha=0.3)
        front = fronts[target]
        ax.scatter([value(t, x) for t in front], [value(t, y) for t in front], s=18, color="C3")
        ax.set_xlabel(label[x])
        ax.set_ylabel(label[y])
    axes[0][0].legend(["trials", "Pareto front"], fontsize=8)
    fig.suptitle(f"{job.spec.name}: the front in {len(extra) + 2} objectives, pairwise")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _hypervolume_plot(job: Any, trials: list, hv: Path) -> Path:
    """Hypervolume after each completed trial, in trial order."""
    import matplotlib.pyplot as plt

    target = job.device_names[0]
    points, history = [], []
    for t in sorted(trials, key=lambda t: t.number):
        points.append((t.user_attrs["latency_ms"][target], t.user_attrs["accuracy"]))
        history.append(hypervolume_2d(points, *job.reference))
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(range(1, len(history) + 1), history)
    ax.set_xlabel("completed trials")
    ax.set_ylabel(f"hypervolume (ref {job.reference[0]:.2f} ms, {job.reference[1]:.2f})")
    fig.tight_layout()
    fig.savefig(hv, dpi=110)
    plt.close(fig)
    return hv
