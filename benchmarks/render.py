"""Procedural dSprites rendering: `render_sprites` compiled by XLA (what `ProceduralDSprites.tf_images` runs)
against the same function in graph mode, op by op (what it ran before).

Table 1: images/s of each renderer alone, per batch size, alternating within each of --rounds rounds.
Table 2: images/s of the training input pipeline (`data.train_dataset`: index shuffle, map, prefetch) with each.
With --check_grid, every one of the 737,280 images is rendered both ways and the differing pixels counted.

Usage: python benchmarks/render.py [--batch_sizes=64,256,2048] [--rounds=3] [--batches=20] [--check_grid]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from seatbelt_tf import data  # noqa: E402
from seatbelt_tf.data import dsprites  # noqa: E402
from side_by_side import alternate, swapped  # noqa: E402

GRAPH = tf.function(dsprites.render_sprites)
COMPILED = dsprites._compiled_render  # pylint: disable=protected-access


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch_sizes", default="64,256,2048")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--batches", type=int, default=20, help="batches per round and renderer")
  parser.add_argument("--check_grid", action="store_true")
  args = parser.parse_args()
  source = data.ProceduralDSprites()
  renderers = {"graph (op by op)": GRAPH, "XLA": COMPILED}
  rng = np.random.default_rng(0)

  print(f"\nTable 1: rendering alone, images/s (median of {args.rounds} rounds of {args.batches} batches)")
  print("| batch | graph (op by op) | XLA | XLA / graph |")
  print("|---|---|---|---|")
  for b in (int(v) for v in args.batch_sizes.split(",")):
    idx = tf.constant(rng.integers(0, source.num_examples, b))
    fns = {}
    for name, renderer in renderers.items():
      with swapped(dsprites, "_compiled_render", renderer):
        fn = tf.function(source.tf_images)
        fn.get_concrete_function(idx)
      fns[name] = lambda fn=fn: fn(idx).numpy()
    t = alternate(fns, args.rounds, args.batches)
    graph, xla = b / t["graph (op by op)"], b / t["XLA"]
    print(f"| {b} | {graph:.0f} | {xla:.0f} | **{xla / graph:.1f}x** |", flush=True)

  print("\nTable 2: the training pipeline (data.train_dataset), images/s")
  print("| batch | graph (op by op) | XLA | XLA / graph |")
  print("|---|---|---|---|")
  for b in (int(v) for v in args.batch_sizes.split(",")):
    fns = {}
    for name, renderer in renderers.items():
      with swapped(dsprites, "_compiled_render", renderer):
        iterator = iter(data.train_dataset(source, b, 10000, seed=0))
      fns[name] = lambda it=iterator: next(it).numpy()
    t = alternate(fns, args.rounds, args.batches)
    graph, xla = b / t["graph (op by op)"], b / t["XLA"]
    print(f"| {b} | {graph:.0f} | {xla:.0f} | **{xla / graph:.1f}x** |", flush=True)

  if args.check_grid:
    differing = 0
    with swapped(dsprites, "_compiled_render", GRAPH):
      graph_images = tf.function(source.tf_images)
    for start in range(0, source.num_examples, 8192):
      idx = tf.range(start, min(start + 8192, source.num_examples))
      differing += int(tf.reduce_sum(tf.cast(source.tf_images(idx) != graph_images(idx), tf.int32)))
    print(f"\nWhole grid ({source.num_examples} images): {differing} pixels differ between the renderers")


if __name__ == "__main__":
  main()
