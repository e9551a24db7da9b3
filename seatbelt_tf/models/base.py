"""The base class of every model: stochastic layers as TFP distributions, and the one train/test loop.

Subclasses override a single hook, `loss_terms(x, training) -> dict`, which returns the scalar `loss` to minimise
and the batch means of the tracked quantities. `train_step` and `test_step` (run by Keras under `tf.function`)
differentiate the loss and update one `keras.metrics.Mean` per name in `tracker_names`; the trackers are exposed
through `metrics`, so Keras resets them each epoch and logs them under their own names (a model compiled without
a Keras loss would otherwise report its own, always-zero `loss` tracker). They are traced without autograph
(a cold launcher run starts ~20% faster, docs/BENCHMARKS.md "Cold start"): a hook that branches or loops on a
tensor's value must say so with `tf.cond` / `tf.while_loop` (a Python `if` on a tensor raises at trace time).

The single-layer machinery lives here too: the posterior q(z|x) = N(mu(x), diag sigma(x)^2) (paper Section 2), the
likelihood p(x|z) (Bernoulli logits for binary data, Gaussian means with a learned global scale for data in
[-1, 1]) and `single_layer_terms`, which computes every term of eqs. (2)-(4) for one batch.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from seatbelt_tf import distribute
from seatbelt_tf import health as health_lib
from seatbelt_tf import objectives
from seatbelt_tf.nn import build_networks

tfd = tfp.distributions

LIKELIHOODS = ("bernoulli", "gaussian")
MIN_SCALE = 1e-4  # floor on posterior standard deviations, keeps log q(z|x) finite


class BaseVAE(keras.Model):
  """Base VAE: owns `train_step`/`test_step`, the trackers, seeded sampling and the single-layer terms.

  Args:
    latent_dim: D, the number of latent units.
    network: encoder/decoder pair from `seatbelt_tf.nn.NETWORKS` ("conv", "mlp", "tiny_conv", "tiny_mlp").
    image_shape: (H, W, C) of the inputs.
    likelihood: "bernoulli" (data in {0, 1}) or "gaussian" (data in [-1, 1]).
    beta: the penalty weight (its meaning is the subclass's; beta = 1 is the plain ELBO).
    dataset_size: N, the number of training examples, used by the minibatch estimators of q(z).
    estimator: "mws" (paper eq. B.7) or "mss" (Chen et al. 2018).
    free_bits: nats per latent unit below which the KL is not penalised (Kingma et al. 2016); 0 disables.
    seed: int seed of the sampling noise (`keras.random.SeedGenerator`).
    beta_warmup_steps: over this many training steps the loss's beta rises linearly from 1 (the plain ELBO) to
      `beta` (`objectives.warmup_beta`, read from the optimizer's step counter, so a resumed run carries on where
      it stopped); 0 (the paper's setting) trains at `beta` from the first step. Evaluation always uses `beta`.
  """

  # mi, tc, dim_kl: the top layer's decomposition (eq. 3 / A.16) without the estimator's offset (offset-free, the
  # batch mixture's: `objectives.estimator_offsets`); *_raw: the estimator's own values, which the loss uses.
  tracker_names = ("loss", "elbo", "reconstruction", "kl", "mi", "tc", "dim_kl", "mi_raw", "tc_raw", "dim_kl_raw")

  def __init__(self, latent_dim, network="conv", image_shape=(64, 64, 1), likelihood="bernoulli", beta=1.0,
               dataset_size=737280, estimator="mws", free_bits=0.0, seed=0, beta_warmup_steps=0, **kwargs):
    super().__init__(**kwargs)
    if likelihood not in LIKELIHOODS:
      raise ValueError(f"Unknown likelihood {likelihood!r}: choose one of {', '.join(LIKELIHOODS)}.")
    if estimator not in objectives.ESTIMATORS:
      raise ValueError(f"Unknown estimator {estimator!r}: choose one of {', '.join(objectives.ESTIMATORS)}.")
    if (int(latent_dim) < 1 or float(beta) < 0 or float(free_bits) < 0 or int(dataset_size) < 2
        or int(beta_warmup_steps) < 0):
      raise ValueError(f"Need latent_dim >= 1, beta >= 0, free_bits >= 0, dataset_size >= 2 and "
                       f"beta_warmup_steps >= 0; got latent_dim={latent_dim}, beta={beta}, free_bits={free_bits}, "
                       f"dataset_size={dataset_size}, beta_warmup_steps={beta_warmup_steps}.")
    self.latent_dim = int(latent_dim)
    self.network = network
    self.image_shape = tuple(int(s) for s in image_shape)
    self.likelihood = likelihood
    self.beta = float(beta)
    self.dataset_size = int(dataset_size)
    self.estimator = estimator
    self.free_bits = float(free_bits)
    self.seed = int(seed)
    self.beta_warmup_steps = int(beta_warmup_steps)
    self.encoder, self.decoder = build_networks(network, 2 * self.latent_dim, self.image_shape[-1])
    self.seed_generator = keras.random.SeedGenerator(self.seed, name="sampling_seed")
    self._trackers = {name: keras.metrics.Mean(name=name) for name in self.tracker_names}
    # Training health (seatbelt_tf.health): epoch means of the gradient norms, and a per-step spike guard over
    # them and the per-layer KLs. Train steps only; evaluation logs the trackers above.
    self._grad_trackers = {name: keras.metrics.Mean(name=name) for name in self.grad_norm_names}
    self.health = health_lib.HealthMonitor(self.grad_norm_names + self.health_kl_names, name="health")
    # --on_nonfinite=skip (set by the trainer, not part of the config): a batch whose loss or gradients are not
    # finite changes no weight, optimizer slot or BatchNorm statistic, and is counted here.
    self.skip_nonfinite = False
    self._skipped = keras.metrics.Sum(name="skipped_batches")

  # ---------------------------------------------------------------- training health
  @property
  def gradient_group_names(self):
    """Names of the variable groups whose gradient norms are tracked: the encoder, then (hierarchies) the
    conditionals, then the decoder."""
    return ("encoder", "decoder")

  def gradient_groups(self):
    """dict group name (`gradient_group_names`) -> its trainable variables."""
    return {"encoder": self.encoder.trainable_variables, "decoder": self.decoder.trainable_variables}

  @property
  def grad_norm_names(self):
    """Tracker names of the gradient norms: `grad_norm` (global) and `grad_norm_<group>`."""
    return ("grad_norm",) + tuple(f"grad_norm_{g}" for g in self.gradient_group_names)

  @property
  def health_kl_names(self):
    """The KL trackers the spike guard watches: one per stochastic layer."""
    return ("kl",)

  def estimator_offsets(self):
    """The estimator's offsets of the top layer's mi, tc, dim_kl (`objectives.estimator_offsets`)."""
    return objectives.estimator_offsets(self.layer_sizes[-1], self.dataset_size, self.estimator)

  def _health_step(self, terms, gradients):
    """This step's gradient norms (dict by tracker name) after the spike guard has scored them and the
    per-layer KLs (`seatbelt_tf.health`)."""
    norms = health_lib.group_norms(gradients, self.trainable_variables, self.gradient_groups())
    # Replicated: each replica differentiates its loss / replicas; scaled back, the norms are those of the
    # replica's own batch-mean loss (the one-device scale, though not the all-reduced gradient's norm).
    replicas = tf.cast(distribute.num_replicas(), tf.float32)
    norms = {"grad_norm": norms["global"] * replicas,
             **{f"grad_norm_{g}": norms[g] * replicas for g in self.gradient_group_names}}
    values = [norms[n] for n in self.grad_norm_names] + [tf.cast(terms[n], tf.float32) for n in self.health_kl_names]
    self.health.update(tf.stack(values), self.optimizer.iterations + 1)
    return norms

  def build(self, input_shape=None):
    # One forward pass on a dummy image creates every variable of the networks (their sub-layers build lazily).
    self._create_network_variables(tf.zeros((1,) + self.image_shape, self.compute_dtype))
    if self.likelihood == "gaussian":
      self.likelihood_log_scale = self.add_weight(shape=(), initializer="zeros", name="likelihood_log_scale")
    self.built = True

  def _create_network_variables(self, x):
    loc, _ = self.encode(x)
    self.decode(loc)

  # ---------------------------------------------------------------- stochastic layers
  def next_seed(self):
    """A fresh int32 `[2]` stateless seed for TFP sampling (Keras seeds are int64)."""
    return tf.cast(self.seed_generator.next(), tf.int32)

  def encode(self, x, training=False):
    """q(z|x) parameters: `[B, H, W, C]` -> (loc `[B, D]`, scale `[B, D]`)."""
    return gaussian_params(self.encoder(x, training=training))

  def sample(self, loc, scale, noise=None):
    """One reparameterised draw from N(loc, diag scale^2): loc + scale * noise, the noise standard normal from
    the model's seed stream unless given (`[B, D]`, e.g. fixed noise that makes an attack objective deterministic)."""
    if noise is None:  # replicated: this replica's rows of the global batch's noise (seatbelt_tf.distribute)
      noise = distribute.global_standard_normal(tf.shape(loc), self.next_seed(), loc.dtype)
    return loc + scale * tf.cast(noise, loc.dtype)

  @property
  def layer_sizes(self):
    """Widths of the stochastic layers, bottom first (one layer here)."""
    return (self.latent_dim,)

  def posterior_layers(self, x, training=False):
    """[(loc `[B, D]`, scale `[B, D]`)] of q(z|x): one entry per stochastic layer (see `HierarchicalVAE`)."""
    return [self.encode(tf.cast(x, self.compute_dtype), training=training)]

  def attack_terms(self, x_input, x_target, noise):
    """The ELBO terms of `x_target` under the posterior of `x_input`, with fixed noise (output attack, eq. 12).

    Args:
      x_input: `[B, H, W, C]` (adversarial) inputs that set the posterior.
      x_target: `[B, H, W, C]` images whose likelihood is scored.
      noise: list of standard-normal `[B, d_i]` tensors, one per layer (`layer_sizes`).

    Returns:
      dict of `[B]` tensors: `reconstruction` log p(x_target|z~) with z~ drawn from q(z|x_input) by `noise`, and
      `kl` (every layer's KL term, summed); their difference is the true ELBO, without beta.
    """
    terms = self.single_layer_terms(x_input, training=False, noise=noise[0], target=x_target)
    return {"reconstruction": terms["reconstruction"], "kl": terms["kl"]}

  def attack_elbo(self, x_input, x_target, noise):
    """`[B]` reconstruction - kl of `attack_terms`."""
    terms = self.attack_terms(x_input, x_target, noise)
    return terms["reconstruction"] - terms["kl"]

  def log_joint(self, x, z):
    """log p(x|z) and log p(z), each `[B]`, at codes `z` (a list with one `[B, d_i]` tensor per layer, bottom
    first): what an inference-time defence samples from (`attacks.defence`, Kuzina et al. 2022). The prior is
    N(0, I) here; `HierarchicalVAE` adds the generative chain p(z^i|z^{i+1}) (eq. 6)."""
    z = [tf.cast(v, self.compute_dtype) for v in z]
    params = self.decode(z[0], training=False)
    return self.log_likelihood(tf.cast(x, self.compute_dtype), params), standard_normal_log_prob(z[-1])

  def posterior(self, x, training=False):
    """q(z|x) as a TFP distribution with event shape `[D]`."""
    loc, scale = self.encode(x, training=training)
    return tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)

  def decode(self, z, training=False):
    """p(x|z) parameters: `[B, D]` -> `[B, H, W, C]` logits (Bernoulli) or means (Gaussian)."""
    return self.decoder(z, training=training)

  def log_likelihood(self, x, params):
    """log p(x|z) `[B]` from decoder parameters `[B, H, W, C]`."""
    if self.likelihood == "bernoulli":
      return objectives.bernoulli_log_likelihood(x, params)
    return objectives.gaussian_log_likelihood(x, params, tf.exp(self.likelihood_log_scale))

  def mean_image(self, params):
    """The mean of p(x|z): sigmoid(logits) or the Gaussian means."""
    return tf.sigmoid(params) if self.likelihood == "bernoulli" else params

  def generate(self, z_top, noise=None):
    """Decoder means from a top-layer code through the generative chain (ancestral sampling, Appendix I).

    Args:
      z_top: `[B, d_L]` codes of the top layer (z ~ p(z) = N(0, I) for samples, a traversal for Appendix I.34).
      noise: optional list of L - 1 standard-normal `[B, d_i]` tensors (bottom first) that sample the layers below
        z^L from p(z^i|z^{i+1}); None puts them at their conditional means. Unused here (one layer).

    Returns:
      `[B, H, W, C]` means of p(x|z).
    """
    del noise
    return self.mean_image(self.decode(tf.cast(z_top, self.compute_dtype), training=False))

  def call(self, x, training=False):
    """Mean reconstruction of `x` through the posterior mean: `[B, H, W, C]` -> `[B, H, W, C]`."""
    loc, _ = self.encode(x, training=training)
    return self.mean_image(self.decode(loc, training=training))

  # ---------------------------------------------------------------- objective terms
  def single_layer_terms(self, x, training, noise=None, target=None):
    """Every term of the single-layer ELBO and its decomposition (paper eqs. 2-4) for one batch.

    Args:
      x: `[B, H, W, C]` images.
      training: whether BatchNorm uses batch statistics.
      noise: optional fixed standard-normal `[B, D]` noise of the sample (default: the model's seed stream).
      target: optional `[B, H, W, C]` images whose likelihood is scored instead of `x` (the output attack).

    Returns:
      dict with `[B]` tensors `reconstruction` (log p(x|z), one sample z ~ q(z|x)), `mi`, `tc`, `dim_kl`
      (minibatch estimates, `decompose_kl`), `kl` (analytic KL(q(z|x) || p(z))) and the `[B, D]` tensor
      `kl_units` (analytic KL per unit).
    """
    x = tf.cast(x, self.compute_dtype)
    target = x if target is None else tf.cast(target, self.compute_dtype)
    loc, scale = self.encode(x, training=training)
    z = self.sample(loc, scale, noise)
    reconstruction = self.log_likelihood(target, self.decode(z, training=training))
    kl_units = objectives.gaussian_kl(loc, scale)
    terms = objectives.decompose_kl(z, loc, scale, self.dataset_size, self.estimator,
                                    global_params=distribute.gather_components(loc, scale))
    return {"reconstruction": reconstruction, "kl": tf.reduce_sum(kl_units, axis=1), "kl_units": kl_units,
            "mi": terms["mi"], "tc": terms["tc"], "dim_kl": terms["dim_kl"]}

  def unit_kls(self, x):
    """Analytic per-unit KLs, one `[B, d_i]` tensor per stochastic layer (one here), for KL-activation plots."""
    return [self.single_layer_terms(x, training=False)["kl_units"]]

  def loss_terms(self, x, training):
    """The hook subclasses implement: dict with the scalar `loss` and a scalar per tracker name. Their loss
    weighs its penalty by `loss_beta(training)`, not `beta` itself."""
    raise NotImplementedError

  def loss_beta(self, training):
    """The beta of this batch's loss: `beta`, or while training under a warm-up (`beta_warmup_steps`) the
    schedule's value at the optimizer's step (`objectives.warmup_beta`; a float32 scalar tensor)."""
    if not training or not self.beta_warmup_steps or getattr(self, "optimizer", None) is None:
      return self.beta
    return objectives.warmup_beta(self.beta, self.optimizer.iterations, self.beta_warmup_steps)

  # ---------------------------------------------------------------- the loop
  @property
  def metrics(self):
    return (list(self._trackers.values()) + list(self._grad_trackers.values())
            + ([self._skipped] if self.skip_nonfinite else []))

  def _update_trackers(self, terms, batch_size, grad_norms=None):
    weight = tf.cast(batch_size, self.compute_dtype)  # examples, so a short last batch counts for less
    for name, tracker in self._trackers.items():
      tracker.update_state(terms[name], sample_weight=weight)
    results = {name: tracker.result() for name, tracker in self._trackers.items()}
    if grad_norms is not None:  # a train step (steps count equally: the norms are of the batch-mean loss)
      for name, tracker in self._grad_trackers.items():
        tracker.update_state(grad_norms[name])
      results.update({name: tracker.result() for name, tracker in self._grad_trackers.items()})
    if distribute.rank1_logs():  # tensorflow/tensorflow#72388 (seatbelt_tf.distribute.rank1_logs)
      results = {name: tf.reshape(value, [1]) for name, value in results.items()}
    return results

  @staticmethod
  def _images(data):
    return data[0] if isinstance(data, (tuple, list)) else data

  @tf.autograph.experimental.do_not_convert
  def train_step(self, data):
    x = self._images(data)
    # --on_nonfinite=skip: the statistics as they were before this step's forward pass moved them.
    before = [tf.identity(v) for v in self._statistics()] if self.skip_nonfinite else None
    with tf.GradientTape() as tape:
      terms = self.loss_terms(x, training=True)
      # Each replica's loss is the mean over its rows; the optimizer sums the replicas' gradients.
      loss = terms["loss"] / tf.cast(distribute.num_replicas(), terms["loss"].dtype)
    gradients = tape.gradient(loss, self.trainable_variables)
    grad_norms = self._health_step(terms, gradients)
    if not self.skip_nonfinite:
      self.optimizer.apply(gradients, self.trainable_variables)
      return self._update_trackers(terms, tf.shape(x)[0], grad_norms)
    return self._apply_if_finite(loss, gradients, terms, tf.shape(x)[0], before, grad_norms)

  def _statistics(self):
    """The float non-trainable variables: BatchNorm moving moments (not the integer sampling-seed state)."""
    return [v for v in self.non_trainable_variables if "float" in str(v.dtype)]

  def _apply_if_finite(self, loss, gradients, terms, batch_size, before, grad_norms):
    """--on_nonfinite=skip: applies the update only when the loss and every gradient are finite. A skipped batch
    still advances the step counter (so steps keep counting batches and a resume stays on the data stream), puts
    back every non-trainable statistic the forward pass moved (BatchNorm moving moments), updates no tracker and
    adds 1 to `skipped_batches`. `before`: the values of `_statistics()` before the forward pass (they include the
    health monitor's state, so a skipped step is not in its history either)."""
    finite = tf.math.is_finite(loss)
    for g in gradients:
      if g is not None:
        finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(g)))

    def apply():
      self.optimizer.apply(gradients, self.trainable_variables)
      return tf.constant(0.0)

    def skip():
      for variable, value in zip(self._statistics(), before):
        variable.assign(value)
      self.optimizer.iterations.assign_add(1)
      return tf.constant(1.0)
    skipped = tf.cond(finite, apply, skip)
    self._skipped.update_state(skipped)
    weight = tf.cast(batch_size, self.compute_dtype) * tf.cast(1.0 - skipped, self.compute_dtype)
    for name, tracker in self._trackers.items():
      value = tf.cast(terms[name], self.compute_dtype)
      tracker.update_state(tf.where(finite, value, tf.zeros_like(value)), sample_weight=weight)
    for name, tracker in self._grad_trackers.items():
      value = tf.cast(grad_norms[name], self.compute_dtype)
      tracker.update_state(tf.where(finite, value, tf.zeros_like(value)),
                           sample_weight=tf.cast(1.0 - skipped, self.compute_dtype))
    results = {name: tracker.result() for name, tracker in {**self._trackers, **self._grad_trackers}.items()}
    results["skipped_batches"] = self._skipped.result()
    return results

  @tf.autograph.experimental.do_not_convert
  def test_step(self, data):
    x = self._images(data)
    return self._update_trackers(self.loss_terms(x, training=False), tf.shape(x)[0])

  def get_config(self):
    return {**super().get_config(), "latent_dim": self.latent_dim, "network": self.network,
            "image_shape": list(self.image_shape), "likelihood": self.likelihood, "beta": self.beta,
            "dataset_size": self.dataset_size, "estimator": self.estimator, "free_bits": self.free_bits,
            "seed": self.seed, "beta_warmup_steps": self.beta_warmup_steps}


def standard_normal_log_prob(z):
  """log N(z; 0, I) summed over the last axis: `[B, d]` -> `[B]`."""
  return tf.reduce_sum(tfd.Normal(tf.zeros_like(z), tf.ones_like(z)).log_prob(z), axis=-1)


def gaussian_params(raw):
  """Splits raw network outputs `[B, 2 D]` into Gaussian (loc `[B, D]`, scale = softplus + MIN_SCALE `[B, D]`)."""
  loc, raw_scale = tf.split(raw, 2, axis=-1)
  return loc, tf.nn.softplus(raw_scale) + MIN_SCALE


def decomposition_means(terms, offsets):
  """Batch means of the decomposition terms `mi`, `tc`, `dim_kl` of `terms`: the estimator's own as `*_raw`, and
  offset-free (`objectives.estimator_offsets`) under the plain names."""
  out = {}
  for name in ("mi", "tc", "dim_kl"):
    raw = tf.reduce_mean(terms[name])
    out[f"{name}_raw"] = raw
    out[name] = raw - tf.cast(offsets[name], raw.dtype)
  return out


def batch_means(terms, loss, offsets):
  """Tracker values from `single_layer_terms`: batch means, the true ELBO (beta = 1), the given loss and the
  decomposition (`decomposition_means`)."""
  reconstruction = tf.reduce_mean(terms["reconstruction"])
  kl = tf.reduce_mean(terms["kl"])
  return {"loss": loss, "elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl,
          **decomposition_means(terms, offsets)}
