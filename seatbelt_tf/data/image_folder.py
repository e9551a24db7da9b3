"""Any directory tree of images (Chairs renders, 3D Faces renders, ...) as a dataset source.

Every PNG/JPEG/BMP/GIF file under the folder (recursively, in sorted path order, so an index always means the same
file) is decoded in parallel with tf.data, centre cropped to a square, area-resized to 64x64 (optionally to one
grayscale channel) and kept in an in-memory uint8 `ImageStore` (64x64x3 bytes an image: 1 GiB for the 86,366 Chairs
renders). The data are continuous: scaled to [-1, 1] with a Gaussian likelihood (paper Appendix C). Image folders
have no ground-truth factors.
"""

import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from seatbelt_tf.data.arrays import ArraySource, ImageStore
from seatbelt_tf.data.preprocess import IMAGE_SIZE, square_resize

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def list_images(directory):
  """Sorted paths of the image files under `directory` (recursive)."""
  paths = []
  for root, dirs, files in os.walk(directory):
    dirs.sort()
    paths += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
  return paths


def _decode(path, grayscale):
  image = tf.io.decode_image(tf.io.read_file(path), channels=1 if grayscale else 3, expand_animations=False)
  image.set_shape([None, None, 1 if grayscale else 3])
  return square_resize(image, grayscale=grayscale)


def load_image_folder(directory, grayscale=False, verbose=True, batch_size=256, bad_images="fail"):
  """Decodes every image under `directory` into an `ArraySource` named "image_folder".

  Args:
    bad_images: what a file that does not decode (corrupt, truncated, not an image) does: "fail" stops the load
      with an error naming it; "skip" leaves it out, and a warning counts and names the skipped files.

  Raises:
    FileNotFoundError: the folder is missing or holds no image files.
    ValueError: a file could not be decoded (the message names it), or with "skip", none could.
  """
  if bad_images not in ("fail", "skip"):
    raise ValueError(f"bad_images={bad_images!r} must be 'fail' or 'skip'.")
  if not directory:
    raise ValueError("--dataset=image_folder needs --data_dir=<folder of images> (e.g. the Chairs or 3D Faces "
                     "renders; searched recursively for .png, .jpg, .jpeg, .bmp and .gif files).")
  directory = os.path.expanduser(str(directory))
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"Image folder not found: {directory}. Pass --data_dir=<folder of images>.")
  paths = list_images(directory)
  if not paths:
    raise FileNotFoundError(f"No image files ({', '.join(IMAGE_EXTENSIONS)}) under {directory}.")
  channels = 1 if grayscale else 3
  for line in describe_conversions(paths, grayscale):
    print(line)
  store = ImageStore(len(paths), (IMAGE_SIZE, IMAGE_SIZE, channels), binary=False)
  progress = keras.utils.Progbar(len(paths), unit_name="image") if verbose else None
  if verbose:
    print(f"Decoding {len(paths)} images from {directory} into memory...")
  skipped = []
  start = 0
  iterator = _batches(paths, grayscale, batch_size)
  while start < len(paths):
    batch = paths[start:start + batch_size]
    try:
      images = next(iterator)
    except tf.errors.OpError as e:  # a bad file in this batch: find it, and go on after the batch
      images, bad = _decode_one_by_one(batch, grayscale)
      if bad_images == "fail":
        raise ValueError(_bad_file_message(bad, batch, e)) from None
      skipped += bad
      rest = paths[start + len(batch):]
      iterator = _batches(rest, grayscale, batch_size) if rest else None
    if len(images):
      store.append(images)
    if progress:
      progress.add(len(batch))
    start += len(batch)
  if skipped:
    if len(skipped) == len(paths):
      raise ValueError(f"None of the {len(paths)} files under {directory} decodes as an image "
                       f"(first: {skipped[0]}).")
    warnings.warn(f"Skipped {len(skipped)} of {len(paths)} files under {directory} that do not decode as images "
                  f"(--bad_images=skip): {', '.join(skipped[:5])}{', ...' if len(skipped) > 5 else ''}",
                  RuntimeWarning, stacklevel=2)
  return ArraySource("image_folder", store.finish(), "gaussian")


def describe_conversions(paths, grayscale):
  """One line per conversion the decoder will make silently: single-channel files repeated into 3 channels
  (without --grayscale) and files smaller than 64x64 upscaled. Reads only the files' headers (PIL); a file whose
  header does not read is left to the decoder's own error."""
  from PIL import Image  # pylint: disable=g-import-not-at-top  (matplotlib's dependency)
  single, small = [], []
  for path in paths:
    try:
      with Image.open(path) as image:
        mode, (width, height) = image.mode, image.size
    except (OSError, ValueError, Image.DecompressionBombError):
      continue
    if mode in ("1", "L", "LA", "I", "I;16", "F") and not grayscale:
      single.append(path)
    if min(width, height) < IMAGE_SIZE:
      small.append((path, width, height))
  lines = []
  if single:
    lines.append(f"{len(single)} of {len(paths)} images are single-channel (e.g. {single[0]}); they are decoded "
                 "to 3 identical channels. Pass --grayscale to keep one channel for every image.")
  if small:
    path, width, height = small[0]
    lines.append(f"{len(small)} of {len(paths)} images are smaller than {IMAGE_SIZE}x{IMAGE_SIZE} (e.g. {path}, "
                 f"{width}x{height}); they are upscaled after the centre crop.")
  return lines


def _batches(paths, grayscale, batch_size):
  ds = tf.data.Dataset.from_tensor_slices(paths)
  ds = ds.map(lambda p: _decode(p, grayscale), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def _decode_one_by_one(paths, grayscale):
  """(`[k, 64, 64, C]` uint8 images of the files that decode, the paths of those that do not)."""
  images, bad = [], []
  for path in paths:
    try:
      images.append(_decode(path, grayscale).numpy())
    except tf.errors.OpError:
      bad.append(path)
  shape = (0, IMAGE_SIZE, IMAGE_SIZE, 1 if grayscale else 3)
  return (np.stack(images) if images else np.zeros(shape, np.uint8)), bad


def _bad_file_message(bad, batch, error):
  if bad:
    return (f"Could not decode {bad[0]} as an image; remove or replace it, or pass --bad_images=skip to leave "
            f"such files out. ({error.message.splitlines()[0]})")
  return f"Could not decode an image near {batch[0]}: {error.message.splitlines()[0]}"
