"""Training throughput of the beta-TCVAE (conv and MLP networks of Chen et al. 2018) against PyTorch and peak, and
the cost of a hierarchical (Seatbelt-VAE / beta-TC DLGM, L = 4) step relative to the beta-TCVAE step.

Table 1 (`--tables=backends`) prints, for each network: images/s of one full training step (forward, backward,
Adam update) at the given batch size, in TensorFlow graph mode (the default `--jit_compile=false`) and with XLA,
next to an equivalent PyTorch CPU step of the same network and objective measured in the same process,
alternating rounds so that machine noise hits both; the network's training FLOPs per image (3x the forward multiply-adds x 2); and the achieved fraction of
this machine's measured float32 matmul peak (a 2048x2048 `tf.matmul` loop).

Table 2 (`--tables=hierarchy`) times, on each network and alternating rounds in one process, one training step of
the beta-TCVAE (latent 10) and the Seatbelt-VAE and beta-TC DLGM at L = 2 and L = 4 (at L = 4 layers 48, 24, 12,
6 of eq. C.1; inter-layer MLPs of eq. C.8), each compiled as the launcher's `--jit_compile=auto` would, and reports
the cost of each step relative to the beta-TCVAE's (target for the L = 4 Seatbelt-VAE: <= 1.5x); the L = 2 rows
give what an L = 4 cell of the reproduction campaign costs against an L = 2 one.

Table 3 (`--tables=batchnorm`) times the beta-TCVAE and Seatbelt-VAE (L = 2, 4) steps with Keras's
BatchNormalization against the fused-kernel layer the networks use (issue 21), alternating in one process.

Table 4 (`--tables=blocks`) times the same steps with the networks' `linear -> BatchNorm -> activation` blocks run
as three Keras calls (bias added to the map; Keras's Conv2DTranspose for the decoder's 1x1 -> 4x4 layer) against
`nn.networks.norm_block` (bias left out of the map in training, the 1x1 layer as one matmul), alternating.

Table 5 (`--tables=ceiling`) is a ceiling for the conv pair: each of its ten layers written as the GEMMs of its
im2col form (forward, kernel gradient and, but for the first layer, input gradient) at the same batch, timed alone
on matrices already in memory, against the matmul peak. No convolution algorithm that computes the same products
beats these GEMMs by much, and BatchNorm, ReLU, the loss, the estimator and Adam come on top; so the table's "% of
peak" bounds what the conv step can reach on this machine.

Usage: python benchmarks/train_throughput.py [--batch_size=256] [--rounds=5] [--steps=5] [--no_torch]
       [--tables=backends,hierarchy,batchnorm,blocks,ceiling]
Needs the `bench` extra for PyTorch: pip install -e '.[bench]'.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from seatbelt_tf import data, models, nn  # noqa: E402

LATENT_DIM = 10
DATASET_SIZE = 737280 - 10000


def forward_flops(network, latent_dim=LATENT_DIM, channels=1):
  """Multiply-add FLOPs (2 per MAC) of one forward pass of encoder + decoder for one 64x64 image."""
  conv = lambda out_hw, k, cin, cout: 2 * out_hw * out_hw * k * k * cin * cout
  dense = lambda n_in, n_out: 2 * n_in * n_out
  if network == "conv":
    enc = (conv(32, 4, channels, 32) + conv(16, 4, 32, 32) + conv(8, 4, 32, 64) + conv(4, 4, 64, 64)
           + dense(4 * 4 * 64, 512) + dense(512, 2 * latent_dim))
    # A stride-2 transposed conv costs as much as the conv it mirrors: every input pixel scatters a k x k patch.
    dec = (dense(latent_dim, 512) + 2 * 512 * 64 * 16 + conv(4, 4, 64, 64) + conv(8, 4, 64, 32)
           + conv(16, 4, 32, 32) + conv(32, 4, 32, channels))
    return enc + dec
  if network == "mlp":
    return (dense(4096 * channels, 1200) + dense(1200, 1200) + dense(1200, 2 * latent_dim)
            + dense(latent_dim, 1200) + 2 * dense(1200, 1200) + dense(1200, 4096 * channels))
  raise ValueError(network)


def matmul_peak_gflops(n=2048, reps=20):
  a = tf.random.normal([n, n])
  b = tf.random.normal([n, n])

  @tf.function
  def loop(a, b):
    acc = tf.zeros([n, n])
    for _ in tf.range(reps):
      acc += tf.matmul(a, b)
    return acc

  loop(a, b).numpy()
  best = float("inf")
  for _ in range(3):
    start = time.perf_counter()
    loop(a, b).numpy()
    best = min(best, time.perf_counter() - start)
  return 2 * n**3 * reps / best / 1e9


def tf_step_fn(network, batch, jit_compile, name="beta_tcvae", **kwargs):
  kwargs = kwargs or {"latent_dim": LATENT_DIM}
  model = models.build_model(name, network=network, beta=6.0, dataset_size=DATASET_SIZE, **kwargs)
  model.build()
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  model.optimizer.build(model.trainable_variables)
  step = tf.function(model.train_step, jit_compile=jit_compile)
  return lambda: step(batch)["loss"].numpy()


def torch_step_fn(network, batch_np):
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  def block(layer, c):
    return [layer, nn.BatchNorm2d(c), nn.ReLU()]

  if network == "conv":
    encoder = nn.Sequential(*block(nn.Conv2d(1, 32, 4, 2, 1), 32), *block(nn.Conv2d(32, 32, 4, 2, 1), 32),
                            *block(nn.Conv2d(32, 64, 4, 2, 1), 64), *block(nn.Conv2d(64, 64, 4, 2, 1), 64),
                            *block(nn.Conv2d(64, 512, 4), 512), nn.Conv2d(512, 2 * LATENT_DIM, 1), nn.Flatten())
    decoder = nn.Sequential(nn.Unflatten(1, (LATENT_DIM, 1, 1)), *block(nn.ConvTranspose2d(LATENT_DIM, 512, 1), 512),
                            *block(nn.ConvTranspose2d(512, 64, 4), 64), *block(nn.ConvTranspose2d(64, 64, 4, 2, 1), 64),
                            *block(nn.ConvTranspose2d(64, 32, 4, 2, 1), 32),
                            *block(nn.ConvTranspose2d(32, 32, 4, 2, 1), 32), nn.ConvTranspose2d(32, 1, 4, 2, 1))
  else:
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(4096, 1200), nn.ReLU(), nn.Linear(1200, 1200), nn.ReLU(),
                            nn.Linear(1200, 2 * LATENT_DIM))
    decoder = nn.Sequential(nn.Linear(LATENT_DIM, 1200), nn.Tanh(), nn.Linear(1200, 1200), nn.Tanh(),
                            nn.Linear(1200, 1200), nn.Tanh(), nn.Linear(1200, 4096), nn.Unflatten(1, (1, 64, 64)))
  params = list(encoder.parameters()) + list(decoder.parameters())
  optimizer = torch.optim.Adam(params, lr=1e-3)
  x = torch.from_numpy(batch_np.transpose(0, 3, 1, 2).copy())
  log_nm = float(np.log(DATASET_SIZE * x.shape[0]))
  half_log_2pi = 0.5 * float(np.log(2 * np.pi))

  def step():
    raw = encoder(x)
    loc, scale = raw[:, :LATENT_DIM], nn.functional.softplus(raw[:, LATENT_DIM:]) + 1e-4
    z = loc + scale * torch.randn_like(loc)
    logits = decoder(z)
    rec = -nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=(1, 2, 3))
    kl = (0.5 * (scale**2 + loc**2 - 1) - torch.log(scale)).sum(dim=1)
    dens = (-0.5 * ((z[:, None] - loc[None]) / scale[None]) ** 2 - torch.log(scale[None]) - half_log_2pi)
    log_qz = torch.logsumexp(dens.sum(2), dim=1) - log_nm
    log_prod = (torch.logsumexp(dens, dim=1) - log_nm).sum(1)
    loss = -rec.mean() + kl.mean() + 5.0 * (log_qz - log_prod).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss)

  return step


def images_per_second(step, batch_size, steps):
  start = time.perf_counter()
  for _ in range(steps):
    step()
  return batch_size * steps / (time.perf_counter() - start)


def alternating_rates(steps, args):
  """{name: [images/s per round]} for named step functions, warmed up, measured in alternating rounds."""
  for step in steps.values():  # warm-up: tracing, XLA compilation, allocator
    for _ in range(2):
      step()
  rates = {name: [] for name in steps}
  for _ in range(args.rounds):
    for name, step in steps.items():
      rates[name].append(images_per_second(step, args.batch_size, args.steps))
  return rates


def hierarchy_table(args, batch):
  """Table 2: hierarchical steps against the beta-TCVAE step on the same backbone."""
  variants = {"beta_tcvae (latent 10)": ("beta_tcvae", {}),
              "seatbelt L=2": ("seatbelt", {"layers": 2}),
              "beta_tcdlgm L=2": ("beta_tcdlgm", {"layers": 2}),
              "seatbelt L=4": ("seatbelt", {"layers": 4}),
              "beta_tcdlgm L=4": ("beta_tcdlgm", {"layers": 4})}
  rows = []
  for network in args.networks.split(","):
    jit = network in nn.XLA_BY_DEFAULT
    steps = {label: tf_step_fn(network, batch, jit, name, **kw) for label, (name, kw) in variants.items()}
    rates = alternating_rates(steps, args)
    base = statistics.median(rates["beta_tcvae (latent 10)"])
    for label, r in rates.items():
      rows.append((network, "xla" if jit else "graph", label, statistics.median(r), min(r), max(r),
                   base / statistics.median(r)))
  print(f"\nHierarchical training steps, batch {args.batch_size}, median of {args.rounds} rounds x {args.steps} "
        "steps, alternating")
  print("| network | mode | model | images/s (median) | min | max | step cost vs beta_tcvae |")
  print("|---|---|---|---|---|---|---|")
  for network, mode, label, median, lo, hi, cost in rows:
    print(f"| {network} | {mode} | {label} | {median:.0f} | {lo:.0f} | {hi:.0f} | **{cost:.2f}x** |")


def batch_norm_table(args, batch):
  """Table 3: each step with Keras's BatchNormalization against the fused kernel the networks use
  (`nn.networks.FusedBatchNormalization`), alternating in one process."""
  from seatbelt_tf.nn import networks  # pylint: disable=g-import-not-at-top
  fused = networks.batch_norm

  def keras_batch_norm(name):
    return keras.layers.BatchNormalization(momentum=0.9, name=name)
  variants = {"beta_tcvae (latent 10)": ("beta_tcvae", {}), "seatbelt L=2": ("seatbelt", {"layers": 2}),
              "seatbelt L=4": ("seatbelt", {"layers": 4})}
  rows = []
  for network in args.networks.split(","):
    jit = network in nn.XLA_BY_DEFAULT
    steps = {}
    for label, (name, kw) in variants.items():
      networks.batch_norm = keras_batch_norm
      try:
        steps[(label, "keras")] = tf_step_fn(network, batch, jit, name, **kw)
      finally:
        networks.batch_norm = fused
      steps[(label, "fused")] = tf_step_fn(network, batch, jit, name, **kw)
    rates = alternating_rates(steps, args)
    for label in variants:
      before, after = (statistics.median(rates[(label, k)]) for k in ("keras", "fused"))
      rows.append((network, label, before, after, after / before))
  print(f"\nBatchNorm: Keras layer against the fused kernel, batch {args.batch_size}, median of {args.rounds} rounds "
        f"x {args.steps} steps, alternating")
  print("| network | model | images/s, keras BatchNormalization | images/s, fused | speed-up |")
  print("|---|---|---|---|---|")
  for network, label, before, after, ratio in rows:
    print(f"| {network} | {label} | {before:.0f} | {after:.0f} | **{ratio:.2f}x** |")


def blocks_table(args, batch):
  """Table 4: the plain Keras block order against `networks.norm_block`, alternating in one process."""
  from seatbelt_tf.nn import networks, stochastic  # pylint: disable=g-import-not-at-top
  fast_block, fast_transpose = networks.norm_block, networks.Conv2DTranspose

  def plain_block(layer, norm, activation, x, training):
    return activation(norm(layer(x), training=training))

  class ConvTranspose(networks.Conv2DTranspose):  # the 1x1 layer on oneDNN's transposed convolution
    matmul_1x1 = False
  variants = {"beta_tcvae (latent 10)": ("beta_tcvae", {}), "seatbelt L=2": ("seatbelt", {"layers": 2}),
              "seatbelt L=4": ("seatbelt", {"layers": 4})}
  plans = {"plain": (plain_block, keras.layers.Conv2DTranspose), "bias out": (fast_block, ConvTranspose),
           "bias out + 1x1 matmul": (fast_block, fast_transpose)}
  rows = []
  for network in args.networks.split(","):
    jit = network in nn.XLA_BY_DEFAULT
    steps = {}
    for label, (name, kw) in variants.items():
      for plan, (block, transpose) in plans.items():
        networks.norm_block = stochastic.norm_block = block
        networks.Conv2DTranspose = transpose
        try:
          steps[(label, plan)] = tf_step_fn(network, batch, jit, name, **kw)
          steps[(label, plan)]()  # traces with this plan's code
        finally:
          networks.norm_block = stochastic.norm_block = fast_block
          networks.Conv2DTranspose = fast_transpose
    rates = alternating_rates(steps, args)
    for label in variants:
      base = statistics.median(rates[(label, "plain")])
      rows.append((network, label, *(statistics.median(rates[(label, p)]) for p in plans),
                   *(statistics.median(rates[(label, p)]) / base for p in list(plans)[1:])))
  print(f"\nNetwork blocks: plain Keras calls against norm_block, batch {args.batch_size}, median of {args.rounds} "
        f"rounds x {args.steps} steps, alternating")
  print("| network | model | images/s, plain | bias out of the map | + 1x1 layer as matmul | speed-up, bias out | "
        "speed-up, both |")
  print("|---|---|---|---|---|---|---|")
  for network, label, plain, bias, both, r_bias, r_both in rows:
    print(f"| {network} | {label} | {plain:.0f} | {bias:.0f} | {both:.0f} | {r_bias:.2f}x | **{r_both:.2f}x** |")


def conv_gemms(batch_size, channels=(32, 32, 64, 64), hidden=512, image_size=64, image_channels=1):
  """[(layer, M, K, N, input gradient needed)]: the conv pair's layers as the GEMMs of their im2col form
  (nn.networks.ConvEncoder / ConvDecoder; a transposed convolution as the convolution it transposes)."""
  rows, size, c_in = [], image_size, image_channels
  for i, c in enumerate(channels):  # 4x4 stride-2 convolutions
    size //= 2
    rows.append((f"conv{i + 1}", batch_size * size * size, 16 * c_in, c, i > 0))
    c_in = c
  rows.append(("conv5_4x4_valid", batch_size, size * size * c_in, hidden, True))
  rows.append(("deconv1_1x1", batch_size, LATENT_DIM, hidden, True))
  rows.append(("deconv2", batch_size, hidden, 16 * channels[-1], True))
  dec = list(reversed(channels)) + [image_channels]
  for i in range(len(dec) - 1):  # stride-2 transposed convolutions: the adjoint of a conv from the larger map
    rows.append((f"deconv{i + 3}" if i < len(dec) - 2 else "deconv_out", batch_size * size * size, 16 * dec[i + 1],
                 dec[i], True))
    size *= 2
  return rows


def ceiling_table(args):
  """Table 5: the conv pair's layers as GEMMs, alone, against the matmul peak (see the module docstring)."""
  peak = max(matmul_peak_gflops() for _ in range(3))
  rows, total_flops, total_time = [], 0, 0.0
  for name, m, k, n, input_gradient in conv_gemms(args.batch_size):
    a, w, g = tf.random.normal([m, k]), tf.random.normal([k, n]), tf.random.normal([m, n])
    products = [lambda: tf.matmul(a, w), lambda: tf.matmul(a, g, transpose_a=True)]
    if input_gradient:
      products.append(lambda: tf.matmul(g, w, transpose_b=True))
    seconds = 0.0
    for product in products:
      fn = tf.function(lambda product=product: tf.reduce_sum(product()), autograph=False)
      fn().numpy()
      best = float("inf")
      for _ in range(args.rounds):
        start = time.perf_counter()
        for _ in range(args.steps):
          out = fn()
        out.numpy()
        best = min(best, (time.perf_counter() - start) / args.steps)
      seconds += best
    flops = 2 * m * k * n * len(products)
    total_flops, total_time = total_flops + flops, total_time + seconds
    rows.append((name, m, k, n, seconds, flops / seconds / 1e9))
  print(f"\nThe conv pair's layers as GEMMs (im2col form), batch {args.batch_size}, best of {args.rounds} rounds x "
        f"{args.steps}; matmul peak {peak:.0f} GFLOP/s")
  print("| layer | M | K | N | ms (forward + gradients) | GFLOP/s | % of peak |")
  print("|---|---|---|---|---|---|---|")
  for name, m, k, n, seconds, rate in rows:
    print(f"| {name} | {m} | {k} | {n} | {1e3 * seconds:.2f} | {rate:.0f} | {100 * rate / peak:.1f}% |")
  rate = total_flops / total_time / 1e9
  print(f"| **all** | | | | {1e3 * total_time:.1f} | {rate:.0f} | **{100 * rate / peak:.1f}%** |")
  print(f"Ceiling: {args.batch_size / total_time:.0f} images/s with BatchNorm, ReLU, im2col, the loss and Adam free.")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--rounds", type=int, default=5, help="alternating measurement rounds (median reported)")
  parser.add_argument("--steps", type=int, default=5, help="training steps per round")
  parser.add_argument("--networks", default="conv,mlp")
  parser.add_argument("--no_torch", action="store_true")
  parser.add_argument("--tables", default="backends,hierarchy",
                      help="which tables: backends, hierarchy, batchnorm (Keras's layer against the fused kernel), "
                      "blocks (plain Keras calls against norm_block), ceiling (the conv layers as GEMMs)")
  args = parser.parse_args()
  tables = args.tables.split(",")

  idx = np.random.default_rng(0).integers(0, 737280, args.batch_size)
  batch_np = data.ProceduralDSprites().images(idx).astype(np.float32)
  batch = tf.constant(batch_np)
  if "hierarchy" in tables:
    hierarchy_table(args, batch)
  if "batchnorm" in tables:
    batch_norm_table(args, batch)
  if "blocks" in tables:
    blocks_table(args, batch)
  if "ceiling" in tables:
    ceiling_table(args)
  if "backends" not in tables:
    return
  peak = matmul_peak_gflops()
  print(f"float32 matmul peak (2048x2048 tf.matmul): {peak:.1f} GFLOP/s; threads: TF intra-op "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}, cores {os.cpu_count()}")
  rows = []
  for network in args.networks.split(","):
    candidates = {"tf graph": tf_step_fn(network, batch, False), "tf xla": tf_step_fn(network, batch, True)}
    if not args.no_torch:
      candidates["torch"] = torch_step_fn(network, batch_np)
    rates = alternating_rates(candidates, args)
    train_flops = 3 * forward_flops(network)
    for name, r in rates.items():
      median = statistics.median(r)
      rows.append((network, name, median, min(r), max(r), train_flops, median * train_flops / 1e9 / peak))
    if not args.no_torch:
      ratio = statistics.median(rates["tf graph"]) / statistics.median(rates["torch"])
      ratio_xla = statistics.median(rates["tf xla"]) / statistics.median(rates["torch"])
      rows.append((network, "tf graph / torch", ratio, None, None, None, None))
      rows.append((network, "tf xla / torch", ratio_xla, None, None, None, None))

  print(f"\nbeta-TCVAE training step, batch {args.batch_size}, latent {LATENT_DIM}, median of {args.rounds} "
        f"rounds x {args.steps} steps")
  print(f"| network | implementation | images/s (median) | min | max | train MFLOP/image | % of matmul peak |")
  print("|---|---|---|---|---|---|---|")
  for network, name, median, lo, hi, flops, frac in rows:
    if lo is None:
      print(f"| {network} | {name} | **{median:.2f}x** | | | | |")
    else:
      print(f"| {network} | {name} | {median:.0f} | {lo:.0f} | {hi:.0f} | {flops / 1e6:.1f} | {100 * frac:.1f}% |")


if __name__ == "__main__":
  main()
