"""The loss and gradients of one training step of the shipped models, kept as a reference (issue 21: speed work must
leave the numerics unchanged).

`python tests/step_reference.py` writes the reference of this CPU's instruction set (`PATH`: step_reference.json for
AVX-512, step_reference.avx2.json, written on 2026-12-03 from code that passed the AVX-512 reference, for AVX2-only
CPUs) from the present implementation;
tests/test_step_reference.py recomputes the same step and compares. Regenerate the file only for a change that is
meant to alter the numerics (and say so in the commit).

Each case: seed 0, the first 32 procedural dSprites images, one `loss_terms(x, training=True)` under a gradient
tape (the same call `BaseVAE.train_step` makes), the model's own sampling-seed stream. Stored: every loss term, and
per trainable variable (in `trainable_variables` order, by its path below the model, which Keras may rename
`seatbelt_1` when a process builds two) the gradient's L2 norm and sum.
"""

import json
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from seatbelt_tf import data, models  # noqa: E402



def _isa():
  """The instruction set oneDNN's kernels dispatch on here, which sets the order its convolutions and BatchNorms
  sum in: the conv cases' float round-off differs between AVX-512 and AVX2-only CPUs (2026-12-03: norms up to
  2.0e-3 apart, sums up to 0.077 of the norm), so each keeps its own reference."""
  try:
    with open("/proc/cpuinfo") as f:
      flags = set(next((line for line in f if line.startswith("flags")), "").split())
  except OSError:
    flags = set()
  return "avx2" if "avx2" in flags and "avx512f" not in flags else "avx512"


# The AVX-512 reference (the original) is used on any other CPU too.
PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                    "step_reference.avx2.json" if _isa() == "avx2" else "step_reference.json")
CASES = {
    "beta_tcvae_conv": ("beta_tcvae", {"network": "conv", "latent_dim": 10, "beta": 6.0}),
    "beta_tcvae_mlp": ("beta_tcvae", {"network": "mlp", "latent_dim": 10, "beta": 6.0}),
    "seatbelt_L2_conv": ("seatbelt", {"network": "conv", "layers": 2, "beta": 6.0}),
    "beta_tcdlgm_L2_mlp": ("beta_tcdlgm", {"network": "mlp", "layers": 2, "beta": 6.0}),
}

# Biases of the layers that feed a BatchNorm (the conv networks' blocks, the hierarchies' conditional MLPs): in a
# training step the batch mean cancels them, so their gradient is exactly zero. The reference (computed when the bias
# was still added to the feature map) holds float round-off there (up to 4.5e-5 of the same layer's kernel gradient
# norm); since `networks.norm_block` leaves the bias out of the map, the gradient is the exact 0.
ZERO_BY_BATCHNORM = re.compile(r"^(encoder/conv[1-4]|encoder/conv5_4x4_valid|decoder/deconv1_1x1|decoder/deconv[2-5]"
                               r"|[qp]_z\d+_given_z\d+/fc\d+)/bias$")


def compute(case):
  """{terms: {name: float}, gradients: [[name, norm, sum], ...]} of one step of `case`."""
  name, kw = CASES[case]
  keras.utils.set_random_seed(0)
  model = models.build_model(name, dataset_size=727280, seed=0, **kw)
  model.build()
  x = tf.constant(data.ProceduralDSprites().images(np.arange(32)), tf.float32)
  with tf.GradientTape() as tape:
    terms = model.loss_terms(x, training=True)
  gradients = tape.gradient(terms["loss"], model.trainable_variables)
  return {"terms": {k: float(v) for k, v in terms.items() if np.ndim(v) == 0},
          "gradients": [[v.path.split("/", 1)[-1], float(tf.norm(g)), float(tf.reduce_sum(g))]
                        for v, g in zip(model.trainable_variables, gradients)]}


def main():
  out = {case: compute(case) for case in CASES}
  os.makedirs(os.path.dirname(PATH), exist_ok=True)
  with open(PATH + ".tmp", "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
  os.replace(PATH + ".tmp", PATH)
  print(f"wrote {PATH}: {', '.join(CASES)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
