"""Checks that training and attack ops actually run on a GPU (for benchmarks/gpu_check.sh).

Runs one compiled training step of a conv beta-TCVAE, one batched TFP L-BFGS attack evaluation and the lbfgs
driver's tf-backend algebra (`--attack_backend=tf`), and prints the device of the model's variables and of each
step's outputs. Exits 1 if no GPU is visible or any of them is not on
a GPU (`--allow_cpu` reports instead of failing: a dry run of the check on a CPU machine).

Usage: python benchmarks/gpu_placement.py [--allow_cpu]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from seatbelt_tf import attacks, data, models  # noqa: E402
from seatbelt_tf.attacks import lbfgs, lbfgs_tf  # noqa: E402


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--allow_cpu", action="store_true")
  args = parser.parse_args()
  gpus = tf.config.list_logical_devices("GPU")
  print(f"TensorFlow {tf.__version__}; GPUs visible: {[g.name for g in gpus] or 'none'}; built with CUDA: "
        f"{tf.test.is_built_with_cuda()}")
  if not gpus and not args.allow_cpu:
    print("No GPU visible: this check is for a machine with a GPU (tensorflow[and-cuda] installed, a driver, "
          "CUDA_VISIBLE_DEVICES not empty). --allow_cpu runs it anyway as a dry run.")
    return 1
  model = models.build_model("beta_tcvae", network="conv", latent_dim=10, dataset_size=727280)
  model.build()
  model.compile(optimizer="adam")
  images = tf.constant(data.ProceduralDSprites().images(np.arange(64)), tf.float32)
  step = tf.function(model.train_step)
  outputs = step(images)
  devices = {"variables": model.variables[0].value.device,
             "train step outputs": next(iter(outputs.values())).device}
  fns = attacks.ModelFns(model)
  x0 = images[:4].numpy()
  target = fns.encode_fn(images[4:8])

  def objective(x, idx):
    params = [(tf.gather(l, idx), tf.gather(s, idx)) for l, s in target]
    return attacks.latent_divergence(fns.encode_fn(x), params)

  @tf.function
  def evaluate(x):
    return objective(x, tf.range(4))

  devices["attack objective"] = evaluate(tf.constant(x0)).device
  result = attacks.minimize_tfp(objective, x0, 0.0, 1.0, max_iterations=5)
  print(f"tfp L-BFGS attack: {result.iterations[0]} iterations in {result.wall_time_s:.2f} s")
  # The lbfgs driver's tf backend: its per-step algebra must run where the objective does.
  ops = lbfgs_tf.TensorOps(0.0, 1.0, lbfgs.ARMIJO, lbfgs.CURVATURE_EPS, lbfgs.DENSE_UPDATE_FRACTION,
                          lbfgs.decrease_limit)
  flat = tf.reshape(tf.constant(x0), [4, -1])
  _, g = ops.evaluator(objective, x0.shape[1:], flat.shape[1], 64)(flat, np.arange(4))
  _, free, g_free = ops.free_set(flat, g)
  S = tf.zeros([4, 3, flat.shape[1]])
  grams = lbfgs_tf.free_set_grams(S, S, free)
  direction, _, _ = lbfgs_tf.reduced_direction(g_free, S, S, tf.zeros([4, 3, 3]), tf.zeros([4, 3]), grams,
                                               tf.zeros([4, 3], tf.bool), free, tf.range(3), lbfgs.CURVATURE_EPS)
  devices["lbfgs tf backend: gradient"], devices["lbfgs tf backend: direction"] = g.device, direction.device
  result = attacks.minimize_batched(objective, x0, 0.0, 1.0, max_iterations=5, backend="tf")
  print(f"lbfgs attack, tf backend: {result.iterations[0]} iterations in {result.wall_time_s:.2f} s")
  bad = {name: device for name, device in devices.items() if "GPU" not in device.upper()}
  for name, device in devices.items():
    print(f"  {name}: {device}")
  if bad:
    print(f"NOT on a GPU: {', '.join(bad)}" + (" (dry run on CPU: expected)" if args.allow_cpu else ""))
    return 0 if args.allow_cpu else 1
  print("Every checked op ran on the GPU.")
  return 0


if __name__ == "__main__":
  sys.exit(main())
