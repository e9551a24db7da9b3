"""Deep latent hierarchies with beta-TC disentangling at the top layer (paper Sections 2.2, 3, 3.1; Appendix A-C).

`HierarchicalVAE` holds what beta-TC DLGMs and Seatbelt-VAEs share: the inference chain q(z^1|x) prod_i
q(z^{i+1}|z^i) (eq. 7), the generative chain p(z^L) prod_i p(z^i|z^{i+1}) (eq. 6), one ancestral sample per example,
and the objective of eqs. (9)-(11), computed by `objectives.hierarchy_kl_terms` and `objectives.beta_tc_loss`.
Subclasses differ only in what the decoder sees (`decoder_input`): z^1 alone (beta-TC DLGM, eq. 6) or every layer
(Seatbelt-VAE, eq. 8).

Shapes and indexing: a model of L layers takes the last L entries of `z_sizes` (eqs. C.1-C.4), so z^1 (index 0,
nearest the data) has width z_sizes[-L] and z^L width z_sizes[-1]. The MLPs between z_sizes[k] and z_sizes[k+1]
(both directions) have hidden width h_sizes[k] (eqs. C.6-C.8, with k the position in the full z_sizes list, so a
layer keeps its widths whatever L is). x is the encoder's input; q(z^1|x) comes from the Chen et al. encoder.
"""

import tensorflow as tf
import tensorflow_probability as tfp

from seatbelt_tf import distribute
from seatbelt_tf import objectives
from seatbelt_tf.config import DEFAULT_Z_SIZES, H_SIZES
from seatbelt_tf.models.base import BaseVAE, decomposition_means, gaussian_params, standard_normal_log_prob
from seatbelt_tf.nn import GaussianMLP

tfd = tfp.distributions

# DEFAULT_Z_SIZES: paper eqs. C.1-C.3 (dSprites, Chairs, 3D Faces); datasets may carry their own (`source.z_sizes`).


class HierarchicalVAE(BaseVAE):
  """Base of the hierarchical models; see the module docstring.

  Args:
    layers: L >= 1, the number of stochastic layers.
    z_sizes: layer widths, bottom first; the model uses the last L.
    h_sizes: hidden widths of the inter-layer MLPs, aligned with z_sizes (entry k sits between z_sizes[k] and
      z_sizes[k + 1]).
    **kwargs: `BaseVAE` arguments except `latent_dim` (the widths come from z_sizes).
  """

  def __init__(self, layers=1, z_sizes=DEFAULT_Z_SIZES, h_sizes=H_SIZES, **kwargs):
    if "latent_dim" in kwargs:
      raise ValueError("Hierarchical models take their layer widths from z_sizes (and layers), not latent_dim.")
    z_sizes = tuple(int(s) for s in z_sizes)
    h_sizes = tuple(int(s) for s in h_sizes)
    layers = int(layers)
    if layers < 1 or layers > len(z_sizes) or min(z_sizes) < 1:
      raise ValueError(f"layers={layers} must be between 1 and len(z_sizes)={len(z_sizes)}, with positive widths "
                       f"(z_sizes={list(z_sizes)}); pass a longer --z_sizes or fewer --layers.")
    if len(h_sizes) < len(z_sizes) - 1 or (h_sizes and min(h_sizes) < 1):
      raise ValueError(f"h_sizes={list(h_sizes)} needs a positive width for each of the {len(z_sizes) - 1} pairs "
                       f"of adjacent z_sizes={list(z_sizes)}.")
    self.layers_count = layers  # (`layers` is a Keras Model property)
    self.z_sizes = z_sizes
    self.h_sizes = h_sizes
    first = len(z_sizes) - layers
    self._layer_sizes = z_sizes[first:]  # widths of z^1..z^L
    super().__init__(latent_dim=self.layer_sizes[0], **kwargs)
    hidden = h_sizes[first:first + layers - 1]
    # up[i]: q(z^{i+2}|z^{i+1}); down[i]: p(z^{i+1}|z^{i+2}) (0-based lists over the L - 1 links).
    self.up = [GaussianMLP(self.layer_sizes[i + 1], hidden[i], name=f"q_z{i + 2}_given_z{i + 1}")
               for i in range(layers - 1)]
    # The generative conditionals start at the prior N(0, I) (loc_gain 0, unit scales; seatbelt_tf.nn.heads).
    self.down = [GaussianMLP(self.layer_sizes[i], hidden[i], loc_gain=0.0, name=f"p_z{i + 1}_given_z{i + 2}")
                 for i in range(layers - 1)]

  @property
  def layer_sizes(self):
    return self._layer_sizes

  @property
  def layer_kl_names(self):
    """Tracker names of the per-layer KLs: kl_1 (bottom) ... kl_L (top)."""
    return tuple(f"kl_{i + 1}" for i in range(self.layers_count))

  @property
  def tracker_names(self):
    return BaseVAE.tracker_names + self.layer_kl_names

  @property
  def gradient_group_names(self):
    """encoder, q_z2_given_z1 ... q_zL_given_zL-1, p_z1_given_z2 ... p_zL-1_given_zL, decoder."""
    links = range(self.layers_count - 1)
    return (("encoder",) + tuple(f"q_z{i + 2}_given_z{i + 1}" for i in links)
            + tuple(f"p_z{i + 1}_given_z{i + 2}" for i in links) + ("decoder",))

  def gradient_groups(self):
    groups = super().gradient_groups()
    groups.update({mlp.name: mlp.trainable_variables for mlp in self.up + self.down})
    return groups

  @property
  def health_kl_names(self):
    return self.layer_kl_names

  def decoder_input(self, z):
    """`[B, *]` decoder input from the list of layer samples `z` (z[0] = z^1); the subclass's choice."""
    raise NotImplementedError

  def _create_network_variables(self, x):
    locs = [loc for loc, _ in self.posterior_layers(x)]
    for i, mlp in enumerate(self.down):
      mlp(locs[i + 1])
    self.decode(self.decoder_input(locs))

  # ---------------------------------------------------------------- the chains
  def posterior_layers(self, x, training=False):
    """The inference chain (eq. 7), each layer conditioned on the previous one's mean.

    Args:
      x: `[B, H, W, C]` images.

    Returns:
      list of L (loc `[B, d_i]`, scale `[B, d_i]`) pairs: q(z^1|x), q(z^2|z^1), ..., q(z^L|z^{L-1}).
    """
    x = tf.cast(x, self.compute_dtype)
    params = [self.encode(x, training=training)]
    for mlp in self.up:
      params.append(gaussian_params(mlp(params[-1][0], training=training)))
    return params

  def call(self, x, training=False):
    """Mean reconstruction: every layer at its posterior mean along the chain. `[B, H, W, C]` -> same."""
    locs = [loc for loc, _ in self.posterior_layers(x, training=training)]
    return self.mean_image(self.decode(self.decoder_input(locs), training=training))

  def generate(self, z_top, noise=None):
    """Ancestral pass down the generative chain (eq. 6): z^i = mean (or, with `noise`, a sample) of p(z^i|z^{i+1})
    from z^L = `z_top` `[B, d_L]`, then the decoder means from `decoder_input` (see `BaseVAE.generate`)."""
    z = [tf.cast(z_top, self.compute_dtype)]
    for i in reversed(range(self.layers_count - 1)):
      loc, scale = gaussian_params(self.down[i](z[0], training=False))
      z.insert(0, loc if noise is None else self.sample(loc, scale, noise[i]))
    return self.mean_image(self.decode(self.decoder_input(z), training=False))

  def forward(self, x, training, noise=None, target=None):
    """One ancestral sample through both chains and every term of eq. (9) for it.

    Args:
      x: `[B, H, W, C]` images.
      training: whether BatchNorm uses batch statistics.
      noise: optional list of L fixed standard-normal `[B, d_i]` tensors for the samples (default: the seed stream).
      target: optional `[B, H, W, C]` images whose likelihood is scored instead of `x` (the output attack).

    Returns:
      dict with the lists `z`, `q_loc`, `q_scale` (L entries), `p_loc`, `p_scale` (L - 1 entries), the decoder
      output `params` `[B, H, W, C]`, `reconstruction` `[B]` log p(x|z), and the entries of
      `objectives.hierarchy_kl_terms` (`kl_units`, `kl`, `top_log_ratio`, `mi`, `tc`, `dim_kl`, ...).
    """
    x = tf.cast(x, self.compute_dtype)
    target = x if target is None else tf.cast(target, self.compute_dtype)
    noise = noise or [None] * self.layers_count
    loc, scale = self.encode(x, training=training)
    q_loc, q_scale, z = [loc], [scale], [self.sample(loc, scale, noise[0])]
    for i, mlp in enumerate(self.up):
      loc, scale = gaussian_params(mlp(z[-1], training=training))
      q_loc.append(loc)
      q_scale.append(scale)
      z.append(self.sample(loc, scale, noise[i + 1]))
    p_loc, p_scale = [], []
    for i, mlp in enumerate(self.down):
      loc, scale = gaussian_params(mlp(z[i + 1], training=training))
      p_loc.append(loc)
      p_scale.append(scale)
    params = self.decode(self.decoder_input(z), training=training)
    terms = objectives.hierarchy_kl_terms(z, q_loc, q_scale, p_loc, p_scale, self.dataset_size, self.estimator,
                                          global_params=distribute.gather_components(q_loc[-1], q_scale[-1]))
    return {"z": z, "q_loc": q_loc, "q_scale": q_scale, "p_loc": p_loc, "p_scale": p_scale, "params": params,
            "reconstruction": self.log_likelihood(target, params), **terms}

  def attack_terms(self, x_input, x_target, noise):
    f = self.forward(x_input, training=False, noise=noise, target=x_target)
    return {"reconstruction": f["reconstruction"], "kl": tf.add_n(f["kl"])}

  def log_joint(self, x, z):
    """log p(x|z) (the decoder reads `decoder_input(z)`) and log p(z) = log N(z^L; 0, I) + sum_i log
    p(z^i|z^{i+1}) (eq. 6), each `[B]`, at codes `z` (L tensors `[B, d_i]`, bottom first)."""
    z = [tf.cast(v, self.compute_dtype) for v in z]
    params = self.decode(self.decoder_input(z), training=False)
    log_prior = standard_normal_log_prob(z[-1])
    for i, mlp in enumerate(self.down):
      loc, scale = gaussian_params(mlp(z[i + 1], training=False))
      log_prior += tf.reduce_sum(tfd.Normal(loc, scale).log_prob(z[i]), axis=-1)
    return self.log_likelihood(tf.cast(x, self.compute_dtype), params), log_prior

  # ---------------------------------------------------------------- the objective
  def loss_terms(self, x, training):
    """Eq. (9) (Seatbelt-VAE) or eq. (11) (beta-TC DLGM) as a loss, plus the trackers.

    `elbo` is the true ELBO (beta = 1, no free bits; eqs. 10, 11 with beta = 1), `kl` the KL summed over layers,
    `kl_i` the KL term of layer i (single-sample below the top, see `objectives.hierarchy`), and `mi`, `tc`,
    `dim_kl` the top-layer terms -T_a, -T_b, -T_c of eq. A.16.
    """
    f = self.forward(x, training)
    loss = objectives.beta_tc_loss(f["reconstruction"], f["kl_units"], f["tc"], self.loss_beta(training),
                                   self.free_bits)
    reconstruction = tf.reduce_mean(f["reconstruction"])
    layer_kls = [tf.reduce_mean(k) for k in f["kl"]]
    kl = tf.add_n(layer_kls)
    out = {"loss": loss, "elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl,
           **decomposition_means(f, self.estimator_offsets())}
    out.update(zip(self.layer_kl_names, layer_kls))
    return out

  def unit_kls(self, x):
    return self.forward(x, training=False)["kl_units"]

  def get_config(self):
    config = super().get_config()
    config.pop("latent_dim")
    return {**config, "layers": self.layers_count, "z_sizes": list(self.z_sizes), "h_sizes": list(self.h_sizes)}
