"""Datasets: sources with a common interface, a registry, and tf.data pipelines.

A source has `name`, `num_examples`, `factor_names`, `factor_sizes` (empty when the dataset has no ground-truth
factors), `image_shape`, `data_range` (the box pixel values, and attacked inputs, stay in), `likelihood`
("bernoulli" for binary data in {0, 1}, "gaussian" for continuous data in [-1, 1]), `z_sizes` (the hierarchical
models' layer widths for this dataset, paper eqs. C.1-C.4), `images(indices) -> uint8 [n, H, W, C]`,
`factors(indices) -> int64 [n, K]` and the graph-safe `tf_images(indices) -> float32 [n, H, W, C]` (in
`data_range`) used by the pipelines.

| name | what | needs |
|---|---|---|
| dsprites_procedural | dSprites rendered on demand (default) | nothing |
| dsprites | the original npz, or the TFDS `dsprites` builder | --data_dir (npz or prepared TFDS) / --manual_dir |
| shapes3d | TFDS `shapes3d` (3D Shapes, 6 factors) | --data_dir (prepared) or --manual_dir (3dshapes.h5) |
| celeb_a | TFDS `celeb_a`, centre crop 148, 64x64 | --data_dir (prepared) or --manual_dir (the 5 archives) |
| image_folder | any folder tree of images (Chairs, 3D Faces) | --data_dir=<folder> |
"""

import os

from seatbelt_tf.data.arrays import ArraySource, ImageStore
from seatbelt_tf.data.dsprites import NPZ_FILENAME, DSpritesNpz, ProceduralDSprites
from seatbelt_tf.data.image_folder import load_image_folder
from seatbelt_tf.data.pipeline import eval_dataset, train_dataset
from seatbelt_tf.data.tfds_sources import TFDS_SPECS, load_tfds


def _build_dsprites(data_dir=None, manual_dir=None, grayscale=False, **_):
  """The original npz when `data_dir` holds it, else the TFDS builder (prepared data or --manual_dir)."""
  if data_dir and os.path.isfile(os.path.join(os.path.expanduser(data_dir), NPZ_FILENAME)):
    return DSpritesNpz(data_dir)
  return load_tfds("dsprites", data_dir=data_dir, manual_dir=manual_dir)


def _tfds_builder(name):
  return lambda data_dir=None, manual_dir=None, grayscale=False, **_: load_tfds(
      name, data_dir=data_dir, manual_dir=manual_dir, grayscale=grayscale)


# name -> builder(data_dir=None, manual_dir=None, grayscale=False, **options) -> source; options: bad_images
# ("fail" or "skip": what an image folder does with a file that does not decode)
DATASETS = {
    "dsprites_procedural": lambda data_dir=None, manual_dir=None, grayscale=False, **_: ProceduralDSprites(),
    "dsprites": _build_dsprites,
    "shapes3d": _tfds_builder("shapes3d"),
    "celeb_a": _tfds_builder("celeb_a"),
    "image_folder": lambda data_dir=None, manual_dir=None, grayscale=False, bad_images="fail", **_: (
        load_image_folder(data_dir, grayscale=grayscale, bad_images=bad_images)),
}


def build_dataset(name, data_dir=None, manual_dir=None, grayscale=False, bad_images="fail"):
  """Builds the dataset source registered under `name`."""
  if name not in DATASETS:
    raise ValueError(f"Unknown dataset {name!r}: choose one of {', '.join(sorted(DATASETS))}.")
  return DATASETS[name](data_dir=data_dir, manual_dir=manual_dir, grayscale=grayscale, bad_images=bad_images)


__all__ = ["DATASETS", "TFDS_SPECS", "ArraySource", "DSpritesNpz", "ImageStore", "ProceduralDSprites",
           "build_dataset", "eval_dataset", "load_image_folder", "load_tfds", "train_dataset"]
