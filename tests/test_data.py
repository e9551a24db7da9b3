"""Procedural dSprites: factor grid and order, symmetries, foreground statistics; npz loader; pipelines."""

import math
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from seatbelt_tf import data
from seatbelt_tf.data import dsprites, pipeline


@pytest.fixture(scope="module")
def source():
  return data.ProceduralDSprites()


def test_factor_grid_and_index_order(source):
  assert source.num_examples == 737280
  assert source.factor_names == ("shape", "scale", "orientation", "posX", "posY")
  assert source.factor_sizes == (3, 6, 40, 32, 32)
  idx = np.arange(source.num_examples)
  f = source.factors(idx)
  assert f.dtype == np.int64 and f.shape == (737280, 5)
  np.testing.assert_array_equal(f @ np.array([245760, 40960, 1024, 32, 1]), idx)
  assert len({tuple(r) for r in f[::97]}) == len(f[::97])  # distinct combinations
  assert np.array_equal(f.max(axis=0) + 1, source.factor_sizes) and f.min() == 0
  np.testing.assert_array_equal(dsprites.indices_from_factors(f), idx)
  np.testing.assert_allclose(dsprites.SCALES, np.linspace(0.5, 1, 6))
  assert dsprites.ORIENTATIONS[0] == 0 and np.isclose(dsprites.ORIENTATIONS[-1], 2 * math.pi)
  np.testing.assert_allclose(dsprites.POSITIONS, np.linspace(0, 1, 32))


def test_images_are_binary_uint8(source):
  im = source.images([0, 1, 737279])
  assert im.dtype == np.uint8 and im.shape == (3, 64, 64, 1)
  assert set(np.unique(im)) <= {0, 1}
  with pytest.raises(IndexError, match="737280"):
    source.images([737280])


def test_the_compiled_renderer_draws_the_same_pixels_as_graph_mode(source):
  """tf_images renders under XLA (8x faster); every pixel equals `render_sprites` run op by op, at odd batch sizes,
  inside a tf.data map as the training pipeline calls it."""
  rng = np.random.default_rng(0)
  graph_render = tf.function(dsprites.render_sprites)  # op by op: a plain graph, no XLA

  def plain(idx):
    f = dsprites.factors_from_indices(idx)
    values = (dsprites.SCALES[f[:, 1]], dsprites.ORIENTATIONS[f[:, 2]], dsprites.POSITIONS[f[:, 3]],
              dsprites.POSITIONS[f[:, 4]])
    return graph_render(tf.constant(f[:, 0]), *(tf.constant(v, tf.float32) for v in values)).numpy()

  for n in (1, 777, 4099):
    idx = rng.integers(0, source.num_examples, n)
    np.testing.assert_array_equal(source.tf_images(tf.constant(idx)).numpy(), plain(idx))
  idx = rng.integers(0, source.num_examples, 3000)
  mapped = tf.data.Dataset.from_tensor_slices(idx).batch(1000).map(source.tf_images)
  np.testing.assert_array_equal(np.concatenate(list(mapped.as_numpy_iterator())), plain(idx))


def test_orientation_ends_coincide(source):
  first = dsprites.indices_from_factors([[s, 3, 0, 10, 20] for s in range(3)])
  last = dsprites.indices_from_factors([[s, 3, 39, 10, 20] for s in range(3)])
  np.testing.assert_array_equal(source.images(first), source.images(last))


def _render(shape, angles, scale=1.0):
  n = len(angles)
  return dsprites.render_sprites(tf.fill([n], shape), tf.fill([n], scale), tf.constant(angles, tf.float32),
                                 tf.fill([n], 0.37), tf.fill([n], 0.61)).numpy()


def test_symmetries():
  angles = [0.1, 0.7, 1.3, 2.9]
  quarter = [a + math.pi / 2 for a in angles]
  half = [a + math.pi for a in angles]
  square = _render(0, angles)
  np.testing.assert_array_equal(square, _render(0, quarter))        # 90 degrees
  ellipse = _render(1, angles)
  np.testing.assert_array_equal(ellipse, _render(1, half))          # 180 degrees
  assert np.abs(ellipse - _render(1, quarter)).sum() > 20          # ... but not 90
  heart = _render(2, angles)
  assert np.abs(heart - _render(2, half)).sum() > 20               # no rotational symmetry
  assert np.abs(heart - _render(2, quarter)).sum() > 20


def test_foreground_statistics(source):
  idx = np.random.default_rng(0).integers(0, source.num_examples, 6000)
  im = source.images(idx).astype(np.float64)
  assert 0.040 < im.mean() < 0.046
  assert 0.19 < im.std() < 0.21
  assert (im.reshape(len(idx), -1).sum(axis=1) > 0).all()  # every sprite is visible


def test_centres_move_one_pixel_per_step(source):
  def centroid(factors):
    im = source.images(dsprites.indices_from_factors(factors))[..., 0].astype(float)
    rows, cols = np.mgrid[:64, :64]
    mass = im.sum(axis=(1, 2))
    return (im * cols).sum(axis=(1, 2)) / mass, (im * rows).sum(axis=(1, 2)) / mass

  steps = np.arange(4, 28)
  cx, cy = centroid([[0, 2, 0, k, 16] for k in steps])
  np.testing.assert_allclose(np.diff(cx), 1.0, atol=0.35)
  assert abs(np.mean(np.diff(cx)) - 1.0) < 0.05 and np.ptp(cy) < 1e-9
  cx, cy = centroid([[1, 5, 0, 16, k] for k in steps])
  assert abs(np.mean(np.diff(cy)) - 1.0) < 0.05 and np.ptp(cx) < 1e-9  # posY moves down the rows
  assert abs(cx[0] + 0.5 - (32 + 31 * (16 / 31 - 0.5))) < 0.25  # pixel k spans [k, k + 1): its centre is k + 0.5


def _write_npz(path, source, indices):
  imgs = source.images(indices)[..., 0]
  classes = np.concatenate([np.zeros((len(indices), 1), np.int64), source.factors(indices)], axis=1)
  np.savez_compressed(path, imgs=imgs, latents_classes=classes, latents_values=classes.astype(np.float64))


def test_npz_loader_matches_the_procedural_source(source, tmp_path):
  indices = np.random.default_rng(0).choice(source.num_examples, 300, replace=False)
  _write_npz(tmp_path / dsprites.NPZ_FILENAME, source, indices)
  npz = data.build_dataset("dsprites", data_dir=str(tmp_path))
  assert npz.num_examples == 300 and npz.factor_sizes == source.factor_sizes
  sel = np.array([0, 5, 299, 17])
  np.testing.assert_array_equal(npz.images(sel), source.images(indices[sel]))
  np.testing.assert_array_equal(npz.factors(sel), source.factors(indices[sel]))
  np.testing.assert_array_equal(npz.tf_images(tf.constant(sel)).numpy(), source.images(indices[sel]))
  # Packing in several chunks gives the same store.
  small_chunks = dsprites.DSpritesNpz(tmp_path, chunk_rows=7)
  np.testing.assert_array_equal(small_chunks.images(np.arange(300)), npz.images(np.arange(300)))


def test_npz_errors_name_the_file_and_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"dsprites_ndarray_co1sh3sc6or40x32y32_64x64\.npz.*--data_dir"):
    data.build_dataset("dsprites", data_dir=str(tmp_path))
  with pytest.raises(FileNotFoundError, match="not available offline"):
    data.build_dataset("dsprites", data_dir=str(tmp_path / "empty"))
  np.savez(tmp_path / dsprites.NPZ_FILENAME, imgs=np.zeros((4, 32, 32), np.uint8),
           latents_classes=np.zeros((4, 6), np.int64))
  with pytest.raises(ValueError, match="expected uint8"):
    data.build_dataset("dsprites", data_dir=str(tmp_path))
  with pytest.raises(ValueError, match="dsprites_procedural"):
    data.build_dataset("mnist")


class _IndexSource:
  """A fake source whose 'images' are their own indices, to check which examples the pipeline visits."""
  num_examples = 103

  def tf_images(self, indices):
    return tf.cast(indices, tf.int64)


def test_split_and_epoch_shuffle_visit_each_example_once():
  src, batch, held_out, seed = _IndexSource(), 10, 13, 7
  per_epoch = (src.num_examples - held_out) // batch
  eval_idx = set(np.concatenate(list(pipeline.eval_dataset(src, 4, held_out, seed).as_numpy_iterator())))
  assert len(eval_idx) == held_out
  ds = pipeline.train_dataset(src, batch, held_out, seed)
  batches = np.stack(list(ds.take(2 * per_epoch).as_numpy_iterator()))
  epoch0, epoch1 = batches[:per_epoch].ravel(), batches[per_epoch:].ravel()
  for epoch in (epoch0, epoch1):
    assert len(set(epoch)) == per_epoch * batch          # no repeats within an epoch
    assert not set(epoch) & eval_idx                     # never a held-out example
    assert set(epoch) <= set(range(src.num_examples))
  assert not np.array_equal(epoch0, epoch1)             # reshuffled every epoch
  # Resuming at step g yields exactly the batches of an uninterrupted stream.
  resumed = np.stack(list(pipeline.train_dataset(src, batch, held_out, seed, start_step=5).take(4)))
  np.testing.assert_array_equal(resumed, batches[5:9])
  other_seed = np.stack(list(pipeline.train_dataset(src, batch, held_out, seed + 1).take(2)))
  assert not np.array_equal(other_seed, batches[:2])


def test_split_errors():
  with pytest.raises(ValueError, match="eval_examples"):
    pipeline.train_dataset(_IndexSource(), 100, 10, 0)
