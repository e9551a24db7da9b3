"""The MLP pair's largest matrix products under XLA, with each of the `XLA_FLAGS` that TensorFlow 2.21's XLA:CPU
knows for routing dots to oneDNN or XNNPACK, and in plain graph mode (oneDNN) for reference: GFLOP/s per product.

The launcher trains the MLP pair under XLA (`--jit_compile=auto`), and the campaign's training step at batch 2048
is bound by these products (docs/BENCHMARKS.md, "The test suite's workers, and XLA's CPU dot flags"). Products:
the first layer's forward `[B, 4096] x [4096, 1200]` and its weight gradient `[B, 4096]^T x [B, 1200]`. Each
setting runs in its own process (XLA reads its flags once, at start); a flag TensorFlow does not know ends its
process, and its row says so.

Usage: python benchmarks/xla_dot_flags.py [--batch=2048] [--calls=10] [--rounds=2]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

SETTINGS = (
    ("graph mode (oneDNN), no XLA", None),
    ("XLA", ""),
    ("XLA", "--xla_cpu_use_onednn=true"),
    ("XLA", "--xla_cpu_experimental_onednn_custom_call=true"),
    ("XLA", "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true"),
    ("XLA", "--xla_cpu_use_xnnpack=true"),
    ("XLA", "--xla_cpu_experimental_xnn_fusion_type=dot"),
)

_CHILD = r"""
import json, sys, time
import tensorflow as tf
batch, calls, jit = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
x = tf.random.normal([batch, 4096]); w = tf.random.normal([4096, 1200]); g = tf.random.normal([batch, 1200])
forward = tf.function(lambda a, b: tf.matmul(a, b), jit_compile=jit, autograph=False)
gradient = tf.function(lambda a, b: tf.matmul(a, b, transpose_a=True), jit_compile=jit, autograph=False)
flops = 2.0 * batch * 4096 * 1200
out = {}
for name, fn, args in (("forward", forward, (x, w)), ("weight_gradient", gradient, (x, g))):
  fn(*args).numpy()
  times = []
  for _ in range(calls):
    start = time.perf_counter(); fn(*args).numpy(); times.append(time.perf_counter() - start)
  times.sort()
  out[name] = flops / times[len(times) // 2] / 1e9
print("RESULT " + json.dumps(out))
"""


def measure(flags, batch, calls):
  """{"forward": GFLOP/s, "weight_gradient": GFLOP/s} of one process, or the error's last line."""
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
  if flags is not None:
    env["XLA_FLAGS"] = flags
  done = subprocess.run([sys.executable, "-c", _CHILD, str(batch), str(calls), "0" if flags is None else "1"],
                        env=env, capture_output=True, text=True, check=False)
  for line in done.stdout.splitlines():
    if line.startswith("RESULT "):
      return json.loads(line[len("RESULT "):])
  return (done.stderr.strip().splitlines() or ["no output"])[-1][:120]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=2048)
  parser.add_argument("--calls", type=int, default=10, help="timed calls per product (the median is kept)")
  parser.add_argument("--rounds", type=int, default=2, help="passes over the settings (they take turns)")
  args = parser.parse_args()
  results = {i: [] for i in range(len(SETTINGS))}
  for _ in range(args.rounds):
    for i, (_, flags) in enumerate(SETTINGS):
      results[i].append(measure(flags, args.batch, args.calls))
  print(f"batch {args.batch}; GFLOP/s, median of {args.calls} calls, then of {args.rounds} rounds\n")
  print("| mode | `XLA_FLAGS` | forward GFLOP/s | weight gradient GFLOP/s |")
  print("|---|---|---|---|")
  for i, (mode, flags) in enumerate(SETTINGS):
    runs = [r for r in results[i] if isinstance(r, dict)]
    name = "—" if flags is None else f"`{flags}`" if flags else "(none)"
    if not runs:
      print(f"| {mode} | {name} | failed: {results[i][0]} | |")
      continue
    cells = [statistics.median(r[k] for r in runs) for k in ("forward", "weight_gradient")]
    print(f"| {mode} | {name} | {cells[0]:.0f} | {cells[1]:.0f} |")


if __name__ == "__main__":
  main()
