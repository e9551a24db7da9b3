"""Shared matplotlib helpers: a headless pyplot, atomic PNG writes, and image panels in the data's range."""

import os

import numpy as np

from seatbelt_tf import io_utils


def pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def save(fig, path):
  tmp = io_utils.temporary_file(path, suffix=".png")
  try:
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    io_utils.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def excess_curves_figure(curves, path, modes=("latent", "output")):
  """Per attack mode (columns), each curve's median excess of -log p(x^t|z~) over its floor against lambda, with the
  band between its quartiles (`seatbelt_tf.scores.excess_quartiles`). `curves`: [(mode, legend name, solid?,
  lambdas, quartiles)]; dashed where not solid (an out-of-date sweep). Written atomically to `path`."""
  plt = pyplot()
  fig, axes = plt.subplots(1, len(modes), figsize=(11, 4.2), squeeze=False)
  for column, mode in enumerate(modes):
    ax = axes[0, column]
    for _, name, solid, lambdas, quartiles in (c for c in curves if c[0] == mode):
      line, = ax.plot(lambdas, quartiles[:, 1], "-" if solid else "--", label=name)
      ax.fill_between(lambdas, quartiles[:, 0], quartiles[:, 2], color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xscale("log", base=2)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.set_xlabel("λ (the weight of the distortion)")
    ax.set_ylabel("excess of −log p(x^t|z̃) over the floor (nats)")
    ax.set_title(f"{mode} attack: median over seeds × pairs, quartile band", fontsize=9)
    if any(c[0] == mode for c in curves):
      ax.legend(fontsize=7)
  save(fig, path)
  plt.close(fig)


def show_image(ax, image, data_range, title=None, diverging=False):
  image = np.asarray(image, np.float64)
  lo, hi = data_range
  if diverging:  # distortions: symmetric colour scale around 0
    span = max(np.abs(image).max(), 1e-8)
    ax.imshow(image.mean(axis=-1), cmap="RdBu_r", vmin=-span, vmax=span)
  elif image.shape[-1] == 1:
    ax.imshow(image[..., 0], cmap="gray", vmin=lo, vmax=hi)
  else:
    ax.imshow((image - lo) / (hi - lo))
  ax.set_xticks([])
  ax.set_yticks([])
  if title:
    ax.set_title(title, fontsize=9)
