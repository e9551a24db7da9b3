"""Datasets: sources with a common interface, a registry, and tf.data pipelines.

A source has `name`, `num_examples`, `factor_names`, `factor_sizes`, `image_shape`, `data_range`, `likelihood`,
`z_sizes` (optional: the hierarchical models' layer widths for this dataset, paper eqs. C.1-C.4),
`images(indices) -> uint8 [n, H, W, C]`, `factors(indices) -> int64 [n, K]` and the graph-safe
`tf_images(indices) -> float32 [n, H, W, C]` used by the pipelines.
"""

from seatbelt_tf.data.dsprites import DSpritesNpz, ProceduralDSprites
from seatbelt_tf.data.pipeline import eval_dataset, train_dataset


def _build_dsprites_npz(data_dir=None):
  if not data_dir:
    raise ValueError("--dataset=dsprites reads the original npz and needs --data_dir=<folder holding "
                     "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz>; --dataset=dsprites_procedural needs none.")
  return DSpritesNpz(data_dir)


# name -> builder(data_dir=None) -> source
DATASETS = {
    "dsprites_procedural": lambda data_dir=None: ProceduralDSprites(),
    "dsprites": _build_dsprites_npz,
}


def build_dataset(name, data_dir=None):
  """Builds the dataset source registered under `name`."""
  if name not in DATASETS:
    raise ValueError(f"Unknown dataset {name!r}: choose one of {', '.join(sorted(DATASETS))}.")
  return DATASETS[name](data_dir=data_dir)


__all__ = ["DATASETS", "DSpritesNpz", "ProceduralDSprites", "build_dataset", "eval_dataset", "train_dataset"]
