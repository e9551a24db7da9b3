"""Command-line entry point: `python -m seatbelt_tf.launch --flagfile=configs/quickstart.cfg` (or `seatbelt-launch`).

This module is the only home of absl flags: it turns them into a frozen `RunConfig` and calls the mode's library
function. Flagfiles may include other flagfiles (`--flagfile=base.cfg` inside a flagfile); a relative nested path
is resolved against the directory of the file that names it (absl alone resolves it against the current
directory), so `configs/` works from anywhere.
"""

import importlib
import json
import logging as std_logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported: keep the console readable

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging

from seatbelt_tf import config as config_lib
from seatbelt_tf import startup

_D, _M, _T = config_lib.DataConfig(), config_lib.ModelConfig(), config_lib.TrainConfig()

flags.DEFINE_enum("mode", "train", config_lib.MODES, "What to do with the workdir.")
flags.DEFINE_string("workdir", None, "Folder for checkpoints, logs and results; re-using it resumes the run.")
# Data.
flags.DEFINE_string("dataset", _D.dataset, "Dataset name (see seatbelt_tf.data.DATASETS).")
flags.DEFINE_string("data_dir", _D.data_dir, "Folder of the data: the dSprites npz, prepared TFDS data, or the "
                    "images of --dataset=image_folder.")
flags.DEFINE_string("manual_dir", _D.manual_dir, "Folder of manually downloaded files TFDS prepares offline "
                    "(e.g. 3dshapes.h5); the error for missing data lists them.")
flags.DEFINE_bool("grayscale", _D.grayscale, "Convert colour images to one channel.")
flags.DEFINE_enum("bad_images", _D.bad_images, config_lib.BAD_IMAGE_CHOICES,
                  "--dataset=image_folder: a file that does not decode stops the load naming it (fail), or is "
                  "skipped and counted (skip).")
flags.DEFINE_integer("eval_examples", _D.eval_examples, "Examples held out for evaluation.", lower_bound=1)
# Model.
flags.DEFINE_string("model", _M.model, "Model family (see seatbelt_tf.models.MODELS).")
flags.DEFINE_string("network", _M.network, "Encoder/decoder pair (see seatbelt_tf.nn.NETWORKS).")
flags.DEFINE_integer("latent_dim", _M.latent_dim, "Latent units of the single-layer models (vae, beta_tcvae).",
                     lower_bound=1)
flags.DEFINE_float("beta", _M.beta, "Penalty weight (beta = 1: plain ELBO).", lower_bound=0.0)
flags.DEFINE_enum("estimator", _M.estimator, ["mws", "mss"], "Minibatch estimator of q(z).")
flags.DEFINE_float("free_bits", _M.free_bits, "Free bits per latent unit in every layer, nats (0: off).",
                   lower_bound=0.0)
flags.DEFINE_integer("beta_warmup_steps", _M.beta_warmup_steps, "Raise the loss's beta linearly from 1 (the plain "
                     "ELBO) to --beta over this many training steps (0: off, the paper's setting). Part of a run's "
                     "identity.", lower_bound=0)
flags.DEFINE_integer("layers", _M.layers, "Stochastic layers L of the hierarchical models (beta_tcdlgm, seatbelt).",
                     lower_bound=1)
flags.DEFINE_list("z_sizes", _M.z_sizes, "Layer widths, bottom first; a model of L layers takes the last L "
                  "(default: the dataset's, e.g. 96,48,24,12,6 for dSprites).")
flags.DEFINE_list("h_sizes", list(_M.h_sizes), "Hidden widths of the inter-layer MLPs; entry k sits between "
                  "z_sizes[k] and z_sizes[k+1].")
# Training.
flags.DEFINE_integer("batch_size", _T.batch_size, "Training batch size.", lower_bound=2)
flags.DEFINE_float("learning_rate", _T.learning_rate, "Adam learning rate.")
flags.DEFINE_integer("train_steps", _T.train_steps, "Total training steps.", lower_bound=1)
flags.DEFINE_integer("steps_per_epoch", _T.steps_per_epoch, "Steps between checkpoints and log lines.",
                     lower_bound=1)
flags.DEFINE_integer("steps_per_execution", _T.steps_per_execution, "Steps per tf.function call.", lower_bound=1)
flags.DEFINE_integer("eval_batch_size", _T.eval_batch_size, "Evaluation batch size.", lower_bound=1)
flags.DEFINE_integer("seed", _T.seed, "Seed of the data split, shuffles, initialisation and sampling.")
flags.DEFINE_enum("jit_compile", _T.jit_compile, config_lib.JIT_CHOICES,
                  "Compile the train step with XLA; auto picks what measured faster for the network on CPU.")
flags.DEFINE_integer("keep_checkpoints", _T.keep_checkpoints, "Checkpoints kept in the workdir.", lower_bound=1)
flags.DEFINE_integer("verbose", _T.verbose, "0 silent, 1 progress bar, 2 one line per epoch.")
flags.DEFINE_enum("strategy", _T.strategy, config_lib.STRATEGIES,
                  "tf.distribute strategy of --mode=train: default (one device), mirrored (the devices of this "
                  "machine), multi_worker (one process per worker, from TF_CONFIG; launch/multi_worker.sh). "
                  "--batch_size is the global batch.")
flags.DEFINE_enum("on_nonfinite", _T.on_nonfinite, config_lib.NONFINITE_CHOICES,
                  "A NaN or infinite training loss: stop with an error naming the step and the last good "
                  "checkpoint, or skip the batch (no update; counted in results.json as skipped_batches).")
flags.DEFINE_float("clip_grad_norm", _T.clip_grad_norm, "Clip the global gradient norm to this before each Adam "
                   "step (0: off, the paper's setting). Not part of a run's identity: a resumed run may change it.")
flags.DEFINE_list("devices", list(_T.devices), "--strategy=mirrored: devices, e.g. /gpu:0,/gpu:1 (default: all "
                  "local GPUs, else the CPU).")

# Attacks (--mode=attack).
_A = config_lib.AttackConfig()
flags.DEFINE_integer("attack_pairs", _A.attack_pairs, "Input/target pairs drawn from the held-out split.",
                     lower_bound=1)
flags.DEFINE_integer("attack_lambdas", _A.attack_lambdas, "Lambda values, geometric from 2^-20 to 2^20.",
                     lower_bound=1)
flags.DEFINE_list("attack_modes", list(_A.attack_modes), "Attack modes: latent (eqs. 13-15), output (eq. 12).")
flags.DEFINE_list("attack_layers", list(_A.attack_layers), "Layer sets of latent attacks: all, first, top.")
flags.DEFINE_enum("attack_optimizer", _A.attack_optimizer, config_lib.ATTACK_OPTIMIZERS,
                  "lbfgs: batched box-constrained L-BFGS; scipy: L-BFGS-B one problem at a time (reference); tfp: "
                  "tfp.optimizer.lbfgs_minimize on the whole batch in one graph, bounds by projection.")
flags.DEFINE_enum("attack_backend", _A.attack_backend, config_lib.ATTACK_BACKENDS,
                  "Where the lbfgs driver's per-step algebra runs: numpy (host, threaded; fastest on a CPU), tf "
                  "(TensorFlow ops on the objective's device: no host copies per step on a GPU), auto (tf when a GPU "
                  "is visible, else numpy).")
flags.DEFINE_list("attack_starts", list(_A.attack_starts), "Starting points tried per problem: input, target.")
flags.DEFINE_integer("attack_max_iterations", _A.attack_max_iterations, "L-BFGS iterations per problem and start.",
                     lower_bound=1)
flags.DEFINE_integer("attack_neighbour_rounds", _A.attack_neighbour_rounds,
                     "Rounds of restarts of a problem from a neighbouring lambda's end point where that point is "
                     "better (0: none).", lower_bound=0)
flags.DEFINE_integer("attack_objective_draws", _A.attack_objective_draws,
                     "Fixed noise draws the output attack's objective (eq. 12) averages over (1: the single draw of "
                     "earlier sweeps, which the attack overfits: docs/REPRODUCTION.md).", lower_bound=1)
flags.DEFINE_integer("attack_seed", _A.attack_seed, "Seed of the pairs and of the fixed Monte Carlo noise.")
flags.DEFINE_string("attack_vary", _A.attack_vary,
                    "Single-factor attack (paper Appendix H.1): draw pairs from the factor grid that differ only in "
                    "this factor (e.g. orientation). Empty: random held-out pairs.")
flags.DEFINE_list("attack_fix", list(_A.attack_fix),
                  "With --attack_vary: factors held at one class in both images, e.g. shape=2 (a dSprites heart).")

flags.DEFINE_integer("attack_shards", _A.attack_shards, "Split the sweep's pairs over this many processes, each "
                     "run with its --attack_shard_index; then run once with --attack_merge.", lower_bound=1)
flags.DEFINE_integer("attack_shard_index", _A.attack_shard_index, "This process's shard (0..attack_shards-1).",
                     lower_bound=0)
flags.DEFINE_bool("attack_merge", _A.attack_merge, "Merge the shards' outputs into attacks/attack_results.json and "
                  "draw the figures (after every shard finished).")

# Beyond the paper (attacks/budget.py, attacks/measures.py, attacks/defence.py).
flags.DEFINE_enum("attack_kind", _A.attack_kind, config_lib.ATTACK_KINDS,
                  "lambda_sweep: the paper's protocol (eqs. 12-15, lambda x pairs); eps_ball: maximise each mode's "
                  "effect within L2 radii --attack_epsilons (PGD, exact ball-and-box projection); margin: per input, "
                  "the smallest L2 radius that moves the reconstruction by more than --attack_margin_r.")
flags.DEFINE_list("attack_epsilons", [str(e) for e in _A.attack_epsilons],
                  "eps_ball: L2 radii (default: 10, geometric from 1/256 to 1/4 of the data box's diagonal, "
                  "0.25 to 16 for 64x64 images in [0, 1]).")
flags.DEFINE_integer("attack_pgd_steps", _A.attack_pgd_steps, "eps_ball and margin: PGD steps per start.",
                     lower_bound=1)
flags.DEFINE_integer("attack_random_starts", _A.attack_random_starts,
                     "eps_ball and margin: random starts in the ball, besides the input (and target).", lower_bound=0)
flags.DEFINE_float("attack_margin_r", _A.attack_margin_r, "margin: the damage ||g(x + d) - g(x)||_2 that counts as "
                   "moved (0: 1/10 of the box diagonal, 6.4 for 64x64 images in [0, 1]).", lower_bound=0)
flags.DEFINE_float("attack_margin_epsilon_max", _A.attack_margin_epsilon_max,
                   "margin: the largest radius tried (0: 1/4 of the box diagonal); inputs not moved within it are "
                   "reported as censored.", lower_bound=0)
flags.DEFINE_integer("attack_margin_bisections", _A.attack_margin_bisections, "margin: bisection steps.",
                     lower_bound=1)
flags.DEFINE_enum("defence", _A.defence, config_lib.DEFENCES,
                  "hmc: after the attack, re-score its adversarial inputs with codes refined by HMC targeting "
                  "p(x*|z) p(z) (Kuzina et al. 2022); writes attacks/defence_hmc.json (non-adaptive unless "
                  "--defence_adaptive).")
flags.DEFINE_integer("defence_steps", _A.defence_steps, "hmc: transitions per chain.", lower_bound=0)
flags.DEFINE_integer("defence_leapfrog_steps", _A.defence_leapfrog_steps, "hmc: leapfrog steps per transition.",
                     lower_bound=1)
flags.DEFINE_float("defence_step_size", _A.defence_step_size,
                   "hmc: leapfrog step size in the encoder's whitened coordinates (units of posterior std).")
flags.DEFINE_bool("defence_adaptive", _A.defence_adaptive,
                  "eps_ball output attacks through the HMC chain (fixed randomness): an adaptive evaluation.")

# SavedModel export (--mode=export).
_E = config_lib.ExportConfig()
flags.DEFINE_string("export_dir", _E.export_dir, "TF Serving model base folder (default: <workdir>/export).")
flags.DEFINE_string("model_name", _E.model_name, "Model folder under --export_dir (default: the --model family).")
flags.DEFINE_string("saved_model", _E.saved_model,
                    "--mode=attack on an exported SavedModel version folder instead of the workdir's checkpoint "
                    "(results still go to <workdir>/attacks/).")

# Evaluation (--mode=evaluate) and reports (--mode=report).
_V = config_lib.EvalConfig()
flags.DEFINE_integer("eval_images", _V.eval_images, "Held-out images for the fixed-noise ELBO, noise robustness "
                     "and the figures of --mode=evaluate.", lower_bound=1)
flags.DEFINE_enum("mig_method", _V.mig_method, config_lib.MIG_METHODS,
                  "MIG protocol: histogram (disentanglement_lib, 20 bins), exact (Chen et al. 2018) or both "
                  "(evaluation.json: mig is the histogram one, mig_methods holds both).")
flags.DEFINE_integer("mig_points", _V.mig_points, "Points drawn from the factor grid for MIG; 0: the full grid.",
                     lower_bound=0)
flags.DEFINE_integer("mig_bins", _V.mig_bins, "Bins per unit of the histogram MIG.", lower_bound=2)
flags.DEFINE_integer("mig_samples", _V.mig_samples, "Posterior samples of the exact MIG.", lower_bound=1)
flags.DEFINE_enum("mig_layers", _V.mig_layers, config_lib.MIG_LAYERS, "MIG of z^L only (top) or of every layer.")
flags.DEFINE_list("noise_scales", [f"{v:g}" for v in _V.noise_scales],
                  "Scales s of the input noise x + s*eps of the noise-robustness evaluation (Section 5.3).")
flags.DEFINE_list("workdirs", list(_V.workdirs), "--mode=report: run workdirs, or folders holding them; the report "
                  "is written to --workdir.")

# Keras Tuner searches (--mode=tune).
_U = config_lib.TuneConfig()
flags.DEFINE_enum("tuner", _U.tuner, config_lib.TUNERS, "Keras Tuner algorithm.")
flags.DEFINE_enum("tune_objective", _U.tune_objective, config_lib.TUNE_OBJECTIVES,
                  "val_elbo (held-out ELBO without beta), robustness (median -log p(x^t|z~) of a small latent "
                  "attack), combined (robustness above --tune_elbo_floor) or robustness_excess (the same attack's "
                  "median -log p(x^t|z~) above the target's own); all maximised.")
flags.DEFINE_integer("tune_max_trials", _U.tune_max_trials, "Trials of random/bayesian searches.", lower_bound=1)
flags.DEFINE_string("tune_directory", _U.tune_directory, "Folder of the tuner state (default: <workdir>/tuning).")
flags.DEFINE_string("tune_project", _U.tune_project, "Project (search) name under --tune_directory.")
flags.DEFINE_list("tune_models", list(_U.tune_models), "Model families searched over.")
flags.DEFINE_list("tune_betas", list(_U.tune_betas), "beta values to choose from, or lo:hi (log-uniform range).")
flags.DEFINE_integer("tune_max_layers", _U.tune_max_layers, "L searched from 1 to this (hierarchical families).",
                     lower_bound=1)
flags.DEFINE_list("tune_learning_rates", list(_U.tune_learning_rates), "Learning rates to choose from, or lo:hi.")
flags.DEFINE_list("tune_free_bits", list(_U.tune_free_bits), "Free-bits values to choose from.")
flags.DEFINE_list("tune_estimators", list(_U.tune_estimators), "Estimators to choose from: mws, mss.")
flags.DEFINE_float("tune_elbo_floor", _U.tune_elbo_floor, "ELBO floor (nats) of the combined objective.")
flags.DEFINE_integer("tune_attack_pairs", _U.tune_attack_pairs, "Pairs of the robustness objective's attack.",
                     lower_bound=1)
flags.DEFINE_integer("tune_attack_lambdas", _U.tune_attack_lambdas, "Lambda values (2^-8 ... 2^0) of that attack.",
                     lower_bound=1)
flags.DEFINE_integer("tune_attack_iterations", _U.tune_attack_iterations, "L-BFGS iterations of that attack.",
                     lower_bound=1)

FLAGS = flags.FLAGS


def _registry_names():
  from seatbelt_tf import data, models, nn  # pylint: disable=g-import-not-at-top
  return {"dataset": data.DATASETS, "model": models.MODELS, "network": nn.NETWORKS}


def expand_flagfiles(argv, _seen=None):
  """Inlines `--flagfile=` arguments, resolving nested relative paths against the including file's folder.

  Raises:
    app.UsageError: for a missing or circular flagfile.
  """
  seen = _seen or ()
  out = []
  for arg in argv:
    if arg.startswith("--flagfile=") or arg.startswith("-flagfile="):
      path = arg.split("=", 1)[1]
      base = os.path.dirname(seen[-1]) if seen else os.getcwd()
      candidates = [path] if os.path.isabs(path) else [os.path.join(base, path), os.path.abspath(path)]
      found = next((p for p in candidates if os.path.isfile(p)), None)
      if found is None:
        raise app.UsageError(f"Flagfile not found: {path} (looked in {', '.join(candidates)}).")
      found = os.path.abspath(found)
      if found in seen:
        raise app.UsageError(f"Flagfile {found} includes itself (through {' -> '.join(seen)}).")
      try:
        with open(found, encoding="utf-8") as f:
          lines = [ln.strip() for ln in f if ln.strip() and not ln.strip().startswith(("#", "//"))]
      except (UnicodeDecodeError, OSError) as e:
        raise app.UsageError(f"Flagfile {found} cannot be read as text ({type(e).__name__}: {e}); a flagfile "
                             "holds one --name=value per line.") from None
      for line in lines:
        if not line.startswith("-"):
          raise app.UsageError(f"{found}: malformed line {line!r}; every line must look like --name=value.")
      out.extend(expand_flagfiles(lines, seen + (found,)))
    else:
      out.append(arg)
  return out


def shadowed_flags(argv, same=lambda name, a, b: a == b):
  """Flags given directly on the command line and then set again, to another value, by a later --flagfile: a list
  of (name, direct value, flagfile, its value). absl keeps a flag's last value, so such a direct flag would be
  silently ignored (e.g. `--mode=attack --flagfile=<workdir>/flags.cfg` trains: flags.cfg records --mode=train).
  `argv` as for `expand_flagfiles` (its errors are raised as there); `same(name, a, b)` says whether two spellings
  are one value (default: the same text)."""
  return _shadowed([(arg, expand_flagfiles([arg])) for arg in argv], same)


def _shadowed(pieces, same):
  """`shadowed_flags` of the command-line arguments already expanded: [(argument, its expansion)]."""
  direct, shadowed = {}, []
  for arg, expanded in pieces:
    if arg.startswith(("--flagfile=", "-flagfile=")):
      for line in expanded:
        name, _, value = line.lstrip("-").partition("=")
        if name in direct and not same(name, direct[name], value):
          shadowed.append((name, direct[name], arg.split("=", 1)[1], value))
        direct.pop(name, None)
    elif arg.startswith("-") and "=" in arg:
      name, _, value = arg.lstrip("-").partition("=")
      direct[name] = value
  return shadowed


def _settings_from_flags():
  """The `RunConfig` of the parsed flags, validated by `RunConfig.validate` (plain Python: no TensorFlow yet)."""
  if not FLAGS.workdir:
    raise app.UsageError("--workdir is required: the folder for checkpoints and results.")
  fields = set(config_lib.RunConfig(workdir="x").flat())
  try:
    return config_lib.RunConfig.from_flat({name: FLAGS[name].value for name in fields}).validate()
  except ValueError as e:
    raise app.UsageError(str(e)) from e


def _check_registry_names():
  """Refuses a --dataset, --model or --network that is not in its registry (importing them loads TensorFlow)."""
  for name, registry in _registry_names().items():
    if FLAGS[name].value not in registry:
      raise app.UsageError(f"Unknown --{name}={FLAGS[name].value!r}: choose one of {', '.join(sorted(registry))}.")


def config_from_flags():
  """The `RunConfig` described by the parsed flags, validated."""
  config = _settings_from_flags()
  _check_registry_names()
  return config


# --mode -> the module of seatbelt_tf.modes whose function of the same name runs it (imported on use, so a launch
# loads only its own mode's dependencies).
MODES = {mode: f"seatbelt_tf.modes.{mode}" for mode in config_lib.MODES}


# What --mode=attack writes under <workdir>/attacks/, per --attack_kind (printed after the run).
ATTACK_OUTPUTS = {
    "lambda_sweep": "attack_results.json, adversarial_inputs.npz, grid_*.png, distortion_*.png",
    "eps_ball": "eps_ball_results.json, eps_ball_inputs.npz, eps_ball_*.png, grid_eps_ball_*.png",
    "margin": "margin_results.json, margins.png",
}


def run_mode(config):
  """Runs `config.mode` on `config` (a validated `RunConfig`) and returns the mode's results dict."""
  module = importlib.import_module(MODES[config.mode])
  return getattr(module, config.mode)(config)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}.")
  # TensorFlow logs every checkpoint write at INFO (through absl and its own logger); keep the progress bar
  # readable unless the user asked for a verbosity.
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
    std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)
  # Settings that plain Python can check are refused before TensorFlow's seconds of start-up.
  config = _settings_from_flags()
  startup.import_tensorflow_quietly()  # (TensorFlow's benign start-up lines dropped, real errors kept)
  _check_registry_names()
  try:
    results = run_mode(config)
  except (ValueError, FileNotFoundError, FloatingPointError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  workdir = os.path.abspath(config.workdir)
  print(json.dumps({k: v for k, v in results.items() if k != "kl_units"}, indent=2, sort_keys=True))
  if config.mode == "tune":
    print(f"\nSearch: {results['project_dir']} (trials.md, trials.csv); train the best trial with\n"
          f"  python -m seatbelt_tf.launch --flagfile={results['best_cfg']}")
    return 0
  if config.mode == "report":
    print(f"\nReport: {results['report']} ({len(results['figures'])} figures beside it)")
    return 0
  print(f"\nOutputs in {workdir}:\n  results.json  held-out metrics and per-unit KLs (kl_units)\n"
        "  checkpoints/  model and optimizer state\n"
        f"  tensorboard/  logs (tensorboard --logdir {os.path.join(workdir, 'tensorboard')})\n"
        f"  flags.cfg     relaunch with --flagfile={os.path.join(workdir, 'flags.cfg')}"
        + ("\n  evaluation/   evaluation.json (ELBO, MIG, noise robustness, weight norms), noise.npz, figures"
           if config.mode == "evaluate" else "")
        + (f"\n  attacks/      {ATTACK_OUTPUTS[config.attack.attack_kind]}"
           + (", defence_hmc.json" if config.attack.defence == "hmc" else "") if config.mode == "attack" else "")
        + (f"\n  SavedModel    {results['export_path']} (serve it: see README, 'Serving')"
           if config.mode == "export" else ""))
  return 0


USAGE = """usage: python -m seatbelt_tf.launch --flagfile=configs/<file>.cfg [--mode=MODE] --workdir=DIR [--flag=value ...]
       (or: seatbelt-launch ...)

Trains hierarchical disentangled VAEs (vae, beta_tcvae, beta_tcdlgm, seatbelt), attacks them, evaluates, exports and
tunes them. Flagfiles live in configs/ (base.cfg, quickstart.cfg, one per model family); later flags override
earlier ones. Modes: train (default), evaluate, attack, export, report, tune. README.md has the details.

  python -m seatbelt_tf.launch --flagfile=configs/quickstart.cfg
  python -m seatbelt_tf.launch --flagfile=configs/seatbelt.cfg --layers=3 --beta=10 --workdir=runs/sb_L3_b10
  python -m seatbelt_tf.launch --flagfile=runs/sb_L3_b10/flags.cfg --mode=attack
"""

# --help lists the flags in these groups, in this order (every flag is in exactly one; tests check it).
HELP_GROUPS = (
    ("every mode", ("mode", "workdir", "flagfile", "verbose", "seed")),
    ("train: data", ("dataset", "data_dir", "manual_dir", "grayscale", "bad_images", "eval_examples")),
    ("train: model", ("model", "network", "latent_dim", "beta", "estimator", "free_bits", "beta_warmup_steps",
                      "layers", "z_sizes", "h_sizes")),
    ("train: optimisation", ("batch_size", "learning_rate", "train_steps", "steps_per_epoch", "steps_per_execution",
                             "eval_batch_size", "jit_compile", "keep_checkpoints", "on_nonfinite",
                             "clip_grad_norm")),
    ("evaluate and report", ("eval_images", "mig_method", "mig_points", "mig_bins", "mig_samples", "mig_layers",
                             "noise_scales", "workdirs")),
    ("attack", ("attack_pairs", "attack_lambdas", "attack_modes", "attack_layers", "attack_optimizer",
                "attack_backend", "attack_starts", "attack_max_iterations", "attack_neighbour_rounds", "attack_objective_draws",
                "attack_seed", "attack_vary", "attack_fix")),
    ("attacks beyond the paper", ("attack_kind", "attack_epsilons", "attack_pgd_steps", "attack_random_starts",
                                  "attack_margin_r", "attack_margin_epsilon_max", "attack_margin_bisections",
                                  "defence", "defence_steps", "defence_leapfrog_steps", "defence_step_size",
                                  "defence_adaptive")),
    ("export (and --saved_model for evaluate/attack)", ("export_dir", "model_name", "saved_model")),
    ("tune", ("tuner", "tune_objective", "tune_max_trials", "tune_directory", "tune_project", "tune_models",
              "tune_betas", "tune_max_layers", "tune_learning_rates", "tune_free_bits", "tune_estimators",
              "tune_elbo_floor", "tune_attack_pairs", "tune_attack_lambdas", "tune_attack_iterations")),
    ("distribute", ("strategy", "devices", "attack_shards", "attack_shard_index", "attack_merge")),
)
HELP_ARGS = ("--help", "-h", "--helpfull", "--helpshort", "-?")


def help_text():
  """The usage header and every flag of this module, grouped by mode."""
  lines = [USAGE]
  for title, names in HELP_GROUPS:
    lines.append(f"{title}:")
    for name in names:
      if name == "flagfile":
        lines.append("  --flagfile=FILE  Read flags from FILE (may include other flagfiles; relative paths resolve "
                     "against the including file).")
        continue
      flag = FLAGS[name]
      default = flag.default_as_str if flag.default is not None else "none"
      lines.append(f"  --{name}  {flag.help} (default: {default})")
    lines.append("")
  lines.append("absl's own flags (logging): --helpfull_absl.")
  return "\n".join(lines)


def _same_value(name, a, b):
  """Whether two command-line spellings are one value of flag `name` (--beta=4 and --beta=4.0)."""
  if name not in FLAGS:
    return a == b
  try:
    return FLAGS[name].parser.parse(a) == FLAGS[name].parser.parse(b)
  except (ValueError, TypeError):
    return a == b


def _parse(argv):
  if any(arg in HELP_ARGS for arg in argv[1:]):
    print(help_text())
    sys.exit(0)
  if "--helpfull_absl" in argv[1:]:
    argv = [a if a != "--helpfull_absl" else "--helpfull" for a in argv]
  try:
    pieces = [(arg, expand_flagfiles([arg])) for arg in argv]  # each flagfile read once, for both uses
    parsed = FLAGS([line for _, expanded in pieces for line in expanded])
    shadowed = _shadowed(pieces[1:], _same_value)
    if shadowed:
      raise app.UsageError(" ".join(
          f"--{name}={value} comes before --flagfile={path}, which sets --{name}={later}: the last value counts, so "
          f"--{name}={value} would be ignored. Put it after the flagfile." for name, value, path, later in shadowed))
    return parsed
  except flags.Error as e:
    print(f"error: {e}\nPass --helpfull to see every flag.", file=sys.stderr)
    sys.exit(2)
  except app.UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def run():
  """Console-script entry point."""
  app.run(main, flags_parser=_parse)


if __name__ == "__main__":
  run()
