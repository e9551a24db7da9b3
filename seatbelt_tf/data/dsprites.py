"""dSprites (Matthey et al., 2017): a faithful procedural regenerator, and a loader for the original npz.

The paper's Appendix results use dSprites; this module is the project's default dataset because it needs no
download. `ProceduralDSprites` renders every one of the 737,280 binary 64x64 images on demand from its index:

  * factors (in index order, the last one fastest): shape 3 (square, ellipse, heart), scale 6 =
    linspace(0.5, 1, 6), orientation 40 = linspace(0, 2 pi, 40) (both ends included), posX 32 and posY 32 =
    linspace(0, 1, 32); index = shape*245760 + scale*40960 + orientation*1024 + x*32 + y, as in the original;
  * geometry: the sprite centre sits at pixel coordinate 32 + 31 * (pos - 0.5), so it moves one pixel per
    position step and stays in the middle of the canvas; posX moves it right, posY down (image rows);
    orientation rotates it counter-clockwise on screen; a pixel is on when its centre lies inside the shape;
  * calibration: the square's side at scale 1 is `2 * SPRITE_HALF_SIZE` pixels, the ellipse has semi-axes
    (1, 1/2) of that half size and the heart is as wide as the square; `SPRITE_HALF_SIZE` is chosen so that the
    mean foreground fraction over the dataset is about 0.043 (pixel std about 0.20), as in the original.

Rendering is a pure TensorFlow function of the indices, so a tf.data pipeline can stream the whole dataset with
a full shuffle without ever holding the 2.8 GiB dense array. `DSpritesNpz` reads the original
`dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz` chunk by chunk into a bit-packed store (368 MiB) behind the same
interface.
"""

import math
import os
import zipfile

import numpy as np
import tensorflow as tf

from seatbelt_tf.config import DEFAULT_Z_SIZES
from seatbelt_tf.data.arrays import ImageStore
from seatbelt_tf.data.arrays import as_indices as _as_indices

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
NUM_EXAMPLES = int(np.prod(FACTOR_SIZES))  # 737,280
SHAPES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2.0 * math.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)
IMAGE_SIZE = 64
# Half the square's side at scale 1, in pixels; calibrated so that the mean foreground fraction is ~0.043.
SPRITE_HALF_SIZE = 10.3
# The sprite centre moves over this many pixels as a position goes from 0 to 1: one pixel per step.
POSITION_RANGE = 31.0
NPZ_FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
NPZ_URL = "https://github.com/google-deepmind/dsprites-dataset"
# The heart is (X^2 + Y^2 - 1)^3 - X^2 Y^3 <= 0; this maps its width [-1.1390, 1.1390] onto the square's, and
# moves the centre of its bounding box (Y from -1 to 1.2360) to the sprite centre.
_HEART_WIDTH = 1.1390
_HEART_Y_OFFSET = 0.1180
_STRIDES = np.array([int(np.prod(FACTOR_SIZES[i + 1:])) for i in range(len(FACTOR_SIZES))], np.int64)


def factors_from_indices(indices):
  """Mixed-radix decoding of dataset indices into factor classes.

  Args:
    indices: int array `[n]` in [0, 737280).

  Returns:
    int64 `[n, 5]` classes (shape, scale, orientation, posX, posY).
  """
  indices = _as_indices(indices, NUM_EXAMPLES)
  return (indices[:, None] // _STRIDES[None, :]) % np.asarray(FACTOR_SIZES, np.int64)[None, :]


def indices_from_factors(factors):
  """Inverse of `factors_from_indices`: int `[n, 5]` classes -> int64 `[n]` indices."""
  factors = np.asarray(factors, dtype=np.int64)
  if factors.ndim != 2 or factors.shape[1] != len(FACTOR_SIZES):
    raise ValueError(f"factors must have shape [n, {len(FACTOR_SIZES)}], got {factors.shape}.")
  if np.any(factors < 0) or np.any(factors >= np.asarray(FACTOR_SIZES)):
    raise ValueError(f"factor classes out of range: sizes are {FACTOR_SIZES}.")
  return factors @ _STRIDES


def render_sprites(shape, scale, angle, pos_x, pos_y, image_size=IMAGE_SIZE):
  """Renders binary sprites from continuous factor values (a pure TensorFlow function).

  Args:
    shape: int `[n]`, 0 square, 1 ellipse, 2 heart.
    scale: float `[n]` scale factors (dSprites uses 0.5 ... 1).
    angle: float `[n]` counter-clockwise rotations in radians.
    pos_x: float `[n]` horizontal positions in [0, 1].
    pos_y: float `[n]` vertical positions in [0, 1] (0 is the top row).
    image_size: canvas side in pixels.

  Returns:
    float32 `[n, image_size, image_size, 1]` images with values in {0, 1}.
  """
  shape = tf.cast(shape, tf.int32)[:, None, None]
  size = (tf.cast(scale, tf.float32) * SPRITE_HALF_SIZE)[:, None, None]
  angle = tf.cast(angle, tf.float32)[:, None, None]
  centre = image_size / 2.0
  cx = (centre + POSITION_RANGE * (tf.cast(pos_x, tf.float32) - 0.5))[:, None, None]
  cy = (centre + POSITION_RANGE * (tf.cast(pos_y, tf.float32) - 0.5))[:, None, None]
  pixel = tf.range(image_size, dtype=tf.float32) + 0.5
  dx = pixel[None, None, :] - cx           # columns
  dy = cy - pixel[None, :, None]           # rows, pointing up
  cos, sin = tf.cos(angle), tf.sin(angle)
  u = (cos * dx + sin * dy) / size         # rotate the canvas by -angle: the sprite turns by +angle
  v = (-sin * dx + cos * dy) / size
  square = tf.maximum(tf.abs(u), tf.abs(v)) <= 1.0
  ellipse = tf.square(u) + tf.square(2.0 * v) <= 1.0
  hx = _HEART_WIDTH * u
  hy = _HEART_WIDTH * v + _HEART_Y_OFFSET
  heart = tf.pow(tf.square(hx) + tf.square(hy) - 1.0, 3) - tf.square(hx) * tf.pow(hy, 3) <= 0.0
  inside = tf.where(tf.equal(shape, 0), square, tf.where(tf.equal(shape, 1), ellipse, heart))
  return tf.cast(inside, tf.float32)[..., None]


# `render_sprites` compiled by XLA: one fused pass per image instead of ~20 full-size temporaries, 8x the images/s
# of graph mode at batch 2048 on a 2-core CPU (the training pipeline renders every batch, on the cores the training
# step uses), and the same pixels: identical on all 737,280 images (docs/BENCHMARKS.md, "Rendering dSprites under
# XLA"); tests/test_data.py compares the two on random batches of several sizes.
_compiled_render = tf.function(render_sprites, jit_compile=True, reduce_retracing=True, autograph=False)


class ProceduralDSprites:
  """dSprites regenerated on demand: every factor combination exactly once, in the original order.

  Attributes:
    name: registry name, "dsprites_procedural".
    num_examples: 737,280.
    factor_names: ("shape", "scale", "orientation", "posX", "posY").
    factor_sizes: (3, 6, 40, 32, 32).
    image_shape: (64, 64, 1).
    data_range: (0.0, 1.0), the box inside which pixel values (and attacked inputs) must stay.
    likelihood: "bernoulli" (binary pixels).
    z_sizes: layer widths of the hierarchical models, bottom first (paper eq. C.1).
  """

  name = "dsprites_procedural"
  num_examples = NUM_EXAMPLES
  factor_names = FACTOR_NAMES
  factor_sizes = FACTOR_SIZES
  image_shape = (IMAGE_SIZE, IMAGE_SIZE, 1)
  data_range = (0.0, 1.0)
  likelihood = "bernoulli"
  z_sizes = DEFAULT_Z_SIZES  # layer widths of the hierarchical models on dSprites, paper eq. C.1

  def tf_images(self, indices):
    """int `[n]` tensor of indices -> float32 `[n, 64, 64, 1]` images in {0, 1} (graph-safe)."""
    indices = tf.cast(indices, tf.int64)
    strides = tf.constant(_STRIDES)
    sizes = tf.constant(FACTOR_SIZES, tf.int64)
    classes = (indices[:, None] // strides[None, :]) % sizes[None, :]
    take = lambda values, column: tf.gather(tf.constant(values, tf.float32), classes[:, column])
    return _compiled_render(classes[:, 0], take(SCALES, 1), take(ORIENTATIONS, 2),
                            take(POSITIONS, 3), take(POSITIONS, 4))

  def images(self, indices):
    """int `[n]` indices -> uint8 `[n, 64, 64, 1]` images in {0, 1}."""
    indices = _as_indices(indices, self.num_examples)
    return self.tf_images(tf.constant(indices)).numpy().astype(np.uint8)

  def factors(self, indices):
    """int `[n]` indices -> int64 `[n, 5]` factor classes."""
    return factors_from_indices(indices)


class DSpritesNpz(ProceduralDSprites):
  """The original dSprites npz behind the `ProceduralDSprites` interface, bit-packed in memory.

  Args:
    directory: folder holding `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz` (from the dSprites repository).
    chunk_rows: rows decompressed at a time while packing (bounds the peak memory of loading).

  Raises:
    FileNotFoundError: naming the file, the folder searched and where to download it.
    ValueError: when the file does not hold dSprites arrays.
  """

  name = "dsprites"

  def __init__(self, directory, chunk_rows=16384):
    path = os.path.join(os.path.expanduser(str(directory)), NPZ_FILENAME)
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f"dSprites npz not found: expected {path}. Download {NPZ_FILENAME} from {NPZ_URL} and pass its folder "
          "as --data_dir (or use --dataset=dsprites_procedural, which needs no download).")
    self.path = path
    with zipfile.ZipFile(path) as archive:
      with archive.open("latents_classes.npy") as f:
        classes = np.load(f)
      with archive.open("imgs.npy") as f:
        self._store = _read_packed_images(f, chunk_rows, path)
    if classes.ndim != 2 or classes.shape[1] != 6 or classes.shape[0] != self._store.num_rows:
      raise ValueError(f"{path}: latents_classes has shape {classes.shape}, expected [{self._store.num_rows}, 6] "
                       "(color, shape, scale, orientation, posX, posY).")
    self._classes = classes[:, 1:].astype(np.int64)
    self.num_examples = int(self._store.num_rows)

  def tf_images(self, indices):
    return self._store.tf_images(indices)

  def images(self, indices):
    return self._store.images(_as_indices(indices, self.num_examples))

  def factors(self, indices):
    indices = _as_indices(indices, self.num_examples)
    return self._classes[indices]


def _read_packed_images(f, chunk_rows, path):
  """Streams `imgs.npy` from an open archive member into a bit-packed `ImageStore`, one chunk at a time."""
  version = np.lib.format.read_magic(f)
  read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
  shape, fortran_order, dtype = read_header(f)
  if fortran_order or len(shape) != 3 or shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or dtype.itemsize != 1:
    raise ValueError(f"{path}: imgs has shape {shape} and dtype {dtype}, expected uint8 [n, 64, 64].")
  row_bytes = IMAGE_SIZE * IMAGE_SIZE
  store = ImageStore(shape[0], (IMAGE_SIZE, IMAGE_SIZE, 1), binary=True)
  for start in range(0, shape[0], chunk_rows):
    rows = min(chunk_rows, shape[0] - start)
    chunk = np.frombuffer(f.read(rows * row_bytes), dtype=np.uint8)
    if chunk.size != rows * row_bytes:
      raise ValueError(f"{path}: imgs is truncated at row {start}.")
    store.append(chunk.reshape(rows, IMAGE_SIZE, IMAGE_SIZE, 1))
  return store.finish()
