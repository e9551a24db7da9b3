"""The evaluation suite of one model (live or exported): numbers to `evaluation.json`, figures to a folder.

`run_suite` computes, on the callables of `attacks.ModelFns` or `serving.SavedModelFns`:
  elbo            the held-out ELBO without beta, one seeded posterior sample per image (`fixed_noise_elbo`)
  mig             MIG of z^L (optionally every layer) on the dataset's factor grid (`metrics.compute_migs`),
                  when the dataset has ground-truth factors
  noise           per noise scale s: mean, median and 10th percentile of log p(x|z*), z* from the noisy input
                  (Section 5.3); the per-image values go to `noise.npz` for the report's histograms
  weight_norms    encoder/decoder kernel L2 norms (Table 1), live models only
and draws reconstructions, ancestral samples, top-layer traversals, the KL activation (when per-unit KLs are
given) and the noise histograms.
"""

import os
import time

import numpy as np
import tensorflow as tf

from seatbelt_tf import io_utils
from seatbelt_tf import metrics
from seatbelt_tf.evaluation import measures
from seatbelt_tf.evaluation import plots


def run_suite(fns, source, eval_indices, settings, out_dir, title, model=None, kl_units=None, seed=0,
              batch_size=500, verbose=False):
  """Runs the suite and writes `out_dir/evaluation.json`, `out_dir/noise.npz` and the figures.

  Args:
    fns: the model's callables (`encode_fn`, `terms_fn`, `recon_fn`, `generate_fn`, `layer_sizes`).
    source: the dataset source.
    eval_indices: held-out indices; the first `settings.eval_images` are used for ELBO, noise and figures.
    settings: a `config.EvalConfig`.
    out_dir: folder of the outputs.
    title: figure title prefix (the model and its settings).
    model: the live model, for weight norms (None for an export).
    kl_units: optional {"1": [...], ...} mean KL per unit (results.json), for the KL-activation figure.
    seed: seeds the noise, the posterior samples and the MIG points.

  Returns:
    the dict written to evaluation.json.
  """
  start = time.time()
  s = settings
  indices = np.asarray(eval_indices)[:s.eval_images]
  images = source.tf_images(tf.constant(indices)).numpy()
  out = {"eval_images": int(len(indices)), "layer_sizes": [int(d) for d in fns.layer_sizes]}
  if verbose:
    print(f"Evaluating: ELBO and noise robustness on {len(indices)} held-out images...")
  out["elbo"] = measures.fixed_noise_elbo(fns, images, seed=seed, batch_size=batch_size)
  noise = measures.noise_robustness(fns, images, (0.0,) + tuple(s.noise_scales), source.data_range, seed=seed,
                                    batch_size=batch_size)
  out["noise"] = {f"{k:g}": {"mean": float(np.mean(v)), "median": float(np.median(v)),
                             "p10": float(np.percentile(v, 10))} for k, v in noise.items()}
  io_utils.atomic_save_npz(os.path.join(out_dir, "noise.npz"), **{f"{k:g}": v for k, v in noise.items()})
  if getattr(source, "factor_sizes", ()):
    # mig: the configured protocol's result ("both": the histogram one); mig_methods: every protocol computed.
    methods = ("histogram", "exact") if s.mig_method == "both" else (s.mig_method,)
    if verbose:
      print(f"Evaluating: MIG ({', '.join(methods)}) on {s.mig_points or source.num_examples} points...")
    out["mig_methods"] = metrics.compute_migs(
        fns.encode_fn, source, methods, num_points=s.mig_points or None, num_bins=s.mig_bins,
        num_samples=s.mig_samples, layers=s.mig_layers, seed=seed, batch_size=batch_size, verbose=verbose)
    out["mig"] = out["mig_methods"][methods[0]]
  if model is not None:
    out["weight_norms"] = measures.weight_norms(model)
  _figures(fns, source, images, noise, out_dir, title, kl_units, seed)
  out["wall_time_s"] = time.time() - start
  io_utils.atomic_write_json(os.path.join(out_dir, "evaluation.json"), out)
  return out


def _figures(fns, source, images, noise, out_dir, title, kl_units, seed):
  shown = images[:8]
  recons = np.asarray(fns.recon_fn(tf.constant(shown)))
  plots.reconstructions(os.path.join(out_dir, "reconstructions.png"), shown, recons, source.data_range,
                        f"{title}: held-out reconstructions")
  plots.sample_grid(os.path.join(out_dir, "samples.png"), measures.samples(fns, 16, seed=seed), source.data_range,
                    f"{title}: ancestral samples, z^L ~ N(0, I)")
  values = np.linspace(-3.0, 3.0, 9)
  top_kls = kl_units.get(str(len(fns.layer_sizes))) if kl_units else None
  plots.traversal_grid(os.path.join(out_dir, "traversals.png"), measures.traversals(fns, images[0], values), values,
                       source.data_range, f"{title}: traversals of z^L", top_kls)
  if kl_units:
    plots.kl_activation(os.path.join(out_dir, "kl_activation.png"), kl_units, f"{title}: KL per unit")
  plots.noise_histograms(os.path.join(out_dir, "noise.png"), {title: {k: v for k, v in noise.items() if k > 0}},
                         f"{title}: log p(x|z*) with noisy inputs")
