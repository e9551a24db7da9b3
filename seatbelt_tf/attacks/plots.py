"""Figures of an attack sweep (paper Figure 1 and Appendix G): the attack grid and distortion against distance.

Both take plain arrays and records (`run_attack` output), so they work the same for a live model or a reloaded one.
Files are written atomically (a temporary PNG beside the target, then a rename).
"""

import numpy as np

from seatbelt_tf.plotting import pyplot as _pyplot
from seatbelt_tf.plotting import save as _save
from seatbelt_tf.plotting import show_image as _show


def attack_grid(path, records, arrays, adversarial_recons, data_range, title):
  """One row per pair at its displayed lambda: input, target, distortion, adversarial input, its reconstruction.

  Args:
    path: PNG to write.
    records: records of one mode and layer set (`run_attack`), with `display` marks.
    arrays: `inputs`, `targets`, `distortions`, `adversarial` indexed like the records.
    adversarial_recons: `[n, H, W, C]` mean reconstructions of the adversarial inputs, indexed like the records.
    data_range: (lo, hi) of the data.
    title: figure title.
  """
  plt = _pyplot()
  rows = [i for i, r in enumerate(records) if r["display"]]
  columns = ("input x", "target x^t", "distortion d", "adversarial x + d", "reconstruction")
  fig, axes = plt.subplots(len(rows), 5, figsize=(8.5, 1.75 * len(rows) + 0.6), squeeze=False)
  for row, i in enumerate(rows):
    images = (arrays["inputs"][i], arrays["targets"][i], arrays["distortions"][i], arrays["adversarial"][i],
              adversarial_recons[i])
    for col, image in enumerate(images):
      _show(axes[row, col], image, data_range, columns[col] if row == 0 else None, diverging=col == 2)
    budget = f"λ={records[i]['lambda']:.2g}" if "lambda" in records[i] else f"ε={records[i]['epsilon']:.2g}"
    axes[row, 0].set_ylabel(f"pair {records[i]['pair']}\n{budget}", fontsize=8)
  fig.suptitle(title, fontsize=10)
  _save(fig, path)
  plt.close(fig)


def distortion_curve(path, records, title):
  """||d||_2 against ||recon(x*) - x^t||_2 over lambda, one line per pair (log-scaled distortion)."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for pair in sorted({r["pair"] for r in records}):
    rs = sorted((r for r in records if r["pair"] == pair), key=lambda r: r["lambda"])
    d = np.maximum([r["distortion_l2"] for r in rs], 1e-6)
    ax.plot(d, [r["adversarial_to_target_l2"] for r in rs], marker=".", label=f"pair {pair}")
    shown = [r for r in rs if r["display"]]
    if shown:
      ax.scatter([max(shown[0]["distortion_l2"], 1e-6)], [shown[0]["adversarial_to_target_l2"]], s=60,
                 facecolors="none", edgecolors="k")
  ax.set_xscale("log")
  ax.set_xlabel("distortion ||d||₂ (log scale)")
  ax.set_ylabel("||recon(x + d) − x^t||₂")
  ax.set_title(title, fontsize=10)
  if len({r["pair"] for r in records}) <= 10:
    ax.legend(fontsize=7)
  ax.grid(alpha=0.3)
  _save(fig, path)
  plt.close(fig)


def budget_curve(path, records, title):
  """-log p(x^t|z~) against the L2 radius of a fixed-budget attack (`attacks.budget`), one thin line per pair and
  the median over pairs in black (log-scaled radius): lower is a stronger attack, a less robust model."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(5.5, 4))
  epsilons = sorted({r["epsilon"] for r in records})
  for pair in sorted({r["pair"] for r in records}):
    rs = sorted((r for r in records if r["pair"] == pair), key=lambda r: r["epsilon"])
    ax.plot([r["epsilon"] for r in rs], [r["target_nll"] for r in rs], color="tab:blue", alpha=0.35, lw=1)
  ax.plot(epsilons, [np.median([r["target_nll"] for r in records if r["epsilon"] == e]) for e in epsilons],
          color="k", marker="o", lw=2, label="median over pairs")
  ax.set_xscale("log")
  ax.set_xlabel("L2 budget ε (log scale)")
  ax.set_ylabel("−log p(x^t | z̃),  z̃ ~ q(z | x*)")
  ax.set_title(title, fontsize=10)
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3)
  _save(fig, path)
  plt.close(fig)


def margin_histogram(path, records, title):
  """Histogram of r-robustness margins (`attacks.measures.robustness_margins`); censored inputs (not moved by r
  within the largest radius) are stacked in grey at that radius."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(5.5, 3.6))
  margins = np.array([r["margin"] for r in records])
  censored = np.array([r["censored"] for r in records], bool)
  top = records[0]["epsilon_max"] if records else 1.0
  bins = np.linspace(0.0, top, 21)
  ax.hist([margins[~censored], margins[censored]], bins=bins, stacked=True, color=["tab:blue", "0.6"],
          label=["margin found", f"censored (> {top:.3g})"])
  if (~censored).any():
    ax.axvline(np.median(margins[~censored]), color="k", ls="--", lw=1, label="median of those found")
  ax.set_xlabel("smallest L2 radius ε moving the reconstruction by > r")
  ax.set_ylabel("inputs")
  ax.set_title(title, fontsize=10)
  ax.legend(fontsize=7)
  _save(fig, path)
  plt.close(fig)
