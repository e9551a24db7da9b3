"""Figures of the evaluation suite and of reports (paper Figures 3, 6-8; Appendices F, I; Table J.2's data).

Every function takes plain arrays or dicts (no model), writes one PNG atomically and labels its axes.
"""

import math

import numpy as np

from seatbelt_tf.evaluation import measures
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
  layers = sorted(kl_units, key=int)
  fig, axes = plt.subplots(1, len(layers), figsize=(max(4.0, 2.6 * len(layers)), 3.0), squeeze=False)
  for ax, layer in zip(axes[0], layers):
    values = np.asarray(kl_units[layer])
    ax.bar(np.arange(len(values)), values, color="C0")
    ax.set_xlabel(f"unit of z^{layer}")
    ax.set_title(f"layer {layer}: {np.sum(values > 0.01)}/{len(values)} active", fontsize=9)
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
  axes[0, -1].legend(fontsize=7)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  save(fig, path)
  plt.close(fig)


def lines_by_group(path, groups, xlabel, ylabel, title, log_x=False):
  """One line per group: {label: [(x, y), ...]} (Figure 3: ELBO against beta per model family)."""
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for i, (label, points) in enumerate(sorted(groups.items())):
    points = sorted(points)
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=f"C{i}", label=label)
  if log_x:
    ax.set_xscale("symlog", linthresh=1.0)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  save(fig, path)
  plt.close(fig)


def heat_maps(path, panels, row_label, col_label, title):
  """Annotated heat maps over a grid (Figures 6-7: beta x L), one panel per entry.

  Args:
    panels: list of (panel title, row values, column values, `[rows, cols]` array with NaN for missing cells).
  """
  plt = pyplot()
  fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels) + 0.5, 3.2), squeeze=False)
  for ax, (name, rows, cols, values) in zip(axes[0], panels):
    values = np.asarray(values, np.float64)
    masked = np.ma.masked_invalid(values)
    image = ax.imshow(masked, cmap="viridis", aspect="auto")
    for r in range(values.shape[0]):
      for c in range(values.shape[1]):
        text = "—" if math.isnan(values[r, c]) else f"{values[r, c]:.3g}"
        ax.text(c, r, text, ha="center", va="center", fontsize=8, color="w" if not math.isnan(values[r, c]) else "k")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols])
    ax.set_yticks(range(len(rows)), [f"{v:g}" for v in rows])
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    ax.set_title(name, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  save(fig, path)
  plt.close(fig)
