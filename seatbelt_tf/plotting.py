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
