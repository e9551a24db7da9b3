"""Input-pipeline throughput and peak memory of every in-memory path, against the training step it feeds.

Each row runs in a fresh subprocess (so `ru_maxrss` is that path's own peak, TensorFlow runtime included) and
streams `--batches` training batches through `seatbelt_tf.data.train_dataset` (index shuffle, map, prefetch):

  procedural      dSprites rendered on demand from indices (no store)
  packed_binary   737,280 binary 64x64 images in a bit-packed ImageStore (the dSprites npz / TFDS dsprites path;
                  random pixels at dSprites' 4.3% foreground)
  uint8_rgb       480,000 RGB 64x64 images in a uint8 ImageStore (3D Shapes' size, random pixels; the TFDS
                  shapes3d / celeb_a path)
  image_folder    `--folder_images` PNG files (128x128 RGB, written to a temp folder), decoded in parallel into a
                  uint8 store at load time (load images/s reported), then streamed like uint8_rgb

and times the beta-TCVAE conv training step at the same batch size on 1- and 3-channel images (graph mode, as the
launcher runs it). The ratio column is pipeline images/s / training images/s of the matching channel count;
target >= 5x, so that the pipeline is never the bottleneck.

Usage: python benchmarks/input_pipeline.py [--batch_size=64] [--batches=3000] [--folder_images=20000]
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PATHS = ("procedural", "packed_binary", "uint8_rgb", "image_folder")


def _peak_rss_mib():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _source(path, args):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from seatbelt_tf import data  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  if path == "procedural":
    return data.ProceduralDSprites(), {}
  if path == "packed_binary":
    store = data.ImageStore(737280, (64, 64, 1), binary=True)
    for _ in range(737280 // 2048):  # random pixels, dSprites' foreground fraction: the gather cost is the same
      store.append((rng.random((2048, 64, 64, 1), dtype=np.float32) < 0.043).astype(np.uint8))
    return data.ArraySource("packed_binary", store.finish(), "bernoulli"), {}
  if path == "uint8_rgb":
    store = data.ImageStore(480000, (64, 64, 3), binary=False)
    for _ in range(480000 // 16000):
      store.append(rng.integers(0, 256, size=(16000, 64, 64, 3), dtype=np.uint8))
    return data.ArraySource("uint8_rgb", store.finish(), "gaussian"), {}
  if path == "image_folder":
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    folder = tempfile.mkdtemp(prefix="seatbelt_bench_images_")
    for i in range(args.folder_images):
      pixels = rng.integers(0, 256, size=(128, 128, 3), dtype=np.uint8)
      with open(os.path.join(folder, f"{i:06d}.png"), "wb") as f:
        f.write(tf.io.encode_png(pixels).numpy())
    start = time.perf_counter()
    try:
      source = data.load_image_folder(folder, verbose=False)
    finally:
      shutil.rmtree(folder, ignore_errors=True)
    load_s = time.perf_counter() - start
    return source, {"load_images_per_s": args.folder_images / load_s, "decode_s": load_s}
  raise ValueError(path)


def run_path(path, args):
  from seatbelt_tf import data  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  source, extra = _source(path, args)
  load_s = extra.pop("decode_s", time.perf_counter() - start)  # image_folder: decoding only, not writing the files
  rss_after_load = _peak_rss_mib()
  eval_examples = min(10000, source.num_examples // 10)
  ds = data.train_dataset(source, args.batch_size, eval_examples, seed=0)
  iterator = iter(ds)
  for _ in range(20):  # warm-up: tracing, autotuning
    next(iterator)
  start = time.perf_counter()
  total = 0.0
  for _ in range(args.batches):
    total += float(next(iterator)[0, 0, 0, 0])
  elapsed = time.perf_counter() - start
  return {"path": path, "examples": source.num_examples, "channels": source.image_shape[-1],
          "store_mib": source.store.nbytes / 2**20 if hasattr(source, "store") else 0.0, "load_s": load_s,
          "images_per_s": args.batches * args.batch_size / elapsed, "rss_after_load_mib": rss_after_load,
          "peak_rss_mib": _peak_rss_mib(), **extra}


def run_training(channels, args):
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from seatbelt_tf import models  # pylint: disable=g-import-not-at-top
  likelihood = "bernoulli" if channels == 1 else "gaussian"
  model = models.BetaTCVAE(latent_dim=10, network="conv", image_shape=(64, 64, channels), likelihood=likelihood,
                           beta=6.0, dataset_size=727280)
  model.build()
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  model.optimizer.build(model.trainable_variables)
  x = tf.random.uniform([args.batch_size, 64, 64, channels])
  x = tf.round(x) if channels == 1 else 2 * x - 1
  step = tf.function(model.train_step)
  for _ in range(3):
    step(x)["loss"].numpy()
  steps = 40
  start = time.perf_counter()
  for _ in range(steps):
    step(x)["loss"].numpy()
  return {"channels": channels, "images_per_s": steps * args.batch_size / (time.perf_counter() - start)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--batches", type=int, default=3000)
  parser.add_argument("--folder_images", type=int, default=20000)
  parser.add_argument("--paths", default=",".join(PATHS))
  parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    kind, value = args.child.split(":")
    result = run_training(int(value), args) if kind == "train" else run_path(value, args)
    print("RESULT " + json.dumps(result))
    return

  def child(spec):
    cmd = [sys.executable, __file__, f"--child={spec}", f"--batch_size={args.batch_size}",
           f"--batches={args.batches}", f"--folder_images={args.folder_images}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])

  training = {c: child(f"train:{c}")["images_per_s"] for c in (1, 3)}
  rows = [child(f"path:{p}") for p in args.paths.split(",")]
  print(f"\nInput pipelines, batch {args.batch_size}, {args.batches} batches after 20 warm-up batches; "
        f"conv beta-TCVAE training step: {training[1]:.0f} images/s (1 channel), {training[3]:.0f} (3 channels)")
  print("| path | examples | store MiB | load s | pipeline images/s | x training step | peak RSS after load MiB "
        "| peak RSS MiB |")
  print("|---|---|---|---|---|---|---|---|")
  for r in rows:
    load = f"{r['load_s']:.1f}"
    if "load_images_per_s" in r:
      load += f" ({r['load_images_per_s']:.0f} files/s)"
    print(f"| {r['path']} | {r['examples']} | {r['store_mib']:.0f} | {load} | {r['images_per_s']:.0f} | "
          f"**{r['images_per_s'] / training[r['channels']]:.1f}x** | {r['rss_after_load_mib']:.0f} | "
          f"{r['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
  main()
