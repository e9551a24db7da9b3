"""Plots the budget study's learning curves (issue 26, launch/learning_curve.sh): held-out ELBO and histogram MIG of
z^L against images seen (in epochs of the training split), one line per curve file, and writes a markdown table of
every point.

  python launch/plot_curves.py docs/reproduction/curves
    -> docs/reproduction/curves/learning_curves.png and learning_curves.md (atomically replaced)

A curve file is `<name>.curve.jsonl`, one JSON object per evaluated step (step, images_seen, epochs, elbo, kl, tc,
mig_histogram, mig_per_factor), as learning_curve.sh appends them; a partial last line (a killed write) is skipped.
"""

import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from seatbelt_tf import io_utils, plotting  # noqa: E402


def read_curve(path):
  """The points of one curve file, sorted by step, one per step (the last line written wins)."""
  points = {}
  with open(path) as f:
    for line in f:
      try:
        point = json.loads(line)
      except json.JSONDecodeError:
        continue
      points[point["step"]] = point
  return [points[s] for s in sorted(points)]


def main(folder):
  curves = {os.path.basename(p)[:-len(".curve.jsonl")]: read_curve(p)
            for p in sorted(glob.glob(os.path.join(folder, "*.curve.jsonl")))}
  curves = {name: points for name, points in curves.items() if points}
  if not curves:
    raise SystemExit(f"No *.curve.jsonl with points in {folder}: run launch/learning_curve.sh first.")
  plt = plotting.pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for name, points in curves.items():
    epochs = [p["epochs"] for p in points]
    axes[0].plot(epochs, [p["elbo"] for p in points], marker="o", label=name)
    axes[1].plot(epochs, [p["mig_histogram"] for p in points], marker="o", label=name)
  axes[0].set(xlabel="epochs of the training split", ylabel="held-out ELBO (nats)", title="ELBO")
  axes[1].set(xlabel="epochs of the training split", ylabel="MIG of z^L (histogram protocol)", title="MIG")
  axes[1].axhline(0.25, color="grey", linestyle=":", label="issue 26's target at beta 4, 8 (0.25)")
  for ax in axes:
    ax.grid(alpha=0.3)
  axes[1].legend(fontsize=7)
  fig.tight_layout()
  png = os.path.join(folder, "learning_curves.png")
  plotting.save(fig, png)
  plt.close(fig)
  factors = ("posX", "posY", "scale", "shape", "orientation")
  lines = ["| curve | step | epochs | images seen | held-out ELBO | KL | MIG (histogram) | "
           + " | ".join(f"MIG {f}" for f in factors) + " |", "|---" * (7 + len(factors)) + "|"]
  for name, points in curves.items():
    for p in points:
      per = p.get("mig_per_factor") or {}
      lines.append(f"| {name} | {p['step']} | {p['epochs']:.2f} | {p['images_seen']:,} | {p['elbo']:.1f} | "
                   f"{p['kl']:.1f} | {p['mig_histogram']:.3f} | "
                   + " | ".join(f"{per[f]:.3f}" if f in per else "" for f in factors) + " |")
  io_utils.atomic_write_text(os.path.join(folder, "learning_curves.md"), "\n".join(lines) + "\n")
  print(f"wrote {png} and learning_curves.md ({sum(map(len, curves.values()))} points, {len(curves)} curves)")


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "docs/reproduction/curves")
