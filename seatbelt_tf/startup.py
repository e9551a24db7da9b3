"""Imports TensorFlow without its known-benign start-up lines on stderr.

Importing TensorFlow and initialising its devices prints 6-7 lines from C++ logging twice, before any Python
logging setting can act (TF_CPP_MIN_LOG_LEVEL does not silence them all): a notice about absl's log set-up, oneDNN's
numerics notice, "Could not find cuda drivers", a CPU-instructions notice, and, on a machine without a GPU,
`E0000 ... failed call to cuInit: ... UNKNOWN ERROR (303)`, which reads like a failure. `import_tensorflow_quietly`
captures file descriptor 2 while TensorFlow loads and lists its devices, then writes back every line that is not
one of those (`BENIGN`); the cuInit error is dropped only when the machine has no NVIDIA device (no /dev/nvidia0),
so on a GPU machine it still shows.
"""

import os
import re
import sys
import tempfile

# Lines TensorFlow prints at start-up on every machine, harmless (matched anywhere in the line).
BENIGN = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "Could not find cuda drivers on your machine",
    "cpu_feature_guard.cc",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
)
CUINIT = re.compile(r"failed call to cuInit")


def has_nvidia_device():
  return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl")


def benign(line, gpu_machine=None):
  """Whether `line` is a known-harmless TensorFlow start-up line (see the module docstring)."""
  gpu_machine = has_nvidia_device() if gpu_machine is None else gpu_machine
  if any(pattern in line for pattern in BENIGN):
    return True
  return bool(CUINIT.search(line)) and not gpu_machine


def import_tensorflow_quietly():
  """Imports TensorFlow and lists its devices (which initialises CUDA where present) with stderr captured, then
  writes back the lines that are not `benign`. Returns the tensorflow module."""
  if "tensorflow" in sys.modules:  # already loaded: its start-up lines are out already
    return sys.modules["tensorflow"]
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode="w+b") as capture:
    os.dup2(capture.fileno(), 2)
    try:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      tf.config.list_physical_devices()
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      capture.seek(0)
      text = capture.read().decode("utf-8", errors="replace")
      kept = [line for line in text.splitlines() if line.strip() and not benign(line)]
      if kept:
        sys.stderr.write("\n".join(kept) + "\n")
        sys.stderr.flush()
  return tf
