"""Terms of the hierarchical objectives (paper eqs. 9-11, Appendix A) and the beta-TC loss, as pure functions.

Layers are indexed from the data up: `z[0]` is z^1 (nearest x) and `z[-1]` is the top layer z^L. The inference
chain is q(z|x) = q(z^1|x) prod_i q(z^{i+1}|z^i) (eq. 7) and the generative chain p(z) = p(z^L) prod_i
p(z^i|z^{i+1}) with p(z^L) = N(0, I) (eqs. 6, 8). With one ancestral sample z^1 ~ q(z^1|x), z^{i+1} ~
q(z^{i+1}|z^i), the KL part of the ELBO (eq. 5) splits by layer (eqs. A.4-A.10):

    R_a = -E[log q(z^1|x)       - log p(z^1|z^2)]                      (eq. A.7)
    R_b = -sum_{m=2}^{L-1} E[log q(z^m|z^{m-1}) - log p(z^m|z^{m+1})]   (eq. A.10)
    T   = -E KL(q(z^L|z^{L-1}) || p(z^L))                               (eq. A.5)

and the top-layer term decomposes as T = T_a + T_b + T_c (eq. A.16):

    T_a = -E[log q(z^L|z^{L-1}) - log q(z^L)]               -I(z^L; z^{L-1}), tracked as `mi`
    T_b = -E[log q(z^L) - log prod_j q(z^L_j)]              -TC(z^L), tracked as `tc`; weighted by beta (eq. 9)
    T_c = -E[log prod_j q(z^L_j) - log p(z^L)]              -dimension-wise KL, tracked as `dim_kl`

with log q(z^L) and log q(z^L_j) estimated over the batch's components q(z^L|z^{L-1}_j) by minibatch weighted
sampling (eq. B.15) or stratified sampling. For L = 1, z^0 = x and everything reduces to the beta-TCVAE (eq. 4).

A note on eqs. A.7-A.10: the paper writes the lower-layer terms as expected KLs, E KL(q(z^m|z^{m-1}) ||
p(z^m|z^{m+1})), as if z^{m+1} were drawn independently of z^m. In the bottom-up chain z^{m+1} ~ q(z^{m+1}|z^m)
depends on z^m, so the Gaussian KL evaluated at a sampled z^{m+1} is not an unbiased estimate of the term (on an
untrained L = 3 model it is off by ~0.1 nat per layer, many standard errors). These terms are therefore estimated
by the single-sample log-ratio at the ancestral sample, which makes the objective exactly eq. (5) at beta = 1. The
top layer's KL to the fixed prior N(0, I) has no such coupling and stays analytic (as in the beta-TCVAE).
"""

import tensorflow as tf
import tensorflow_probability as tfp

from seatbelt_tf.objectives.estimators import decompose_kl
from seatbelt_tf.objectives.kl import as_dtype, free_bits_kl, gaussian_kl

tfd = tfp.distributions


def hierarchy_kl_terms(z, q_loc, q_scale, p_loc, p_scale, dataset_size, method="mws", global_params=None):
  """Every KL term of eq. (9) for one ancestral sample per example, layer by layer and unit by unit.

  Args:
    z: list of L tensors `[batch, d_i]`: the sample z^1 ~ q(z^1|x_b), z^{i+1} ~ q(z^{i+1}|z^i_b) of each example.
    q_loc, q_scale: lists of L tensors `[batch, d_i]`: the parameters of q(z^1|x) and of q(z^{i+1}|z^i) at the
      sampled parents (the inference chain, eq. 7).
    p_loc, p_scale: lists of L - 1 tensors `[batch, d_i]`, i = 1..L-1: the parameters of p(z^i|z^{i+1}) at the
      sampled z^{i+1} (the generative chain, eqs. 6 and 8). The top prior p(z^L) is N(0, I).
    dataset_size: N, the number of training examples (the minibatch estimators' normaliser).
    method: "mws" (eq. B.15) or "mss".
    global_params: optional global-batch components of the top layer for replicated runs (`decompose_kl`).

  Returns:
    dict with
      `kl_units`: list of L `[batch, d_i]` per-unit KL terms. Layers i < L: the single-sample
        log q(z^i_j|z^{i-1}) - log p(z^i_j|z^{i+1}) (-R_a, -R_b of eqs. A.7, A.10, unit by unit; see the module
        docstring); top layer: the analytic KL(q(z^L_j|z^{L-1}) || N(0, 1)) (-T of eq. A.5);
      `kl`: list of L `[batch]`: the same summed over units (their sum is unbiased for KL(q(z|x) || p(z)) of eq. 5);
      `top_log_ratio`: `[batch]` the single-sample log q(z^L|z^{L-1}) - log p(z^L);
      `mi`, `tc`, `dim_kl`: `[batch]` -T_a, -T_b, -T_c of eq. A.16 for each sample (they add up to
        `top_log_ratio` exactly, whatever the estimator);
      `log_qz`, `log_qz_product`: `[batch]` the estimates of log q(z^L) and log prod_j q(z^L_j).
  """
  num_layers = len(z)
  if not (len(q_loc) == len(q_scale) == num_layers and len(p_loc) == len(p_scale) == num_layers - 1):
    raise ValueError(f"A hierarchy of {num_layers} layers needs {num_layers} inference and {num_layers - 1} "
                     f"generative conditionals; got {len(q_loc)}, {len(q_scale)}, {len(p_loc)}, {len(p_scale)}.")
  kl_units = [tfd.Normal(q_loc[i], q_scale[i]).log_prob(z[i]) - tfd.Normal(p_loc[i], p_scale[i]).log_prob(z[i])
              for i in range(num_layers - 1)]
  kl_units.append(gaussian_kl(q_loc[-1], q_scale[-1]))
  top = decompose_kl(z[-1], q_loc[-1], q_scale[-1], dataset_size, method, global_params=global_params)
  return {"kl_units": kl_units, "kl": [tf.reduce_sum(k, axis=-1) for k in kl_units],
          "top_log_ratio": top["log_qz_given_x"] - top["log_pz"], "mi": top["mi"], "tc": top["tc"],
          "dim_kl": top["dim_kl"], "log_qz": top["log_qz"], "log_qz_product": top["log_qz_product"]}


def beta_tc_loss(reconstruction, kl_units, tc, beta, free_bits=0.0):
  """The negative beta-TC objective of eqs. (4), (9)-(11) for a batch, with free bits per layer.

      loss = -E log p(x|z) + sum_i sum_j max(free_bits, E_batch KL^i_j) + (beta - 1) E_batch TC(z^L)

  Eq. (9) is the ELBO with the top layer's total correlation T_b weighted by beta; since T_a + T_b + T_c = T,
  it equals ELBO + (beta - 1) T_b = ELBO - (beta - 1) TC. The KL terms are those of `hierarchy_kl_terms` (the
  top layer's analytic, the same expectation as its sampled decomposition T_a + T_b + T_c with lower variance);
  free bits (Kingma et al. 2016) floor each unit's batch-mean KL in every layer. With beta = 1 and free_bits = 0
  the loss is the negative ELBO.

  Args:
    reconstruction: `[batch]` log p(x|z) at the sampled z.
    kl_units: list of `[batch, d_i]` per-unit KLs, one per stochastic layer.
    tc: `[batch]` total-correlation estimates of the top layer.
    beta: float >= 0.
    free_bits: nats per unit, >= 0.

  Returns:
    scalar loss.
  """
  loss = -tf.reduce_mean(reconstruction)
  for units in kl_units:
    loss += free_bits_kl(units, free_bits)
  return loss + as_dtype(beta - 1.0, loss.dtype) * tf.reduce_mean(tc)


def warmup_beta(beta, step, warmup_steps):
  """The beta of training step `step` under a linear warm-up from the plain ELBO (beta = 1) to `beta`:

      beta_t = 1 + (beta - 1) min(1, step / warmup_steps)

  The penalty of eqs. (4), (9)-(11) is (beta - 1) TC(z^L) on top of the negative ELBO (`beta_tc_loss`), so the
  warm-up trains the plain ELBO first and adds the total-correlation penalty over `warmup_steps` steps; for the
  beta-VAE (beta on the KL) it goes from the ELBO to beta times the KL. Chen et al.'s reference code anneals
  its beta from 0 (the TC rewarded, not only unpenalised) over 7,000 iterations on dSprites (`anneal_kl`, its
  `--beta-anneal`); the paper itself trains with no schedule (Appendix C: Adam at a learning rate of 0.001), and
  so does every run here unless `--beta_warmup_steps` asks for one.

  Args:
    beta: float, the objective's beta.
    step: scalar integer tensor or int, the optimizer's step (0 for the first update).
    warmup_steps: int > 0.

  Returns:
    scalar float32 tensor.
  """
  if warmup_steps <= 0:
    raise ValueError(f"warmup_steps={warmup_steps} must be > 0 (a run without warm-up uses beta itself).")
  fraction = tf.minimum(1.0, tf.cast(step, tf.float32) / float(warmup_steps))
  return 1.0 + (float(beta) - 1.0) * fraction
