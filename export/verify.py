"""Checks an export with TensorFlow's own tools: `saved_model_cli show --all` must list every signature, and
`saved_model_cli run` on procedural dSprites images (a .npy input: `--input_exprs` cannot parse numpy calls in
TF 2.21) must give the representation that `tf.saved_model.load` gives.

  python export/verify.py runs/seatbelt/export/seatbelt/1
"""

import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

CLI = [sys.executable, "-c", "import sys; from tensorflow.python.tools import saved_model_cli as c; "
       "sys.argv[0] = 'saved_model_cli'; c.main()"]


def main(path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from seatbelt_tf import serving  # pylint: disable=g-import-not-at-top
  card = json.load(open(os.path.join(path, serving.CARD_NAME)))
  shown = subprocess.run(CLI + ["show", "--dir", path, "--all"], capture_output=True, text=True)
  if shown.returncode:
    sys.exit(f"saved_model_cli show failed:\n{shown.stderr[-3000:]}")
  missing = [s for s in serving.SIGNATURES if f"signature_def['{s}']" not in shown.stdout]
  if missing:
    sys.exit(f"signatures missing from {path}: {', '.join(missing)}")
  print(f"show: signatures {', '.join(serving.SIGNATURES)} present")
  lo, hi = card["data_range"]
  images = np.random.default_rng(0).uniform(lo, hi, size=[3] + card["image_shape"]).astype(np.float32)
  with tempfile.TemporaryDirectory() as tmp:
    np.save(os.path.join(tmp, "images.npy"), images)
    run = subprocess.run(CLI + ["run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default",
                                "--inputs", f"images={os.path.join(tmp, 'images.npy')}", "--outdir", tmp],
                         capture_output=True, text=True)
    if run.returncode:
      sys.exit(f"saved_model_cli run failed:\n{run.stderr[-3000:]}")
    cli = np.load(os.path.join(tmp, "representation.npy"))
  loaded = tf.saved_model.load(path).signatures["serving_default"](images=tf.constant(images))["representation"]
  diff = float(np.abs(cli - loaded.numpy()).max())
  print(f"run: representation {cli.shape}, max |saved_model_cli - tf.saved_model.load| = {diff:.2e}")
  if diff > 1e-5:
    sys.exit("the two loaders disagree")
  print("OK")


if __name__ == "__main__":
  if len(sys.argv) != 2:
    sys.exit(__doc__)
  main(sys.argv[1])
