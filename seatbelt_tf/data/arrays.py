"""In-memory image stores behind the dataset-source interface (`seatbelt_tf.data`).

Datasets that come as files (TFDS builders, image folders, the dSprites npz) are decoded once into an
`ImageStore`: uint8 `[N, H, W, C]` rows, bit-packed (8 pixels a byte) when the data are binary. The tf.data
pipelines then gather batches by index from it, so the index shuffle of `pipeline.py` works unchanged, nothing is
`.cache()`d and nothing is copied per tf.data worker (a tf.Variable or constant captured by the map was: see
docs/BENCHMARKS.md). `ArraySource` wraps a store, optional ground-truth factors and the preprocessing the paper
uses: binary data stay in {0, 1} (Bernoulli likelihood); continuous data are scaled to [-1, 1] (Gaussian
likelihood; paper Appendix C), which is also the box the attacks keep their inputs in (`data_range`).
"""

import numpy as np
import tensorflow as tf

from seatbelt_tf.config import DEFAULT_Z_SIZES

DATA_RANGES = {"bernoulli": (0.0, 1.0), "gaussian": (-1.0, 1.0)}


def as_indices(indices, num_examples):
  """`indices` as a validated int64 `[n]` array of positions in [0, num_examples)."""
  indices = np.asarray(indices, dtype=np.int64)
  if indices.ndim != 1:
    raise ValueError(f"indices must be a 1-D array, got shape {indices.shape}.")
  if indices.size and (indices.min() < 0 or indices.max() >= num_examples):
    raise IndexError(f"indices must lie in [0, {num_examples}), got [{indices.min()}, {indices.max()}].")
  return indices


class ImageStore:
  """uint8 images in memory, filled chunk by chunk; bit-packed when `binary`.

  Args:
    capacity: rows to allocate (grown if more are written, trimmed by `finish`).
    image_shape: (H, W, C).
    binary: store one bit per pixel (any non-zero value is 1).
  """

  def __init__(self, capacity, image_shape, binary):
    self.image_shape = tuple(int(s) for s in image_shape)
    self.binary = bool(binary)
    pixels = int(np.prod(self.image_shape))
    if self.binary and pixels % 8:
      raise ValueError(f"A binary store packs 8 pixels a byte; {self.image_shape} has {pixels} pixels.")
    self.row_bytes = pixels // 8 if self.binary else pixels
    self._rows = np.empty((max(int(capacity), 1), self.row_bytes), np.uint8)
    self.num_rows = 0

  def append(self, images):
    """Appends uint8 `[n, H, W, C]` images."""
    images = np.asarray(images)
    if images.shape[1:] != self.image_shape:
      raise ValueError(f"Expected images of shape {self.image_shape}, got {images.shape[1:]}.")
    flat = images.reshape(len(images), -1)
    rows = np.packbits(flat > 0, axis=1) if self.binary else flat.astype(np.uint8, copy=False)
    end = self.num_rows + len(rows)
    if end > len(self._rows):
      grown = np.empty((max(end, 2 * len(self._rows)), self.row_bytes), np.uint8)
      grown[:self.num_rows] = self._rows[:self.num_rows]
      self._rows = grown
    self._rows[self.num_rows:end] = rows
    self.num_rows = end

  def finish(self):
    """Trims unused capacity; returns self."""
    if self.num_rows < len(self._rows):
      self._rows = self._rows[:self.num_rows].copy()
    return self

  @property
  def nbytes(self):
    return self._rows.nbytes

  def images(self, indices):
    """uint8 `[n, H, W, C]` rows (0/1 when binary)."""
    rows = self._rows[indices]
    if self.binary:
      rows = np.unpackbits(rows, axis=1)
    return rows.reshape((-1,) + self.image_shape)

  def tf_images(self, indices):
    """Graph-safe gather: int `[n]` tensor -> float32 `[n, H, W, C]` raw pixel values (0/1 or 0..255).

    The rows are gathered in numpy (a 256-row gather takes microseconds, even under the GIL); bits are unpacked
    and bytes converted in TensorFlow.
    """
    rows = tf.numpy_function(lambda i: self._rows[i], [tf.cast(indices, tf.int64)], tf.uint8, stateful=False)
    rows = tf.ensure_shape(rows, [None, self.row_bytes])
    if self.binary:
      shifts = tf.constant([7, 6, 5, 4, 3, 2, 1, 0], tf.uint8)
      rows = tf.bitwise.bitwise_and(tf.bitwise.right_shift(rows[:, :, None], shifts), 1)
    return tf.reshape(tf.cast(rows, tf.float32), (-1,) + self.image_shape)


class ArraySource:
  """A dataset source over an `ImageStore` (see `seatbelt_tf.data` for the interface).

  Args:
    name: registry name.
    store: the images.
    likelihood: "bernoulli" (binary data, kept in {0, 1}) or "gaussian" (bytes scaled to [-1, 1]).
    factors: optional int `[N, K]` ground-truth factor classes.
    factor_names, factor_sizes: K names and class counts (empty when the dataset has no factors).
    z_sizes: the hierarchical models' layer widths for this dataset (paper eqs. C.1-C.4).
  """

  def __init__(self, name, store, likelihood, factors=None, factor_names=(), factor_sizes=(),
               z_sizes=DEFAULT_Z_SIZES):
    if likelihood not in DATA_RANGES:
      raise ValueError(f"Unknown likelihood {likelihood!r}: choose one of {', '.join(DATA_RANGES)}.")
    if likelihood == "bernoulli" and not store.binary:
      raise ValueError("A Bernoulli source needs a binary store.")
    self.name = name
    self.store = store
    self.num_examples = int(store.num_rows)
    self.image_shape = store.image_shape
    self.likelihood = likelihood
    self.data_range = DATA_RANGES[likelihood]
    self.factor_names = tuple(factor_names)
    self.factor_sizes = tuple(int(s) for s in factor_sizes)
    self.z_sizes = tuple(z_sizes)
    if factors is not None:
      factors = np.asarray(factors, np.int64)
      if factors.shape != (self.num_examples, len(self.factor_names)):
        raise ValueError(f"factors have shape {factors.shape}, expected ({self.num_examples}, "
                         f"{len(self.factor_names)}) for factors {self.factor_names}.")
    elif self.factor_names:
      raise ValueError(f"factor_names {self.factor_names} given without factors.")
    self._factors = factors

  @property
  def has_factors(self):
    return self._factors is not None

  def tf_images(self, indices):
    """int `[n]` tensor -> float32 `[n, H, W, C]` in `data_range` (graph-safe)."""
    raw = self.store.tf_images(indices)
    return raw if self.likelihood == "bernoulli" else raw / 127.5 - 1.0

  def images(self, indices):
    """int `[n]` indices -> uint8 `[n, H, W, C]` (0/1 for binary data, 0..255 otherwise)."""
    return self.store.images(as_indices(indices, self.num_examples))

  def factors(self, indices):
    """int `[n]` indices -> int64 `[n, K]` factor classes."""
    if self._factors is None:
      raise ValueError(f"The {self.name} dataset has no ground-truth factors (MIG needs a dataset that has them: "
                       "dsprites_procedural, dsprites, shapes3d).")
    return self._factors[as_indices(indices, self.num_examples)]
