"""Which images make the encoder's gradient spike? Per-example gradients at the steps the health guard flags.

The quickstart's models (MLP pair, batch 64) log 3-6 health-guard warnings each in 700 steps: a step whose
`grad_norm_encoder` is over 100x its running median (README, "Training health"). This probe trains the quickstart's
vanilla VAE (a beta-VAE with `--beta`) step by step on the launcher's batches, with the launcher's optimiser, and
at every step whose encoder gradient norm passes the guard's test (`health.spike_ratios` at `--threshold` times the
running median) it takes the batch's per-example gradients (the loss is a mean over the batch's rows at free bits
0, so the batch gradient is the mean of the per-example ones, with the same reparameterisation noise) and prints,
per flagged step:

* the ratio to the running median (the guard's number);
* `top share`: the norm of the largest example's term (its gradient / B) over the batch gradient's norm, and the
  cosine between the two (1.0 and 1.0: that one image is the whole spike);
* the second-largest example's share, and the median example's;
* the top example's log p(x|z) and KL(q(z|x) || p(z)), the batch median of both, and its factors.

Usage: python benchmarks/gradient_spikes.py [--beta=1] [--steps=700] [--batch_size=64]
       [--network=mlp] [--seed=0] [--threshold=100] [--json=out.json]
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from seatbelt_tf import config as config_lib, data as data_lib, health, runs  # noqa: E402
from seatbelt_tf.data import pipeline  # noqa: E402

FACTORS = ("shape", "scale", "orientation", "posX", "posY")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--beta", type=float, default=1.0)
  parser.add_argument("--steps", type=int, default=700)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--network", default="mlp")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--eval_examples", type=int, default=5000, help="the quickstart's held-out split")
  parser.add_argument("--threshold", type=float, default=100.0, help="the guard's ratio")
  parser.add_argument("--json", default="", help="write every flagged step here")
  args = parser.parse_args()

  config = config_lib.RunConfig.from_flat({
      "workdir": "/tmp/gradient_spikes", "model": "vae", "network": args.network, "beta": args.beta,
      "latent_dim": 10, "batch_size": args.batch_size, "eval_examples": args.eval_examples, "seed": args.seed,
      "free_bits": 0.0, "verbose": 0})
  config, source = runs.open_source(config)
  model = runs.build_model(config, source)
  encoder_vars = model.encoder.trainable_variables
  encoder_ids = {id(v) for v in encoder_vars}

  def per_example_loss(x, noise):
    """The VAE's loss per image at free bits 0 (its batch loss is their mean), and the terms."""
    terms = model.single_layer_terms(x, training=True, noise=noise)
    return -terms["reconstruction"] + model.beta * terms["kl"], terms

  @tf.function
  def per_example_gradients(x, noise):
    with tf.GradientTape() as tape:
      per_example, _ = per_example_loss(x, noise)
    jacobian = tape.jacobian(per_example, encoder_vars, experimental_use_pfor=True)
    flat = tf.concat([tf.reshape(j, [tf.shape(x)[0], -1]) for j in jacobian], axis=1)  # [B, P]
    return flat

  @tf.function
  def batch_step(x, noise):
    with tf.GradientTape() as tape:
      per_example, terms = per_example_loss(x, noise)
      loss = tf.reduce_mean(per_example)
    gradients = tape.gradient(loss, model.trainable_variables)
    norm = tf.linalg.global_norm([g for g, v in zip(gradients, model.trainable_variables) if id(v) in encoder_ids])
    return gradients, norm, terms["reconstruction"], terms["kl"]

  def ink_profile(x, noise, rows):
    """For images `rows`: ink pixels, the mean decoder logit on them, the share of -log p(x|z) they carry, and
    the share of ink within 4 pixels of the border."""
    loc, scale = model.encode(x, training=True)
    z = model.sample(loc, scale, noise)
    logits = model.decode(z, training=True).numpy()[..., 0]
    at_mean = model.log_likelihood(x, model.decode(loc, training=True)).numpy()
    images = x.numpy()[..., 0] > 0.5
    border = np.ones(images.shape[1:], bool)
    border[4:-4, 4:-4] = False
    out = []
    for r in rows:
      ink, lg = images[r], logits[r]
      nll = np.logaddexp(0.0, -lg) * ink + np.logaddexp(0.0, lg) * ~ink  # -log Bernoulli(x | sigmoid(logit))
      out.append({"ink": int(ink.sum()), "ink_logit": float(lg[ink].mean()),
                  "ink_nll_share": float(nll[ink].sum() / nll.sum()),
                  "ink_on_border": float((ink & border).sum() / max(ink.sum(), 1)),
                  "background_logit_max": float(lg[~ink].max()),
                  "background_on": int((lg[~ink] > 0).sum()),
                  "log_px_at_mean": float(at_mean[r]), "noise_norm": float(np.linalg.norm(noise.numpy()[r])),
                  "z_norm": float(np.linalg.norm(z.numpy()[r])), "loc_norm": float(np.linalg.norm(loc.numpy()[r])),
                  "scale_min": float(scale.numpy()[r].min())})
    return out

  # The guard's own test (health.spike_ratios) on a ring buffer of the encoder's norms, as HealthMonitor keeps it.
  history, ratios, flagged = np.zeros((1, health.WINDOW), np.float32), [], []
  dataset = iter(data_lib.train_dataset(source, args.batch_size, config.data.eval_examples, args.seed))
  noise_rng = tf.random.Generator.from_seed(args.seed)
  for i in range(args.steps):
    x = next(dataset)
    noise = noise_rng.normal([args.batch_size, model.latent_dim])
    gradients, norm, rec, kl = batch_step(x, noise)
    norm = float(norm)
    ratio, median = (float(v[0]) for v in health.spike_ratios(np.array([norm], np.float32), history, i))
    ratios.append(ratio)
    if ratio > args.threshold:
      flat = per_example_gradients(x, noise).numpy() / args.batch_size
      total = flat.sum(axis=0)
      norms = np.linalg.norm(flat, axis=1)
      order = np.argsort(-norms)
      top = order[0]
      total_norm = np.linalg.norm(total)
      cosine = float(flat[top] @ total / (norms[top] * total_norm))
      indices = pipeline.train_indices(i, args.batch_size, source.num_examples, config.data.eval_examples,
                                       args.seed)
      factors = source.factors(np.asarray(indices)[[top]])[0]
      rec, kl = rec.numpy(), kl.numpy()
      row = {"step": i + 1, "ratio": ratio, "encoder_norm": norm, "median": median,
             "top_share": float(norms[top] / total_norm), "top_cosine": cosine,
             "second_share": float(norms[order[1]] / total_norm),
             "median_share": float(np.median(norms) / total_norm),
             "top_log_px": float(rec[top]), "median_log_px": float(np.median(rec)),
             "top_kl": float(kl[top]), "median_kl": float(np.median(kl)),
             "top_factors": {name: float(v) for name, v in zip(FACTORS, np.ravel(factors)[-5:])}}
      middle = int(np.argsort(rec)[len(rec) // 2])
      row["top_ink"], row["median_ink"] = ink_profile(x, noise, [top, middle])
      flagged.append(row)
      print(f"step {row['step']:4d} ratio {ratio:7.1f}  top share {row['top_share']:.3f} (cos {cosine:.3f}), "
            f"2nd {row['second_share']:.3f}, median {row['median_share']:.4f}; top log p(x|z) "
            f"{row['top_log_px']:.0f} (batch median {row['median_log_px']:.0f}), KL {row['top_kl']:.1f} "
            f"({row['median_kl']:.1f}); factors {row['top_factors']}", flush=True)
      print(f"     ink: top {row['top_ink']}, median image {row['median_ink']}", flush=True)
    history[0, i % health.WINDOW] = norm
    model.optimizer.apply(gradients, model.trainable_variables)
  print(f"{len(flagged)} flagged steps of {args.steps}; the largest ratios: "
        + ", ".join(f"{r:.0f}" for r in sorted(ratios)[::-1][:8]))
  if flagged:
    shares = np.array([r["top_share"] for r in flagged])
    print(f"top example's share of the spike: median {np.median(shares):.3f}, min {shares.min():.3f}")
  if args.json:
    with open(args.json + ".tmp", "w") as f:
      json.dump({"args": vars(args), "flagged": flagged}, f, indent=1)
    os.replace(args.json + ".tmp", args.json)


if __name__ == "__main__":
  main()
