"""The minibatch estimators (eq. B.7) computed in row blocks with a written-out gradient, against the dense form.

`objectives.estimators._mixture_estimates` takes the samples `block_rows` at a time and writes its gradient out; the
dense form builds the whole `[B, B, D]` tensor of `objectives.gaussian_log_density_matrix` and lets TensorFlow
differentiate the log-sum-exps (what the library did before). All tables come from one process, the variants
alternating within every round.

Table 1: `decompose_kl` (MWS, forward and backward through the beta-TC loss's terms) alone, dense against blocked,
in graph mode and under XLA, for each B in --batch_sizes (D = --dim).
Table 2: the block size, at the largest B.
Table 3: a whole beta-TCVAE training step (the launcher's model: MLP pair, latent 10, Adam; XLA as the launcher
chooses for the MLP pair, and graph mode) with either form, at --step_batch (0 leaves it out).

Usage: python benchmarks/estimator_blocks.py [--batch_sizes=64,256,1024,2048] [--dim=10]
       [--block_rows=16,32,64,128,256] [--step_batch=2048] [--rounds=3] [--steps=3]
"""

import argparse
import functools
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from seatbelt_tf import data, models, objectives  # noqa: E402
from seatbelt_tf.objectives import estimators  # noqa: E402
from side_by_side import alternate, swapped  # noqa: E402

DATASET_SIZE = 737280
BLOCKED = estimators._mixture_estimates  # pylint: disable=protected-access


def dense_mixture_estimates(z, loc, scale, log_w, **_):
  """The dense form: the whole `[B, M, D]` log-density tensor, autodiff through both log-sum-exps."""
  if log_w.shape.rank == 0:  # MWS: the library built the [B, M] matrix of equal weights
    log_w = tf.fill([tf.shape(z)[0], tf.shape(loc)[0]], log_w)
  log_density = objectives.gaussian_log_density_matrix(z, loc, scale)
  log_qz = tf.reduce_logsumexp(tf.reduce_sum(log_density, axis=2) + log_w, axis=1)
  log_qz_product = tf.reduce_sum(tf.reduce_logsumexp(log_density + log_w[:, :, None], axis=1), axis=1)
  return log_qz, log_qz_product


def estimator_step(batch, dim, form, jit):
  rng = np.random.default_rng(0)
  loc = tf.Variable(rng.normal(size=(batch, dim)).astype("float32"))
  raw = tf.Variable((0.3 * rng.normal(size=(batch, dim)) - 1.0).astype("float32"))
  noise = tf.constant(rng.normal(size=(batch, dim)).astype("float32"))

  @tf.function(jit_compile=jit)
  def step():
    with tf.GradientTape() as tape:
      scale = tf.nn.softplus(raw)
      terms = objectives.decompose_kl(loc + scale * noise, loc, scale, DATASET_SIZE, "mws")
      loss = tf.reduce_mean(terms["mi"] + 4.0 * terms["tc"] + terms["dim_kl"])
    return tape.gradient(loss, [loc, raw])

  with swapped(estimators, "_mixture_estimates", form):
    step.get_concrete_function()
  return lambda: step()[0].numpy()


def train_step(batch, form, jit):
  keras.utils.set_random_seed(0)
  model = models.build_model("beta_tcvae", network="mlp", latent_dim=10, dataset_size=DATASET_SIZE, beta=4.0)
  model.build((None, 64, 64, 1))
  model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit)
  model.optimizer.build(model.trainable_variables)
  images = data.ProceduralDSprites().images(np.arange(batch) * 97).astype("float32")
  iterator = iter(tf.data.Dataset.from_tensors(images).repeat())
  with swapped(estimators, "_mixture_estimates", form):
    model.make_train_function()
    model.train_function(iterator)  # trace and compile with this form
  return lambda: model.train_function(iterator)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch_sizes", default="64,256,1024,2048")
  parser.add_argument("--dim", type=int, default=10)
  parser.add_argument("--block_rows", default="16,32,64,128,256")
  parser.add_argument("--step_batch", type=int, default=2048)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=3)
  args = parser.parse_args()
  batches = [int(b) for b in args.batch_sizes.split(",")]
  modes = {"graph": False, "xla": True}

  print(f"\nTable 1: decompose_kl (MWS, forward + backward), D = {args.dim}, ms per call (median of {args.rounds})")
  print("| B | mode | dense | blocked | dense / blocked | dense [B, B, D] tensor MiB |")
  print("|---|---|---|---|---|---|")
  for b in batches:
    fns = {(mode, name): estimator_step(b, args.dim, form, jit)
           for mode, jit in modes.items() for name, form in (("dense", dense_mixture_estimates), ("blocked", BLOCKED))}
    t = alternate(fns, args.rounds, args.steps)
    for mode in modes:
      dense, blocked = t[mode, "dense"], t[mode, "blocked"]
      print(f"| {b} | {mode} | {1000 * dense:.1f} | {1000 * blocked:.1f} | **{dense / blocked:.2f}x** | "
            f"{b * b * args.dim * 4 / 2**20:.0f} |", flush=True)

  b = max(batches)
  rows = [int(r) for r in args.block_rows.split(",")]
  print(f"\nTable 2: block size at B = {b}, D = {args.dim}, ms per call")
  print("| rows per block | graph | xla |")
  print("|---|---|---|")
  fns = {(r, mode): estimator_step(b, args.dim, functools.partial(BLOCKED, block_rows=r), jit)
         for r in rows for mode, jit in modes.items()}
  t = alternate(fns, args.rounds, args.steps)
  for r in rows:
    mark = " (the default)" if r == estimators.BLOCK_ROWS else ""
    print(f"| {r}{mark} | {1000 * t[r, 'graph']:.1f} | {1000 * t[r, 'xla']:.1f} |", flush=True)

  b = args.step_batch
  if not b:
    return
  print(f"\nTable 3: beta-TCVAE training step (MLP pair, latent 10, Adam), batch {b}")
  print("| mode | dense: images/s | blocked: images/s | blocked / dense |")
  print("|---|---|---|---|")
  fns = {(mode, name): train_step(b, form, jit)
         for mode, jit in modes.items() for name, form in (("dense", dense_mixture_estimates), ("blocked", BLOCKED))}
  t = alternate(fns, args.rounds, args.steps)
  for mode in modes:
    dense, blocked = b / t[mode, "dense"], b / t[mode, "blocked"]
    print(f"| {mode} | {dense:.0f} | {blocked:.0f} | **{blocked / dense:.2f}x** |", flush=True)


if __name__ == "__main__":
  main()
