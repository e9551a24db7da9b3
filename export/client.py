"""Sends images to a running TF Serving's REST `predict` API (row format) and prints their representations.

  python export/client.py --url=http://localhost:8501/v1/models/seatbelt:predict [--images=x.npy] [--count=4]

Without --images it sends `--count` procedural dSprites images. The body is {"signature_name": ...,
"instances": [{"images": <H x W x C nested list>}, ...]}; the reply {"predictions": [{"representation": [...],
"representation_scale": [...]}, ...]} is printed one row per image.
"""

import argparse
import json
import os
import sys
import urllib.request

import numpy as np


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--url", default="http://localhost:8501/v1/models/seatbelt:predict")
  parser.add_argument("--images", help=".npy float32 array [n, H, W, C] in the model's data range")
  parser.add_argument("--count", type=int, default=4)
  parser.add_argument("--signature", default="serving_default")
  args = parser.parse_args()
  if args.images:
    images = np.load(args.images).astype(np.float32)
  else:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from seatbelt_tf import data  # pylint: disable=g-import-not-at-top
    idx = np.random.default_rng(0).choice(737280, args.count, replace=False)
    images = data.ProceduralDSprites().images(idx).astype(np.float32)
  body = json.dumps({"signature_name": args.signature,
                     "instances": [{"images": image.tolist()} for image in images]}).encode()
  request = urllib.request.Request(args.url, data=body, headers={"Content-Type": "application/json"})
  try:
    with urllib.request.urlopen(request, timeout=60) as response:
      reply = json.load(response)
  except OSError as e:
    sys.exit(f"error: no answer from {args.url} ({e}). Is TF Serving running? See README, 'Serving'.")
  for i, row in enumerate(reply["predictions"]):
    shown = {k: np.round(np.asarray(v), 4).tolist() for k, v in row.items()} if isinstance(row, dict) else row
    print(i, json.dumps(shown))


if __name__ == "__main__":
  main()
