"""TFDS-backed datasets (dSprites, 3D Shapes, CelebA), loaded offline into an in-memory `ImageStore`.

Nothing here downloads. A builder is used when its prepared data already sit in `data_dir` (TFDS's own layout,
`<data_dir>/<name>/<version>/`), or when the files TFDS would download are in `manual_dir` under the names TFDS
records in its checksums (e.g. `3dshapes.h5`): the dataset is then prepared from them, with TFDS's temporary
download folder inside `data_dir` removed afterwards and anything the failed attempt created removed on error.
Otherwise the error names the dataset, the exact files and where to put them; TFDS is never asked to fetch them
(offline, it retries for minutes and leaves partial files behind).

Preprocessing (paper Appendix C): dSprites stays binary (Bernoulli likelihood, bit-packed, 92 KiB per 1000
images); 3D Shapes and CelebA are scaled to [-1, 1] (Gaussian likelihood); CelebA is centre cropped to 148x148 and
area-resized to 64x64 (the paper and Chen et al. 2018 say only "cropped and downsampled"; 148 is the usual crop of
the 178x218 aligned faces for 64x64 VAEs). Ground-truth factors come from the builders' `label_*` features.
"""

import contextlib
import dataclasses
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from seatbelt_tf.config import DEFAULT_Z_SIZES
from seatbelt_tf.data.arrays import ArraySource, ImageStore
from seatbelt_tf.data.preprocess import square_resize


@dataclasses.dataclass(frozen=True)
class TfdsSpec:
  builder: str
  binary: bool
  factor_keys: tuple = ()
  factor_names: tuple = ()
  crop: int = None
  z_sizes: tuple = DEFAULT_Z_SIZES
  homepage: str = ""


# --dataset name -> how to read the TFDS builder
TFDS_SPECS = {
    "dsprites": TfdsSpec(
        "dsprites", binary=True,
        factor_keys=("label_shape", "label_scale", "label_orientation", "label_x_position", "label_y_position"),
        factor_names=("shape", "scale", "orientation", "posX", "posY"),
        homepage="https://github.com/google-deepmind/dsprites-dataset"),
    "shapes3d": TfdsSpec(
        "shapes3d", binary=False,
        factor_keys=("label_floor_hue", "label_wall_hue", "label_object_hue", "label_scale", "label_shape",
                     "label_orientation"),
        factor_names=("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"),
        homepage="https://github.com/google-deepmind/3d-shapes"),
    "celeb_a": TfdsSpec("celeb_a", binary=False, crop=148, z_sizes=(256, 128, 64, 32),  # paper eq. C.4
                        homepage="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"),
}


def _tfds():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds


def expected_files(builder):
  """The file names TFDS downloads for `builder` (what `--manual_dir` must hold), from its checksums."""
  return sorted({info.filename for info in builder.url_infos.values() if info.filename})


def _missing_data_message(name, builder, manual_dir, missing):
  files = expected_files(builder)
  lines = [f"The {name} dataset is not available offline (this machine cannot download it).",
           f"  TFDS looked for prepared data in {builder.data_dir} (from --data_dir) and found none."]
  if manual_dir:
    lines.append(f"  --manual_dir={manual_dir} lacks: {', '.join(missing)}.")
  lines += [f"  To use it, download these files ({TFDS_SPECS[name].homepage}): {', '.join(files)}",
            "  into one folder and pass it as --manual_dir=<folder> (they are prepared into --data_dir on first "
            "use),",
            f"  or copy an already prepared TFDS folder {builder.name}/{builder.version}/ into --data_dir."]
  if name == "dsprites":
    lines.append("  The original dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz in --data_dir works too; "
                 "--dataset=dsprites_procedural needs no download at all.")
  return "\n".join(lines)


def _prepare_from_manual_dir(name, builder, data_dir, manual_dir):
  """Prepares `builder` from the files in `manual_dir`, leaving nothing half-written in the data folder."""
  tfds = _tfds()
  # TFDS's layout is <root>/<name>/<version>; with no --data_dir, root is TFDS's default folder.
  root = data_dir or os.path.dirname(os.path.dirname(str(builder.data_dir)))
  created_root = not os.path.exists(root)
  os.makedirs(root, exist_ok=True)
  dataset_folder = os.path.join(root, builder.name)
  existed = os.path.exists(dataset_folder)
  download_dir = tempfile.mkdtemp(prefix=".seatbelt_download_", dir=root)
  try:
    builder.download_and_prepare(
        download_dir=download_dir,
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False))
  except Exception as e:  # TFDS raises many types; none of them may leave partial data behind
    if not existed:
      shutil.rmtree(dataset_folder, ignore_errors=True)
    shutil.rmtree(download_dir, ignore_errors=True)
    if created_root and not os.listdir(root):
      os.rmdir(root)
    raise RuntimeError(f"Preparing {name} from --manual_dir={manual_dir} failed ({type(e).__name__}: {e}); "
                       f"nothing was written to {root}. Check that the files are complete.") from e
  finally:
    shutil.rmtree(download_dir, ignore_errors=True)


@contextlib.contextmanager
def contained_temporary_files():
  """Points `tempfile` at a private folder removed afterwards. TFDS 4.9's DatasetInfo.initialize_from_bucket
  makes an empty `tmp*tfds` folder in the system temp folder for every builder of an unprepared dataset and, offline,
  returns without removing it."""
  saved = tempfile.tempdir
  with tempfile.TemporaryDirectory(prefix="seatbelt_tfds_") as private:
    tempfile.tempdir = private
    try:
      yield
    finally:
      tempfile.tempdir = saved


def _builder(name, data_dir, manual_dir):
  tfds = _tfds()
  spec = TFDS_SPECS[name]
  with contained_temporary_files():
    builder = tfds.builder(spec.builder, data_dir=os.path.expanduser(data_dir) if data_dir else None)
  if builder.is_prepared():
    return builder
  manual_dir = os.path.expanduser(manual_dir) if manual_dir else None
  files = expected_files(builder)
  missing = [f for f in files if not (manual_dir and os.path.isfile(os.path.join(manual_dir, f)))]
  if missing:
    raise FileNotFoundError(_missing_data_message(name, builder, manual_dir, missing))
  _prepare_from_manual_dir(name, builder, os.path.expanduser(data_dir) if data_dir else None, manual_dir)
  return builder


def load_tfds(name, data_dir=None, manual_dir=None, grayscale=False, verbose=True, batch_size=1024):
  """Loads the TFDS-backed dataset `name` (a key of `TFDS_SPECS`) into memory as an `ArraySource`.

  Args:
    name: "dsprites", "shapes3d" or "celeb_a".
    data_dir: TFDS data folder (prepared data; default: TFDS's own, ~/tensorflow_datasets).
    manual_dir: folder holding the files TFDS would download (see `expected_files`).
    grayscale: convert colour images to one channel.
    verbose: show a progress bar while decoding.
    batch_size: images decoded per chunk.

  Raises:
    FileNotFoundError: the data are neither prepared nor in `manual_dir` (the message says what to download).
  """
  spec = TFDS_SPECS[name]
  builder = _builder(name, data_dir, manual_dir)
  splits = sorted(builder.info.splits.keys())
  split = "+".join(splits) if splits else "train"
  capacity = sum(builder.info.splits[s].num_examples for s in splits) if splits else 0
  features = builder.info.features
  factor_sizes = tuple(int(features[k].num_classes) for k in spec.factor_keys)

  def preprocess(example):
    image = example["image"]
    if spec.binary:
      image = tf.cast(image > 0, tf.uint8) * 255  # any non-zero pixel is on
    image = square_resize(image, crop=spec.crop, grayscale=grayscale and not spec.binary)
    labels = tf.stack([tf.cast(example[k], tf.int64) for k in spec.factor_keys]) if spec.factor_keys else \
        tf.zeros([0], tf.int64)
    return image, labels

  ds = builder.as_dataset(split=split, shuffle_files=False)
  ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
  channels = 1 if spec.binary or grayscale else int(features["image"].shape[-1])
  store = ImageStore(capacity or batch_size, (64, 64, channels), binary=spec.binary)
  factors = []
  progress = keras.utils.Progbar(capacity or None, unit_name="image") if verbose else None
  if verbose:
    print(f"Decoding {name} ({split}) into memory...")
  for images, labels in ds.as_numpy_iterator():
    store.append(images)
    factors.append(labels)
    if progress:
      progress.add(len(images))
  if progress:
    progress.update(store.num_rows, finalize=True)
  store.finish()
  if not store.num_rows:
    raise ValueError(f"The {name} dataset in {builder.data_dir} has no examples in split {split!r}.")
  factors = np.concatenate(factors) if spec.factor_keys else None
  return ArraySource(name, store, "bernoulli" if spec.binary else "gaussian", factors=factors,
                     factor_names=spec.factor_names, factor_sizes=factor_sizes, z_sizes=spec.z_sizes)
