"""The output attack (eq. 12) with its objective averaged over K fixed noise draws (K = 1: the shipped protocol).

A probe, not yet a protocol option (docs/REPRODUCTION.md, "A flaw in the output attack's score"): it patches
`attacks.protocol.effect_fn` so that the output objective is the mean of -ELBO(x^t; q(z|x*)) over K draws, then
attacks the campaign's vanilla VAE (`runs/reproduce/vae_L1_beta1_seed0`, seed 0, its sweep's own 10 pairs) at three
lambdas of the sweep's grid (the smallest, the 21st and the 31st), both starts, no neighbour restarts (for speed),
and prints medians over pairs of the objective, -log p(x^t|z~) as recorded, on 8 fresh draws and at the posterior
means, and ||d||_2, for K = 1, 4, 16.

Usage: python benchmarks/output_attack_draws.py   (needs the workdir and its attack sweep)
"""
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np, tensorflow as tf
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from seatbelt_tf import config as config_lib, runs
from seatbelt_tf.attacks import objectives, protocol

wd = sys.argv[1] if len(sys.argv) > 1 else "runs/reproduce/vae_L1_beta1_seed0"
flat = json.load(open(os.path.join(wd, "config.json")))
config, _, model = runs.open_trained_run(config_lib.RunConfig.from_flat({**flat, "mode": "attack"}))
fns = objectives.ModelFns(model)
recs = json.load(open(os.path.join(wd, "attacks/attack_results.json")))
arr = np.load(os.path.join(wd, "attacks/adversarial_inputs.npz"))
lams_all = sorted({r["lambda"] for r in recs})
rows0 = [i for i, r in enumerate(recs) if r["mode"] == "output" and r["lambda"] == lams_all[0]]
inputs, targets = arr["inputs"][rows0], arr["targets"][rows0]
lambdas = [lams_all[0], lams_all[20], lams_all[30]]
orig = protocol.effect_fn
K = 1

def effect_k(fns_, mode, layers, x_t, noise):
  if mode != "output" or K == 1:
    return orig(fns_, mode, layers, x_t, noise)
  n = int(x_t.shape[0])
  draws = [noise] + [protocol.fixed_noise(fns_.layer_sizes, n, 12345, k) for k in range(1, K)]
  def effect(x_adv, idx):
    return tf.add_n([-fns_.elbo_fn(x_adv, tf.gather(x_t, idx), [tf.gather(e, idx) for e in d]) for d in draws]) / K
  return effect
protocol.effect_fn = effect_k

def nll(x_in, x_t, zero):
  n = len(x_in); rng = np.random.default_rng(7)
  noises = [[np.zeros((n, d), "float32") for d in fns.layer_sizes]] if zero else [[rng.standard_normal((n, d)).astype("float32") for d in fns.layer_sizes] for _ in range(8)]
  return np.mean([-fns.terms_fn(tf.constant(x_in), tf.constant(x_t), [tf.constant(e) for e in z])["reconstruction"].numpy() for z in noises], 0)

for K in (1, 4, 16):
  t = time.time()
  records, arrays = protocol.run_attack(fns, inputs, targets, lambdas, "output", seed=config.attack.attack_seed,
                                        neighbour_rounds=0, max_iterations=200)
  for lam in lambdas:
    sel = [i for i, r in enumerate(records) if r["lambda"] == np.float32(lam)]
    xa, xt_ = arrays["adversarial"][sel], arrays["targets"][sel]
    print(f"K={K:2d} lambda {lam:9.3g}: objective {np.median([records[i]['objective'] for i in sel]):7.1f}; -log p recorded "
          f"{np.median([records[i]['target_nll'] for i in sel]):6.0f}; fresh {np.median(nll(xa, xt_, False)):6.0f}; mean {np.median(nll(xa, xt_, True)):6.0f}; "
          f"||d|| {np.median([records[i]['distortion_l2'] for i in sel]):5.1f}", flush=True)
  print(f"K={K}: {time.time() - t:.0f} s", flush=True)
