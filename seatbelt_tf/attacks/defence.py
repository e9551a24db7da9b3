"""An inference-time defence: HMC refinement of the encoder's codes (Kuzina, Welling and Tomczak 2022).

An adversarial input x* moves the amortised posterior q(z|x*) to where the attacker wants it. The true posterior
p(z|x*) is proportional to p(x*|z) p(z), and the decoder and prior were not attacked; a few Hamiltonian Monte Carlo
steps that target it, started from the encoder's draw, pull z back towards codes that explain x* itself (Kuzina et
al. 2022, "Alleviating adversarial attacks on variational autoencoders with MCMC"). The defended reconstruction
decodes the refined z.

**Which layers.** Every layer of a hierarchy is refined jointly, targeting p(x*|z) p(z^L) prod_i p(z^i|z^{i+1})
(eq. 6): the attack moves every layer (eq. 15), the beta-TC DLGM's decoder reads only z^1 and the Seatbelt-VAE's
reads all of them (eq. 8), so refining the top layer alone would leave a DLGM's reconstruction untouched.

**Parameterisation.** The chain runs in the encoder's whitened coordinates, z^i = mu_i(x*) + sigma_i(x*) u^i
(mu, sigma from the encode convention of `attacks.objectives`: the inference chain at the posterior means), so one
step size suits every layer and unit whatever their scales (HMC with mass matrix diag(1 / sigma^2)); the
Jacobian of this affine map is constant in u and drops out of the acceptance ratio. Chains start at
u = standard-normal draws (fixed noise), i.e. at the encoder's own samples; the undefended score uses those same
draws, so "with" and "without" differ only by the HMC steps.

**Evaluation** (`defended_target_nll`): -log p(x^t|z) averaged over chains, without and with the defence, on the
same adversarial inputs. Scored this way the defence is *non-adaptive*: the attack did not know about it. The
adaptive variant (`defended_output_effect`) puts the chain, with its randomness fixed (momenta and accept draws
from a fixed seed), inside the output attack's objective, so that the attack's gradient flows through every
leapfrog step (the accept/reject choice is a fixed branch at each point, differentiated through the branch taken).
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from seatbelt_tf.attacks import protocol

DEFAULT_STEPS = 10
DEFAULT_LEAPFROG_STEPS = 5
DEFAULT_STEP_SIZE = 0.1


def hmc_chain(target_log_prob_fn, initial_state, num_steps, step_size, num_leapfrog_steps, seed):
  """`num_steps` HMC transitions (tfp.mcmc.HamiltonianMonteCarlo), unrolled so gradients can flow through them.

  Args:
    target_log_prob_fn: (*state) -> `[B]` log density of B independent chains (unnormalised).
    initial_state: list of `[B, d_i]` tensors.
    num_steps: transitions.
    step_size: leapfrog step size (float).
    num_leapfrog_steps: leapfrog steps per transition.
    seed: int32 `[2]` stateless seed: the same seed gives the same momenta and accept draws.

  Returns:
    (final state: list like `initial_state`, acceptance rate `[B]`).
  """
  kernel = tfp.mcmc.HamiltonianMonteCarlo(target_log_prob_fn, step_size=step_size,
                                          num_leapfrog_steps=int(num_leapfrog_steps))
  state = list(initial_state)
  results = kernel.bootstrap_results(state)
  accepted = tf.zeros(tf.shape(state[0])[:1], tf.float32)
  seeds = tfp.random.split_seed(tf.cast(seed, tf.int32), n=max(int(num_steps), 1))
  for t in range(int(num_steps)):
    state, results = kernel.one_step(state, results, seed=seeds[t])
    accepted += tf.cast(results.is_accepted, tf.float32)
  return state, accepted / max(int(num_steps), 1)


def refine(fns, x, noise, num_steps=DEFAULT_STEPS, step_size=DEFAULT_STEP_SIZE,
           num_leapfrog_steps=DEFAULT_LEAPFROG_STEPS, seed=0):
  """Codes of `x` `[B, H, W, C]` refined by HMC targeting p(x|z) p(z) (module docstring).

  Args:
    fns: callables with `encode_fn` and `log_joint_fn` (a live model's `ModelFns` or an export's).
    x: images.
    noise: list of standard-normal `[B, d_i]` tensors: the chains' starting draws in whitened coordinates.
    num_steps, step_size, num_leapfrog_steps: the chain (0 steps: the encoder's draw itself).
    seed: int (or int32 scalar tensor) seed of the chain's randomness.

  Returns:
    (z: list of `[B, d_i]` codes, acceptance rate `[B]`).
  """
  params = fns.encode_fn(x)
  locs = [tf.cast(l, tf.float32) for l, _ in params]
  scales = [tf.cast(s, tf.float32) for _, s in params]

  def to_codes(u):
    return [l + s * v for l, s, v in zip(locs, scales, u)]

  def target(*u):
    log_likelihood, log_prior = fns.log_joint_fn(x, to_codes(u))
    return log_likelihood + log_prior

  u0 = [tf.cast(e, tf.float32) for e in noise]
  if int(num_steps) == 0:
    return to_codes(u0), tf.zeros(tf.shape(x)[:1], tf.float32)
  seed_pair = tf.stack([tf.cast(seed, tf.int32), tf.constant(17, tf.int32)])  # seed may be a tensor (no retrace)
  u, acceptance = hmc_chain(target, u0, num_steps, step_size, num_leapfrog_steps, seed_pair)
  return to_codes(u), acceptance


def defended_target_nll(fns, x_adv, x_t, num_samples=8, num_steps=DEFAULT_STEPS, step_size=DEFAULT_STEP_SIZE,
                        num_leapfrog_steps=DEFAULT_LEAPFROG_STEPS, seed=0, chunk=256):
  """-log p(x^t|z) without and with the defence, on the same adversarial inputs (non-adaptive evaluation).

  Args:
    fns: callables with `encode_fn`, `log_joint_fn` and `layer_sizes`.
    x_adv, x_t: `[n, H, W, C]` adversarial inputs and their targets.
    num_samples: chains per input (each started at its own encoder draw).
    num_steps, step_size, num_leapfrog_steps, seed: the chain.
    chunk: inputs per call.

  Returns:
    dict of float64 `[n]` arrays: `target_nll_without` (z = the encoder's draws), `target_nll_with` (z after the
    chain, from the same draws), `acceptance` (mean over chains).
  """
  x_adv = np.asarray(x_adv, np.float32)
  x_t = np.asarray(x_t, np.float32)
  n = len(x_adv)
  out = {"target_nll_without": np.zeros(n), "target_nll_with": np.zeros(n), "acceptance": np.zeros(n)}

  @tf.function(autograph=False, reduce_retracing=True)
  def score(xa, xt, noise, steps_seed):
    z0, _ = refine(fns, xa, noise, 0)
    z, acceptance = refine(fns, xa, noise, num_steps, step_size, num_leapfrog_steps, steps_seed)
    return -fns.log_joint_fn(xt, z0)[0], -fns.log_joint_fn(xt, z)[0], acceptance

  for sample in range(int(num_samples)):
    noise = [tf.random.stateless_normal([n, d], seed=[seed + 7, 1000 * sample + i])
             for i, d in enumerate(fns.layer_sizes)]
    for s in range(0, n, chunk):
      without, with_, acceptance = score(tf.constant(x_adv[s:s + chunk]), tf.constant(x_t[s:s + chunk]),
                                         [e[s:s + chunk] for e in noise], tf.constant(seed * 1000 + sample, tf.int32))
      out["target_nll_without"][s:s + chunk] += without.numpy() / num_samples
      out["target_nll_with"][s:s + chunk] += with_.numpy() / num_samples
      out["acceptance"][s:s + chunk] += acceptance.numpy() / num_samples
  return out


def defended_output_effect(fns, x_t, noise, num_steps=DEFAULT_STEPS, step_size=DEFAULT_STEP_SIZE,
                           num_leapfrog_steps=DEFAULT_LEAPFROG_STEPS, seed=0):
  """The adaptive output attack's effect through the defence: (x_adv `[m, ...]`, idx `[m]`) -> `[m]`
  -log p(x^t|z_HMC(x_adv)) averaged over chains started from the fixed draws `noise` (`protocol.objective_noise`:
  a list of draws, each one `[n, d_i]` tensor per layer; one chain per draw, all in one batch) with fixed randomness
  (`seed`), so the objective is a deterministic, differentiable function of x_adv.

  Every row in a call shares the chain's randomness draw for its position in the batch; a problem therefore sees
  the same randomness at every evaluation only when evaluated in the same row, which `budget.minimize_pgd` does
  (its rows never move)."""
  x_t = tf.constant(np.asarray(x_t, np.float32))

  def chain_nll(x_adv, idx, eps):
    z, _ = refine(fns, x_adv, eps, num_steps, step_size, num_leapfrog_steps, seed)
    return -fns.log_joint_fn(tf.gather(x_t, idx), z)[0]

  def effect(x_adv, idx):
    return protocol.over_draws(chain_nll, x_adv, idx, noise)
  return effect
