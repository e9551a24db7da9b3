"""SavedModel export of a trained VAE for TF Serving, and the attack callables of a reloaded export.

`export_model` writes `<export_dir>/<model_name>/<version>/` (TF Serving's layout: integer versions, the highest
served) with these signatures, every one a graph of core TF ops (no Python functions), inputs float32:

* `serving_default`: `images` `[batch, H, W, C]` -> `representation` (the posterior mean of the top layer z^L) and
  `representation_scale` (its standard deviation), `[batch, d_L]`.
* `encode`: `images` -> `loc_1`, `scale_1`, ..., `loc_L`, `scale_L`: every layer's posterior parameters, the
  inference chain evaluated at the posterior means (q(z^1|x), q(z^2|E[z^1]), ..., paper eq. 7), bottom first.
* `decode`: `z_1`, ..., `z_L` `[batch, d_i]` -> `reconstruction_params` `[batch, H, W, C]`: the parameters of
  p(x|z) (Bernoulli logits or Gaussian means; the model card names the likelihood). Single-layer models and the
  beta-TC DLGM read z_1 only, the Seatbelt-VAE every layer (eq. 8).
* `reconstruct`: `images` -> `reconstruction`, the mean of p(x|z) with every layer at its posterior mean.
* `attack_terms`: `images`, `targets`, `noise_1`, ..., `noise_L` -> `reconstruction` (log p(targets|z~), z~ drawn
  from q(z|images) by the standard-normal noise) and `kl` (the KL terms of the true ELBO, without beta): what the
  output attack (eq. 12) needs, so that attacks run on an export exactly as on the live model.
* `generate`: `z_top` `[batch, d_L]`, `noise_1`, ..., `noise_{L-1}` -> `images`: decoder means of an ancestral
  pass down the generative chain (eq. 6) from z^L, the layers below sampled from p(z^i|z^{i+1}) by the
  standard-normal noise (zeros: their conditional means). Samples (z^L ~ N(0, I)) and latent traversals.
* `log_joint`: `images`, `z_1`, ..., `z_L` -> `log_likelihood` log p(images|z) and `log_prior` log p(z) (the
  generative chain, eq. 6), `[batch]` each: the target of the inference-time HMC defence (`attacks.defence`).

Image inputs are checked inside the graph: rank 4, spatial size and channels as trained, finite values inside the
data range; a violation raises `InvalidArgumentError` whose message says what was expected (the signature takes
any shape so that these checks, not a generic shape error, answer). A wrong dtype is refused by the signature.
Beside `saved_model.pb`, `model_card.json` records the model family, beta, L, layer sizes, image shape, data
range, likelihood, the training metrics and the code version.

The export is written to a temporary directory beside its destination and renamed into place, so a crash leaves
no partial version directory, and an existing version is never overwritten.
"""

import errno
import json
import os
import shutil
import subprocess
import tempfile

import numpy as np
from google.protobuf import message as protobuf_message
import tensorflow as tf

import seatbelt_tf
from seatbelt_tf import io_utils

CARD_NAME = "model_card.json"
SIGNATURES = ("serving_default", "encode", "decode", "reconstruct", "attack_terms", "generate", "log_joint")


def _check_images(images, image_shape, data_range, name="images"):
  """In-graph validation of an image batch; returns it (with the checks as control dependencies)."""
  height, width, channels = image_shape
  lo, hi = data_range
  expected = f"float32 [batch, {height}, {width}, {channels}] with values in [{lo:g}, {hi:g}]"
  shape = tf.shape(images)
  rank_ok = tf.equal(tf.size(shape), 4)
  padded = tf.concat([shape, tf.zeros([4], tf.int32)], 0)[:4]  # safe to slice whatever the rank
  shape_ok = tf.logical_and(rank_ok, tf.reduce_all(tf.equal(padded[1:], [height, width, channels])))
  checks = [tf.debugging.Assert(shape_ok, [f"{name} must be {expected}; got shape", shape], summarize=8,
                                name="check_shape")]
  with tf.control_dependencies(checks):
    finite = tf.reduce_all(tf.math.is_finite(images))
    checks.append(tf.debugging.Assert(finite, [f"{name} must be {expected}; got NaN or Inf"], name="check_finite"))
    low, high = tf.reduce_min(images), tf.reduce_max(images)
    checks.append(tf.debugging.Assert(
        tf.logical_and(low >= lo, high <= hi),
        [f"{name} must be {expected}; got values from", low, "to", high], name="check_range"))
  with tf.control_dependencies(checks):  # the checks run first; then the static shape the networks need
    return tf.ensure_shape(tf.identity(images), [None, height, width, channels])


class ServingModule(tf.Module):
  """The signatures of an export (module docstring), as `tf.function`s over a built model's variables."""

  def __init__(self, model, data_range):
    super().__init__()
    self.model = model
    # Every variable explicitly in the object graph (as keras.export.ExportArchive does): the graph-mode loaders
    # (saved_model_cli run, TF Serving) restore variables through it, and Keras 3 layers keep some out of reach.
    self.variables_list = [v.value for v in model.variables]  # the tf.Variables under the keras.Variables
    self.image_shape = tuple(int(d) for d in model.image_shape)
    self.data_range = tuple(float(v) for v in data_range)
    self.layer_sizes = tuple(int(d) for d in model.layer_sizes)
    any_images = tf.TensorSpec(None, tf.float32, name="images")
    self.serving_default = tf.function(self._serving_default, input_signature=[any_images], autograph=False)
    self.encode = tf.function(self._encode, input_signature=[any_images], autograph=False)
    self.reconstruct = tf.function(self._reconstruct, input_signature=[any_images], autograph=False)
    z_specs = [tf.TensorSpec([None, d], tf.float32, name=f"z_{i + 1}") for i, d in enumerate(self.layer_sizes)]
    self.decode = tf.function(self._decode, input_signature=z_specs, autograph=False)
    noise_specs = [tf.TensorSpec([None, d], tf.float32, name=f"noise_{i + 1}")
                   for i, d in enumerate(self.layer_sizes)]
    self.attack_terms = tf.function(
        self._attack_terms, input_signature=[any_images, tf.TensorSpec(None, tf.float32, name="targets")]
        + noise_specs, autograph=False)
    self.generate = tf.function(
        self._generate, input_signature=[tf.TensorSpec([None, self.layer_sizes[-1]], tf.float32, name="z_top")]
        + noise_specs[:-1], autograph=False)
    self.log_joint = tf.function(self._log_joint, input_signature=[any_images] + z_specs, autograph=False)

  def _images(self, images, name="images"):
    return _check_images(images, self.image_shape, self.data_range, name)

  def _serving_default(self, images):
    loc, scale = self.model.posterior_layers(self._images(images), training=False)[-1]
    return {"representation": loc, "representation_scale": scale}

  def _encode(self, images):
    out = {}
    for i, (loc, scale) in enumerate(self.model.posterior_layers(self._images(images), training=False)):
      out[f"loc_{i + 1}"], out[f"scale_{i + 1}"] = loc, scale
    return out

  def _decode(self, *z):
    return {"reconstruction_params": decode_layers(self.model, list(z))}

  def _reconstruct(self, images):
    return {"reconstruction": self.model(self._images(images), training=False)}

  def _attack_terms(self, images, targets, *noise):
    terms = self.model.attack_terms(self._images(images), self._images(targets, "targets"), list(noise))
    return {"reconstruction": terms["reconstruction"], "kl": terms["kl"]}

  def _generate(self, z_top, *noise):
    return {"images": self.model.generate(z_top, list(noise) if noise else None)}

  def _log_joint(self, images, *z):
    log_likelihood, log_prior = self.model.log_joint(self._images(images), list(z))
    return {"log_likelihood": log_likelihood, "log_prior": log_prior}

  def signatures(self):
    return {name: getattr(self, name).get_concrete_function() for name in SIGNATURES}


def decode_layers(model, z):
  """p(x|z) parameters from one tensor per layer: the model's own decoder input (z^1, or every layer)."""
  decoder_input = getattr(model, "decoder_input", None)
  return model.decode(decoder_input(z) if decoder_input else z[0], training=False)


def model_card(model, data_range, config=None, metrics=None, step=None):
  """The model card: what a consumer of the export needs to know (module docstring)."""
  card = {
      "format": "seatbelt_tf SavedModel export",
      "model": type(model).__name__,
      "layers": len(model.layer_sizes),
      "layer_sizes": [int(d) for d in model.layer_sizes],
      "beta": float(model.beta),
      "image_shape": [int(d) for d in model.image_shape],
      "data_range": [float(v) for v in data_range],
      "likelihood": model.likelihood,
      "reconstruction_params": "Bernoulli logits" if model.likelihood == "bernoulli" else "Gaussian means",
      "signatures": list(SIGNATURES),
      "code_version": code_version(),
  }
  if config is not None:
    card["config"] = config.flat()
    card["model_family"] = config.model.model
  if metrics is not None:
    card["training_metrics"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
  if step is not None:
    card["step"] = int(step)
  return card


def code_version():
  """seatbelt_tf's version, plus the git commit when the package runs from a checkout."""
  version = seatbelt_tf.__version__
  try:
    here = os.path.dirname(os.path.abspath(__file__))
    commit = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            timeout=5, check=True).stdout.strip()
    return f"{version}+g{commit}" if commit else version
  except (OSError, subprocess.SubprocessError):
    return version


def next_version(model_dir):
  """1 + the highest integer version under `model_dir` (1 when there is none)."""
  versions = [int(n) for n in os.listdir(model_dir) if n.isdigit()] if os.path.isdir(model_dir) else []
  return max(versions, default=0) + 1


TMP_PREFIX = ".export-"


def remove_stale_exports(model_dir):
  """Deletes the temporary folders of exports whose process is gone (killed mid-export); returns their paths."""
  removed = []
  for name in os.listdir(model_dir) if os.path.isdir(model_dir) else []:
    pid = name[len(TMP_PREFIX):].split("-", 1)[0]
    if not name.startswith(TMP_PREFIX) or not pid.isdigit() or _process_alive(int(pid)):
      continue
    shutil.rmtree(os.path.join(model_dir, name), ignore_errors=True)
    removed.append(os.path.join(model_dir, name))
  return removed


def _process_alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's process
    return True
  return True


def export_model(model, data_range, export_dir, model_name, card=None):
  """Writes a new version `<export_dir>/<model_name>/<version>/` atomically and returns its path.

  Args:
    model: a built seatbelt_tf model (weights restored).
    data_range: (lo, hi) of the data it was trained on.
    export_dir: the TF Serving model base folder.
    model_name: the model's folder under it (TF Serving's model name).
    card: the model card (default: `model_card(model, data_range)`).
  """
  if not model_name or os.sep in model_name or model_name.startswith("."):
    raise ValueError(f"model_name={model_name!r} must be a plain folder name, e.g. seatbelt.")
  model_dir = os.path.join(export_dir, model_name)
  os.makedirs(model_dir, exist_ok=True)
  module = ServingModule(model, data_range)
  card = card if card is not None else model_card(model, data_range)
  remove_stale_exports(model_dir)
  # Hidden (TF Serving ignores non-integer names) and named by this process, so a later export can tell a folder
  # left by a killed exporter from one still being written.
  tmp = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=model_dir)
  try:
    io_utils.public_mode(tmp, folder=True)  # (mkdtemp makes it 0700: TF Serving may run as another user)
    tf.saved_model.save(module, tmp, signatures=module.signatures())
    with open(os.path.join(tmp, CARD_NAME), "w") as f:
      json.dump({**card, "signatures": list(SIGNATURES)}, f, indent=2, sort_keys=True)
      f.write("\n")
    while True:  # rename never replaces a non-empty directory: if another exporter took the number, take the next
      path = os.path.join(model_dir, str(next_version(model_dir)))
      try:
        os.rename(tmp, path)
      except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
          continue
        raise
      io_utils.fsync_folder(model_dir)  # the rename itself survives a crash
      return path
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)


class SavedModelFns:
  """The attack callables (`attacks.ModelFns`' contract) of an export, reloaded with `tf.saved_model.load`.

  `encode_fn`, `terms_fn`, `elbo_fn` and `recon_fn` call the export's signatures, so an attack on a served model
  needs no training code; `card` is its model card and `data_range` the box of its inputs.
  """

  def __init__(self, path):
    if not tf.saved_model.contains_saved_model(path):
      raise ValueError(f"{path} is not a SavedModel directory (no saved_model.pb): pass --saved_model=<export "
                       "dir>/<model name>/<version>, e.g. one written by --mode=export.")
    card_path = os.path.join(path, CARD_NAME)
    if not os.path.isfile(card_path):
      raise ValueError(f"{path} has no {CARD_NAME}: it was not written by seatbelt_tf's --mode=export.")
    try:
      with open(card_path) as f:
        self.card = json.load(f)
      self.loaded = tf.saved_model.load(path)
    # A truncated card or graph (protobuf's DecodeError is not an OSError), missing variables, ...
    except (ValueError, OSError, tf.errors.OpError, protobuf_message.DecodeError) as e:
      raise ValueError(f"{path} looks like an export but cannot be loaded ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:300]}); export the model again (--mode=export).") from None
    self.path = path
    self.layer_sizes = tuple(self.card["layer_sizes"])
    self.data_range = tuple(self.card["data_range"])
    self.image_shape = tuple(self.card["image_shape"])
    sig = self.loaded.signatures
    self.encode_fn = lambda x: _pairs(sig["encode"](images=tf.cast(x, tf.float32)), len(self.layer_sizes))
    self.recon_fn = lambda x: sig["reconstruct"](images=tf.cast(x, tf.float32))["reconstruction"]

  def generate_fn(self, z_top, noise=None):
    """Decoder means from top-layer codes (`model.generate`); noise: L - 1 `[B, d_i]` tensors, None = zeros."""
    z_top = tf.cast(z_top, tf.float32)
    batch = tf.shape(z_top)[0]
    if noise is None:
      noise = [tf.zeros([batch, d]) for d in self.layer_sizes[:-1]]
    kwargs = {f"noise_{i + 1}": tf.cast(e, tf.float32) for i, e in enumerate(noise)}
    if "generate" not in self.loaded.signatures:
      raise ValueError(f"{self.path} has no 'generate' signature (exported by an older seatbelt_tf): export the "
                       "checkpoint again to get samples and traversals from it.")
    return self.loaded.signatures["generate"](z_top=z_top, **kwargs)["images"]

  def log_joint_fn(self, x, z):
    """(log p(x|z) `[B]`, log p(z) `[B]`) from the `log_joint` signature; z: one `[B, d_i]` tensor per layer."""
    if "log_joint" not in self.loaded.signatures:
      raise ValueError(f"{self.path} has no 'log_joint' signature (exported by an older seatbelt_tf): export the "
                       "checkpoint again to run the HMC defence (--defence=hmc) on it.")
    kwargs = {f"z_{i + 1}": tf.cast(v, tf.float32) for i, v in enumerate(z)}
    out = self.loaded.signatures["log_joint"](images=tf.cast(x, tf.float32), **kwargs)
    return out["log_likelihood"], out["log_prior"]

  def terms_fn(self, x_input, x_target, noise):
    kwargs = {f"noise_{i + 1}": tf.cast(e, tf.float32) for i, e in enumerate(noise)}
    out = self.loaded.signatures["attack_terms"](images=tf.cast(x_input, tf.float32),
                                                 targets=tf.cast(x_target, tf.float32), **kwargs)
    return {"reconstruction": out["reconstruction"], "kl": out["kl"]}

  def elbo_fn(self, x_input, x_target, noise):
    terms = self.terms_fn(x_input, x_target, noise)
    return terms["reconstruction"] - terms["kl"]


def _pairs(outputs, num_layers):
  return [(outputs[f"loc_{i + 1}"], outputs[f"scale_{i + 1}"]) for i in range(num_layers)]


def to_instances(images):
  """A TF Serving REST `predict` body in row format: {"instances": [{"images": [[...]]}, ...]} as JSON text."""
  return json.dumps({"signature_name": "serving_default",
                     "instances": [{"images": np.asarray(im, np.float32).tolist()} for im in images]})
