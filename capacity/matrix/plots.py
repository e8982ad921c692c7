"""The report's plots (matplotlib, PNG bytes by file name): throughput vs concurrency with the USL
curve and N*, service times per cell, queue depth of sustained cells, worker CPU and memory per
cell, and the model against the measurement. Imported only when a report is written."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from capacity.load.monitor import read_samples
from capacity.matrix.analysis import GroupFit, ValidationCheck
from capacity.matrix.cells import Cell, group_label
from capacity.measure.metrics import Bucket
from capacity.render.charts import percentile_lines, png, pyplot


def plots(cells: list[Cell], fits: list[GroupFit], checks: list[ValidationCheck]) -> dict[str, bytes]:
    """PNG images by file name: throughput vs concurrency with the USL curve and N*, service-time
    distribution per cell, queue depth of sustained cells, worker CPU and memory per cell, and the
    model against the measurement."""
    plt = pyplot()
    images: dict[str, bytes] = {}

    def save(name: str, figure: Any) -> None:
        images[name] = png(figure)

    figure, ax = plt.subplots(figsize=(7, 4.2))
    for g in fits:
        ns = [n for n, _ in g.points]
        xs = [x for _, x in g.points]
        line = ax.plot(ns, xs, "o", label=f"{group_label(g.group)} measured")[0]
        if g.fit is not None:
            top = max(ns) * 2
            if not math.isinf(g.fit.peak_concurrency):
                top = max(top, math.ceil(g.fit.peak_concurrency * 1.3))
            grid = np.linspace(1, top, 200)
            ax.plot(grid, g.fit.throughput(grid), "-", color=line.get_color(), label=f"{group_label(g.group)} USL")
            if not math.isinf(g.fit.peak_concurrency):
                ax.axvline(g.fit.peak_concurrency, color=line.get_color(), linestyle=":", label="N*")
    ax.set_xlabel("concurrency N")
    ax.set_ylabel("throughput X (tasks/min)")
    ax.set_title("Throughput vs concurrency, with the USL fit")
    ax.legend(fontsize=7)
    save("throughput_usl.png", figure)

    samples, labels = [], []
    for cell in cells:
        if len(cell.per_task[1]):
            samples.append(cell.per_task[1])
            labels.append(cell.label)
    if samples:
        figure, ax = plt.subplots(figsize=(max(6, len(samples) * 0.7), 4.2))
        ax.boxplot(samples, tick_labels=labels, showfliers=True)
        ax.set_ylabel("service time S (s)")
        ax.set_title("Service-time distribution per cell")
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        save("service_times.png", figure)

    sustained = [c for c in cells if c.spec.mode != "burst" and c.monitor_csv]
    if sustained:
        figure, ax = plt.subplots(figsize=(7, 4.2))
        for cell in sustained:
            t, depth = _monitor(cell.monitor_csv)
            if len(t):
                ax.plot(t - t[0], depth, label=cell.label)
        ax.set_xlabel("seconds since the first sample")
        ax.set_ylabel("visible messages")
        ax.set_title("Queue depth over time (sustained cells)")
        ax.legend(fontsize=7)
        save("queue_depth.png", figure)

    with_timeline = [c for c in cells if c.metrics.get("timeline")]
    if with_timeline:
        figure, ax = plt.subplots(figsize=(7.5, 4.2))
        for cell in with_timeline:
            buckets = [Bucket(**b) for b in cell.metrics["timeline"]]
            percentile_lines(ax, buckets, cell.label)
        ax.set_xlabel("seconds after the cell's first send")
        ax.set_ylabel("seconds")
        ax.set_title("Percentiles over time: W and S p95 (solid) and p50 (dashed) per cell")
        ax.legend(fontsize=6, ncol=2)
        save("percentiles_over_time.png", figure)

    with_resources = [c for c in cells if c.result.resources and c.result.resources.worker_cpu_mean_percent is not None]
    measured = [r for c in with_resources if (r := c.result.resources)]
    if with_resources:
        figure, (cpu_ax, mem_ax) = plt.subplots(1, 2, figsize=(max(8, len(with_resources) * 0.9), 4.2))
        names = [c.label for c in with_resources]
        positions = np.arange(len(names))
        mean = [r.worker_cpu_mean_percent for r in measured]
        peak = [r.worker_cpu_max_percent or 0 for r in measured]
        cpu_ax.bar(positions - 0.2, mean, 0.4, label="mean")
        cpu_ax.bar(positions + 0.2, peak, 0.4, label="max")
        cpu_ax.set_ylabel("worker CPU (% of one core)")
        cpu_ax.set_title("Worker CPU per cell")
        cpu_ax.legend(fontsize=7)
        rss = [(r.worker_rss_peak_bytes or 0) / 2**20 for r in measured]
        mem_ax.bar(positions, rss)
        mem_ax.set_ylabel("peak resident memory (MiB)")
        mem_ax.set_title("Worker memory per cell")
        for ax in (cpu_ax, mem_ax):
            ax.set_xticks(positions, names, rotation=60, fontsize=7)
        save("worker_resources.png", figure)

    if checks:
        figure, ax = plt.subplots(figsize=(max(6, len(checks) * 0.7), 4.2))
        positions = np.arange(len(checks))
        ax.bar(positions - 0.2, [c.throughput_per_min.measured or 0 for c in checks], 0.4, label="measured")
        ax.bar(positions + 0.2, [c.throughput_per_min.predicted or 0 for c in checks], 0.4, label="model")
        ax.set_xticks(positions, [c.cell for c in checks], rotation=60, fontsize=7)
        ax.set_ylabel("X (tasks/min)")
        ax.set_title("Throughput: measured vs simulated")
        ax.legend(fontsize=7)
        save("model_vs_measured.png", figure)
    return images


def _monitor(path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    samples = read_samples(path) if path is not None else []
    return np.array([s.t for s in samples]), np.array([s.visible for s in samples])
