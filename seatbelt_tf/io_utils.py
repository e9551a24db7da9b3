"""Atomic file writes: write a temporary file beside the target, flush it to disk, then rename."""

import json
import os
import tempfile


def _atomic_write(path, write, mode):
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
  try:
    with os.fdopen(fd, mode) as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def atomic_write_text(path, text):
  """Writes `text` to `path` so that readers see either the old file or the whole new one."""
  _atomic_write(path, lambda f: f.write(text), "w")


def atomic_save_npz(path, **arrays):
  """`np.savez_compressed` to `path`, atomically."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  _atomic_write(path, lambda f: np.savez_compressed(f, **arrays), "wb")


def atomic_copy(source, path):
  """Copies the file `source` to `path`, atomically."""
  import shutil  # pylint: disable=g-import-not-at-top
  with open(source, "rb") as src:
    _atomic_write(path, lambda f: shutil.copyfileobj(src, f), "wb")


def atomic_write_json(path, obj):
  atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
