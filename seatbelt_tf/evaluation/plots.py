"""Figures of the evaluation suite and of reports (paper Figures 3, 6-8; Appendices F, I; Table J.2's data).

Every function takes plain arrays or dicts (no model), writes one PNG atomically and labels its axes.
"""

import math

import numpy as np

from seatbelt_tf.evaluation import measures
from seatbelt_tf.evaluation import units
from seatbelt_tf.plotting import pyplot
from seatbelt_tf.plotting import save
from seatbelt_tf.plotting import show_image


def image_rows(path, rows, data_range, title, column_labels=None):
  """A grid of images, one labelled row per (label, `[n, H, W, C]` images) entry of `rows`."""
  plt = pyplot()
  cols = max(len(images) for _, images in rows)
  fig, axes = plt.subplots(len(rows), cols, figsize=(1.1 * cols + 0.8, 1.15 * len(rows) + 0.6), squeeze=False)
  for r, (label, images) in enumerate(rows):
    for c in range(cols):
      ax = axes[r, c]
      if c < len(images):
        show_image(ax, images[c], data_range, column_labels[c] if (column_labels and r == 0) else None)
      else:
        ax.axis("off")
    axes[r, 0].set_ylabel(label, fontsize=8)
  fig.suptitle(title, fontsize=10)
  save(fig, path)
  plt.close(fig)


def reconstructions(path, images, recons, data_range, title):
  """Held-out images over their mean reconstructions."""
  image_rows(path, [("input x", images), ("reconstruction", recons)], data_range, title)


def sample_grid(path, images, data_range, title, per_row=8):
  """Ancestral samples (Appendix I) in rows of `per_row`."""
  rows = [(f"samples {i + 1}-{min(len(images), i + per_row)}", images[i:i + per_row])
          for i in range(0, len(images), per_row)]
  image_rows(path, rows, data_range, title)


def traversal_grid(path, traversal, values, data_range, title, unit_kls=None):
  """Latent traversals of z^L (Appendix I.34): one row per unit (labelled with its mean KL when given)."""
  rows = []
  for j in range(traversal.shape[0]):
    label = f"z^L unit {j}" + (f"\nKL {unit_kls[j]:.2f}" if unit_kls is not None else "")
    rows.append((label, traversal[j]))
  image_rows(path, rows, data_range, title, column_labels=[f"{v:+.1f}" for v in values])


def kl_activation(path, kl_units, title):
  """Mean KL per unit, one panel per layer (Appendix F): which units and layers carry information."""
  plt = pyplot()
  layers = units.by_layer(kl_units)
  active = units.active_units(kl_units)
  fig, axes = plt.subplots(1, len(layers), figsize=(max(4.0, 2.6 * len(layers)), 3.0), squeeze=False)
  for ax, (layer, values), count in zip(axes[0], layers, active):
    values = np.asarray(values)
    ax.bar(np.arange(len(values)), values, color="C0")
    ax.axhline(units.ACTIVE_UNIT_KL, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel(f"unit of z^{layer}")
    ax.set_title(f"layer {layer}: {count}/{len(values)} active (KL > {units.ACTIVE_UNIT_KL:g})", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
  axes[0, 0].set_ylabel("mean KL (nats)")
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  save(fig, path)
  plt.close(fig)


def noise_histograms(path, curves, title):
  """Smoothed histograms of log p(x|z*) under input noise (Figure 8): one panel per scale, one line per label.

  Args:
    curves: {label: {scale: `[N]` log-likelihoods}}.
  """
  plt = pyplot()
  scales = sorted({s for per in curves.values() for s in per})
  fig, axes = plt.subplots(1, len(scales), figsize=(3.4 * len(scales), 3.0), squeeze=False)
  for ax, s in zip(axes[0], scales):
    values = [v[s] for v in curves.values() if s in v]
    lo = min(np.percentile(v, 1) for v in values)
    hi = max(np.max(v) for v in values)
    grid = np.linspace(lo, hi + 1e-6, 200)
    for i, (label, per) in enumerate(curves.items()):
      if s in per:
        ax.plot(grid, measures.smoothed_density(per[s], grid), color=f"C{i}", label=label)
    ax.set_title(f"noise scale s = {s:g}", fontsize=9)
    ax.set_xlabel("log p(x | z*)")
    ax.grid(alpha=0.3)
  axes[0, 0].set_ylabel("density")
  handles, labels = axes[0, 0].get_legend_handles_labels()
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
  save(fig, path)
  plt.close(fig)


def lines_by_group(path, groups, xlabel, ylabel, title, log_x=False):
  """One line per group: {label: [(x, y), ...]} (Figure 3: ELBO against beta per model family)."""
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for i, (label, points) in enumerate(sorted(groups.items())):
    points = sorted(points)
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="osD^vP"[i % 6], markersize=8,
            markerfacecolor="none", color=f"C{i}", label=label)  # hollow markers: coinciding runs stay visible
  xs = sorted({p[0] for points in groups.values() for p in points})
  if log_x and xs and min(xs) > 0:
    ax.set_xscale("log")
    ax.minorticks_off()
  ax.set_xticks(xs, [f"{x:g}" for x in xs])
  if len(xs) == 1:
    ax.set_xlim(xs[0] * 0.5, xs[0] * 2.0)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
  fig.tight_layout()
  save(fig, path)
  plt.close(fig)


def cell_format(lo, hi):
  """A format spec whose labels tell apart values spread over [lo, hi] (enough decimals for a hundredth of it)."""
  spread = abs(hi - lo)
  decimals = 1 if spread == 0 else int(min(4, max(0, math.ceil(-math.log10(spread / 100.0)))))
  return f".{decimals}f"


def heat_maps(path, panels, row_label, col_label, title, columns=None, scales=None):
  """Annotated heat maps over a grid (Figures 6-7: beta x L), one panel per entry, `columns` panels per row.

  Args:
    panels: list of (panel title, row values, column values, `[rows, cols]` array with NaN for missing cells).
    scales: optional list of (vmin, vmax), one per panel: panels of one metric share a scale, so a colour means
      the same value in each (default: each panel's own range). Labels carry enough decimals to tell the cells of
      the scale apart.
  """
  plt = pyplot()
  columns = columns or len(panels)
  rows = math.ceil(len(panels) / columns)
  fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns + 0.5, 3.0 * rows + 0.4), squeeze=False)
  for ax in axes.flat[len(panels):]:
    ax.axis("off")
  for k, (ax, (name, row_values, col_values, values)) in enumerate(zip(axes.flat, panels)):
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    if scales is not None:
      lo, hi = scales[k]
    spec = cell_format(lo, hi)
    spread = hi > lo
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto",
                      vmin=lo if spread else lo - 1.0, vmax=hi if spread else lo + 1.0)
    for r in range(values.shape[0]):
      for c in range(values.shape[1]):
        v = values[r, c]
        bright = not math.isnan(v) and hi > lo and (v - lo) / (hi - lo) > 0.6
        ax.text(c, r, "—" if math.isnan(v) else format(v, spec), ha="center", va="center", fontsize=9,
                color="black" if bright or math.isnan(v) else "white")
    ax.set_xticks(range(len(col_values)), [str(c) for c in col_values])
    ax.set_yticks(range(len(row_values)), [f"{v:g}" for v in row_values])
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    ax.set_title(name, fontsize=9)
    if spread:  # one value (a single cell, or all equal) needs no colour scale
      fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  save(fig, path)
  plt.close(fig)


def bars(path, labels, panels, title):
  """Horizontal bar charts, one panel per metric, one bar per label (runs whose β × L grid has one cell, where a
  heat map would carry no information).

  Args:
    labels: bar names.
    panels: list of (metric name, values aligned with `labels`, NaN for a missing value).
  """
  plt = pyplot()
  fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.5, 0.35 * len(labels) + 1.4),
                           squeeze=False)
  for ax, (name, values) in zip(axes.flat, panels):
    values = np.asarray(values, np.float64)
    y = np.arange(len(labels))
    ax.barh(y, np.nan_to_num(values), color="tab:blue")
    finite = values[np.isfinite(values)]
    spec = cell_format(finite.min(), finite.max()) if finite.size else ".1f"
    for yi, v in zip(y, values):
      ax.text(0 if math.isnan(v) else v, yi, " —" if math.isnan(v) else f" {format(v, spec)}", va="center",
              fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(name)
    ax.grid(axis="x", alpha=0.3)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  save(fig, path)
  plt.close(fig)
