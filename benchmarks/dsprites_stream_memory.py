"""Peak memory and speed of one full, fully shuffled pass over dSprites through the tf.data pipeline.

Streams every training example of the split once (737,280 minus the held-out ones) with the epoch shuffle of
`seatbelt_tf.data.train_dataset`, and prints images/s and the peak resident set size of the process (TensorFlow
runtime included). The procedural source renders on the fly; the npz source holds the original file bit-packed.

Usage:
  python benchmarks/dsprites_stream_memory.py --source=procedural
  python benchmarks/dsprites_stream_memory.py --make_npz=/tmp/dsprites   # writes a full-size npz (2.8 GiB, stored)
  python benchmarks/dsprites_stream_memory.py --source=npz --data_dir=/tmp/dsprites
Run each measurement in a fresh process: peak RSS never goes down.
"""

import argparse
import os
import resource
import time
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from seatbelt_tf import data  # noqa: E402
from seatbelt_tf.data import dsprites  # noqa: E402


def peak_rss_mib():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def make_npz(directory, chunk=32768):
  """Writes a full-size dSprites npz from the procedural source, chunk by chunk (never the dense array)."""
  os.makedirs(directory, exist_ok=True)
  source = data.ProceduralDSprites()
  n = source.num_examples
  path = os.path.join(directory, dsprites.NPZ_FILENAME)
  with zipfile.ZipFile(path + ".tmp", "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
    with archive.open("imgs.npy", "w", force_zip64=True) as f:
      np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (n, 64, 64)})
      for start in range(0, n, chunk):
        f.write(source.images(np.arange(start, min(n, start + chunk)))[..., 0].tobytes())
    classes = np.concatenate([np.zeros((n, 1), np.int64), source.factors(np.arange(n))], axis=1)
    with archive.open("latents_classes.npy", "w", force_zip64=True) as f:
      np.lib.format.write_array(f, classes)
  os.replace(path + ".tmp", path)
  print(f"wrote {path} ({os.path.getsize(path) / 2**30:.2f} GiB)")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--source", choices=["procedural", "npz"], default="procedural")
  parser.add_argument("--data_dir", default=None)
  parser.add_argument("--make_npz", default=None, help="write a full-size npz into this folder and exit")
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--eval_examples", type=int, default=10000)
  args = parser.parse_args()
  if args.make_npz:
    make_npz(args.make_npz)
    return

  start = time.perf_counter()
  source = (data.ProceduralDSprites() if args.source == "procedural" else
            data.build_dataset("dsprites", data_dir=args.data_dir))
  load_s = time.perf_counter() - start
  rss_loaded = peak_rss_mib()
  batches = (source.num_examples - args.eval_examples) // args.batch_size
  ds = data.train_dataset(source, args.batch_size, args.eval_examples, seed=0).take(batches)
  start = time.perf_counter()
  pixels = 0.0
  for x in ds:
    pixels += float(x.numpy().sum())
  elapsed = time.perf_counter() - start
  images = batches * args.batch_size
  print(f"| source | examples streamed | load s | pass s | images/s | mean pixel | peak RSS after load MiB "
        f"| peak RSS MiB |")
  print("|---|---|---|---|---|---|---|---|")
  print(f"| {args.source} | {images} | {load_s:.1f} | {elapsed:.1f} | {images / elapsed:.0f} "
        f"| {pixels / images / 4096:.4f} | {rss_loaded:.0f} | {peak_rss_mib():.0f} |")


if __name__ == "__main__":
  main()
