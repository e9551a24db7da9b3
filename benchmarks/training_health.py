"""Training health of the first steps: per-layer KL, gradient norms per group and Adam's second moments, for the
beta-TCVAE and the hierarchies on the same batches, with the shipped Gaussian-head initialisation and (with
--heads=glorot) the previous one, Keras's default Glorot kernel and zero bias on every head.

Prints one row per model: step-0 largest per-layer KL and global gradient norm, the largest global gradient norm
and KL over the run, the last step's KLs, the median sqrt(v) of Adam per group at the end, the spikes the health
monitor flagged, and the held-out ELBO on 2,000 images.

  python benchmarks/training_health.py [--steps=400] [--network=conv] [--seed=0] [--heads=unit|glorot]
      [--models=beta_tcvae:1,seatbelt:2,seatbelt:4,beta_tcdlgm:2] [--clip_grad_norm=0]
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from seatbelt_tf import data as data_lib  # noqa: E402
from seatbelt_tf import models as models_lib  # noqa: E402


def glorot_heads(model):
  """Re-initialises every Gaussian head with Keras's Dense defaults (Glorot uniform kernel, zero bias): the
  initialisation before the unit-scale heads of seatbelt_tf.nn.heads."""
  heads = [model.encoder.head] + [mlp.head for mlp in getattr(model, "up", []) + getattr(model, "down", [])]
  for head in heads:
    head.kernel.assign(keras.initializers.GlorotUniform()(head.kernel.shape))
    head.bias.assign(tf.zeros_like(head.bias))


def run(name, layers, args, batches, heldout):
  keras.utils.set_random_seed(args.seed)
  kw = {"network": args.network, "beta": args.beta, "seed": args.seed, "dataset_size": 727280}
  kw.update({"layers": layers} if models_lib.is_hierarchical(name) else {"latent_dim": 10})
  model = models_lib.build_model(name, **kw)
  model.build((None, 64, 64, 1))
  if args.heads == "glorot":
    glorot_heads(model)
  model.compile(optimizer=keras.optimizers.Adam(args.learning_rate, global_clipnorm=args.clip_grad_norm or None))
  model.optimizer.build(model.trainable_variables)
  step = tf.function(model.train_step)
  kl_names = model.health_kl_names
  first, max_norm, max_kl, logs, trace = None, 0.0, 0.0, None, []
  start = time.time()
  for i in range(args.steps):
    for tracker in model.metrics:
      tracker.reset_state()
    logs = {k: float(np.ravel(v)[0]) for k, v in step(batches[i % len(batches)]).items()}
    kls = [logs[k] for k in kl_names]
    trace.append({k: v for k, v in logs.items() if k.startswith("grad_norm") or k.startswith("kl")})
    if first is None:
      first = (max(kls), logs["grad_norm"])
    max_norm, max_kl = max(max_norm, logs["grad_norm"]), max(max_kl, max(kls))
  seconds = time.time() - start
  spikes, report = model.health.take_report()
  # Adam's second moment per group: median sqrt(v) over each group's entries.
  slots = {id(v): i for i, v in enumerate(model.trainable_variables)}
  sqrt_v = {}
  for group, variables in model.gradient_groups().items():
    values = np.concatenate([np.sqrt(model.optimizer._velocities[slots[id(v)]].numpy().ravel()) for v in variables])
    sqrt_v[group] = float(np.median(values))
  elbo = float(np.mean([model.evaluate(b, verbose=0, return_dict=True)["elbo"] for b in heldout]))
  return {"model": f"{name} L={layers}", "kl0": first[0], "norm0": first[1], "max_norm": max_norm, "max_kl": max_kl,
          "kls": [round(logs[k], 2) for k in kl_names], "sqrt_v": sqrt_v, "spikes": spikes, "report": report,
          "elbo": elbo, "seconds": seconds, "trace": trace}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--steps", type=int, default=400)
  parser.add_argument("--network", default="conv")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--beta", type=float, default=1.0)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--learning_rate", type=float, default=1e-3)
  parser.add_argument("--clip_grad_norm", type=float, default=0.0)
  parser.add_argument("--heads", choices=("unit", "glorot"), default="unit")
  parser.add_argument("--models", default="beta_tcvae:1,seatbelt:2,seatbelt:4,beta_tcdlgm:2")
  parser.add_argument("--trace", default="", help="write every step's gradient norms and KLs to this JSON file")
  args = parser.parse_args()
  traces = {}
  source = data_lib.ProceduralDSprites()
  rng = np.random.default_rng(args.seed)
  order = rng.permutation(source.num_examples)
  train_idx, held_idx = order[:args.steps * args.batch_size], order[-2000:]
  batches = [tf.constant(source.images(np.sort(train_idx[i:i + args.batch_size])), tf.float32)
             for i in range(0, len(train_idx), args.batch_size)]
  heldout = [tf.constant(source.images(np.sort(held_idx[i:i + 500])), tf.float32) for i in range(0, 2000, 500)]
  print(f"{args.network}, seed {args.seed}, beta {args.beta}, batch {args.batch_size}, {args.steps} steps, heads "
        f"{args.heads}, clip {args.clip_grad_norm or 'off'}")
  print("| model | step-0 max KL | step-0 grad norm | max grad norm | max KL | last KLs | median sqrt(v) per group at the "
        "end | spikes | held-out ELBO | s |\n|---|---|---|---|---|---|---|---|---|---|")
  for item in args.models.split(","):
    name, layers = item.split(":")
    r = run(name, int(layers), args, batches, heldout)
    traces[r["model"]] = r.pop("trace")
    sv = ", ".join(f"{g} {v:.3g}" for g, v in r["sqrt_v"].items())
    print(f"| {r['model']} | {r['kl0']:.4g} | {r['norm0']:.4g} | {r['max_norm']:.4g} | {r['max_kl']:.4g} | "
          f"{r['kls']} | {sv} | {r['spikes']} | {r['elbo']:.1f} | {r['seconds']:.0f} |", flush=True)
  if args.trace:
    with open(args.trace, "w") as f:
      json.dump(traces, f)


if __name__ == "__main__":
  main()
