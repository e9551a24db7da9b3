"""Atomic file writes: write a temporary file beside the target, flush it to disk, rename it, then flush the
folder, so a crash leaves the old file or the whole new one. Files and folders get the permissions an ordinary
write would (0644 / 0755 under the usual umask 022), not `tempfile`'s private 0600 / 0700, so a TF Serving
container or a reader running as another user can read exports and reports."""

import json
import os
import tempfile


def current_umask():
  """The process's umask (read by setting and restoring it)."""
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def public_mode(path, folder=False):
  """Gives `path` the mode an ordinary open()/mkdir() would: 0666 (files) or 0777 (folders) less the umask."""
  os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


def fsync_folder(path):
  """Flushes the folder `path` (its entries: a rename into it) to disk, where the platform allows it."""
  try:
    fd = os.open(path, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:  # some filesystems refuse fsync on a folder
    pass
  finally:
    os.close(fd)


def temporary_file(path, suffix=".tmp"):
  """A new hidden file beside `path`, closed, with ordinary permissions; returns its path."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=suffix, dir=directory)
  os.close(fd)
  public_mode(tmp)
  return tmp


def replace(tmp, path):
  """Renames the finished temporary `tmp` over `path` and flushes the folder, so the rename survives a crash."""
  os.replace(tmp, path)
  fsync_folder(os.path.dirname(os.path.abspath(path)))


def _atomic_write(path, write, mode):
  tmp = temporary_file(path)
  try:
    with open(tmp, mode) as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    replace(tmp, path)
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
