"""tf.data input pipelines addressed by global step, with an O(1)-memory full shuffle.

A dataset source (see `seatbelt_tf.data.DATASETS`) exposes `num_examples` and a graph-safe `tf_images(indices)`.
The pipeline never materialises the data: it maps batches of indices to images inside tf.data.

* **Split.** A fixed pseudo-random permutation P of [0, N) (`tf.random.experimental.index_shuffle`, keyed by the
  seed) puts the first `eval_examples` positions in the held-out set and the rest, N_train of them, in the
  training set.
* **Shuffle.** Epoch e visits the training positions in the order of a second permutation keyed by (seed, e):
  a full shuffle without a shuffle buffer, and a different order every epoch.
* **Resumable.** Training batch g is a pure function of (seed, g): a run resumed at step g sees exactly the
  batches an uninterrupted run would have seen.
"""

import tensorflow as tf

_SPLIT_STREAM = 0  # seed stream of the train/held-out split; epoch e uses stream e + 1


def _permute(positions, seed, stream, size):
  seed_pair = tf.stack([tf.cast(seed, tf.int32), tf.cast(stream, tf.int32)])
  return tf.random.experimental.index_shuffle(positions, seed=seed_pair, max_index=tf.cast(size - 1, tf.int64))


def check_split(num_examples, eval_examples, batch_size):
  """Raises ValueError when the split leaves no full training batch or no held-out example."""
  if eval_examples < 1:
    raise ValueError(f"eval_examples must be >= 1, got {eval_examples}.")
  if num_examples - eval_examples < batch_size:
    raise ValueError(f"The dataset has {num_examples} examples; holding out eval_examples={eval_examples} leaves "
                     f"{num_examples - eval_examples}, fewer than one batch of {batch_size}. Lower --eval_examples "
                     "or --batch_size.")


def train_indices(step, batch_size, num_examples, eval_examples, seed):
  """Dataset indices of training batch `step`: int64 `[batch_size]`.

  Args:
    step: global step (int64 scalar tensor or int).
    batch_size: examples per batch.
    num_examples: N, the size of the whole dataset.
    eval_examples: how many examples the held-out split takes.
    seed: int seed of the split and of the shuffles.
  """
  num_train = num_examples - eval_examples
  batches_per_epoch = num_train // batch_size
  step = tf.cast(step, tf.int64)
  epoch = step // batches_per_epoch
  start = (step % batches_per_epoch) * batch_size
  positions = tf.range(start, start + batch_size, dtype=tf.int64)
  shuffled = _permute(positions, seed, epoch + 1, num_train)
  return _permute(shuffled + eval_examples, seed, _SPLIT_STREAM, num_examples)


def eval_indices(num_examples, eval_examples, seed):
  """Dataset indices of the held-out split: int64 `[eval_examples]` (in a fixed order)."""
  return _permute(tf.range(eval_examples, dtype=tf.int64), seed, _SPLIT_STREAM, num_examples)


def train_dataset(source, batch_size, eval_examples, seed, start_step=0):
  """An endless dataset of training batches `[batch_size, H, W, C]`, starting at global step `start_step`."""
  check_split(source.num_examples, eval_examples, batch_size)

  def load(step):
    return source.tf_images(train_indices(step, batch_size, source.num_examples, eval_examples, seed))

  ds = tf.data.Dataset.counter(start=start_step, dtype=tf.int64)
  ds = ds.map(tf.autograph.experimental.do_not_convert(load), num_parallel_calls=tf.data.AUTOTUNE,
              deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(source, batch_size, eval_examples, seed, drop_remainder=False):
  """The held-out split as a finite dataset of batches `[<=batch_size, H, W, C]`."""
  check_split(source.num_examples, eval_examples, 1)
  ds = tf.data.Dataset.from_tensor_slices(eval_indices(source.num_examples, eval_examples, seed))
  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  ds = ds.map(tf.autograph.experimental.do_not_convert(source.tf_images), num_parallel_calls=tf.data.AUTOTUNE,
              deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)
