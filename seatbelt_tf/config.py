"""Run settings as frozen dataclasses (no TensorFlow import), shared by the launcher and the library.

Field names equal the launcher's flag names, so a config round-trips through a flagfile (`to_flagfile`) and the
file written into a workdir relaunches the same run.
"""

import dataclasses
import json
from typing import Optional

MODES = ("train", "evaluate", "attack", "export", "report", "tune")
ATTACK_MODES = ("latent", "output")  # paper eqs. 13-15 and 12
ATTACK_LAYER_SETS = ("all", "first", "top")  # latent attacks: every layer (eq. 15), z^1 (eq. 14), z^L
ATTACK_OPTIMIZERS = ("lbfgs", "scipy", "tfp")
ATTACK_BACKENDS = ("auto", "numpy", "tf")  # where the lbfgs driver's per-step algebra runs (attacks/lbfgs.py)
ATTACK_STARTS = ("input", "target")
# The batched attack driver's version (attacks/lbfgs.py), kept in every attack record it makes: bumped when a change
# moves its end points, so that a campaign attacks again the runs an older driver attacked
# (launch/collect_reproduction.py). 1: before 2026-12-04; 2: kink retries, kept history and hopeless-search stops
# (docs/BENCHMARKS.md, seventh measurement).
ATTACK_DRIVER_VERSION = 2
ATTACK_KINDS = ("lambda_sweep", "eps_ball", "margin")  # the paper's sweep; fixed-budget PGD; r-robustness margins
DEFENCES = ("none", "hmc")
STRATEGIES = ("default", "mirrored", "multi_worker")
JIT_CHOICES = ("auto", "true", "false")  # auto: XLA where benchmarks/train_throughput.py measured it faster


@dataclasses.dataclass(frozen=True)
class DataConfig:
  dataset: str = "dsprites_procedural"
  data_dir: Optional[str] = None
  manual_dir: Optional[str] = None
  grayscale: bool = False
  eval_examples: int = 10000
  bad_images: str = "fail"  # image_folder: a file that does not decode fails the load, or is skipped and counted


NONFINITE_CHOICES = ("stop", "skip")
BAD_IMAGE_CHOICES = ("fail", "skip")
H_SIZES = (1024, 512, 256, 128, 64)  # hidden widths of the stochastic-layer MLPs, paper eq. C.8
DEFAULT_Z_SIZES = (96, 48, 24, 12, 6)  # layer widths for dSprites, Chairs, 3D Faces, paper eqs. C.1-C.3


def as_tuple(value, name, cast=str):
  """A tuple from a tuple/list or a comma-separated string (a flag's value), items cast; None stays None."""
  if value is None:
    return None
  items = value.split(",") if isinstance(value, str) else list(value)
  try:
    return tuple(cast(str(v).strip()) for v in items if str(v).strip())
  except ValueError:
    shown = value if isinstance(value, str) else ",".join(str(v) for v in value)
    raise ValueError(f"{name}={shown!r} must be a comma-separated list of integers, e.g. 96,48,24,12,6") from None


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Model settings. `latent_dim` sizes the single-layer models (vae, beta_tcvae); the hierarchical models
  (beta_tcdlgm, seatbelt) take the last `layers` entries of `z_sizes` (None: the dataset's list, paper eqs.
  C.1-C.4) and hidden widths from `h_sizes` (eq. C.8)."""
  model: str = "beta_tcvae"
  network: str = "conv"
  latent_dim: int = 10
  beta: float = 6.0
  estimator: str = "mws"
  free_bits: float = 0.0
  beta_warmup_steps: int = 0  # linear warm-up of the loss's beta from 1 (objectives.warmup_beta); 0 = off
  layers: int = 1
  z_sizes: Optional[tuple] = None
  h_sizes: tuple = H_SIZES

  def __post_init__(self):
    object.__setattr__(self, "z_sizes", as_tuple(self.z_sizes, "z_sizes", int))
    object.__setattr__(self, "h_sizes", as_tuple(self.h_sizes, "h_sizes", int))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  batch_size: int = 64
  learning_rate: float = 1e-3
  train_steps: int = 2000
  steps_per_epoch: int = 200
  steps_per_execution: int = 1
  eval_batch_size: int = 500
  seed: int = 0
  jit_compile: str = "auto"
  keep_checkpoints: int = 3
  verbose: int = 1
  strategy: str = "default"  # tf.distribute: default, mirrored, multi_worker (seatbelt_tf.distribute)
  devices: tuple = ()  # mirrored: devices to replicate over (default: every local GPU, else the CPU)
  on_nonfinite: str = "stop"  # a NaN/Inf loss: stop (NonFiniteLossError) or skip the batch and count it
  clip_grad_norm: float = 0.0  # Adam's global_clipnorm; 0 = off (docs/BENCHMARKS.md, "Training health")

  def __post_init__(self):
    object.__setattr__(self, "devices", as_tuple(self.devices, "devices"))


@dataclasses.dataclass(frozen=True)
class AttackConfig:
  """The attack protocol of the paper (Section 4): pairs x lambdas x modes x layer sets."""
  attack_pairs: int = 10
  attack_lambdas: int = 50
  attack_modes: tuple = ATTACK_MODES
  attack_layers: tuple = ("all",)
  attack_optimizer: str = "lbfgs"
  attack_backend: str = "auto"  # lbfgs driver algebra: numpy on the host, tf next to the objective; auto: tf on a GPU
  attack_starts: tuple = ATTACK_STARTS
  attack_max_iterations: int = 200
  attack_neighbour_rounds: int = 3  # restarts from the neighbouring lambdas' end points (attacks/protocol.py)
  attack_objective_draws: int = 4  # output attack: fixed noise draws its objective (eq. 12) averages over
  attack_seed: int = 0
  attack_vary: str = ""  # single-factor attack (Appendix H.1): pairs that differ only in this factor
  attack_fix: tuple = ()  # with attack_vary: factors held at a class in both images, "name=class" items
  attack_shards: int = 1  # split the pairs over this many processes (launch/attack_shards.sh)
  attack_shard_index: int = 0  # this process's shard: pairs index, index + shards, ...
  attack_merge: bool = False  # assemble the shards' outputs into attack_results.json (and draw the figures)
  attack_kind: str = "lambda_sweep"  # lambda_sweep (the paper), eps_ball (fixed L2 budgets), margin (r-robustness)
  attack_epsilons: tuple = ()  # eps_ball radii; empty: 10 geometric from 1/256 to 1/4 of the box diagonal
  attack_pgd_steps: int = 100  # eps_ball and margin: PGD steps per start
  attack_random_starts: int = 1  # eps_ball and margin: random starts in the ball besides the deterministic ones
  attack_margin_r: float = 0.0  # margin: damage threshold ||g(x+d) - g(x)||_2; 0: 1/10 of the box diagonal
  attack_margin_epsilon_max: float = 0.0  # margin: largest radius tried; 0: 1/4 of the box diagonal
  attack_margin_bisections: int = 8
  defence: str = "none"  # hmc: re-score the attack's adversarial inputs through an HMC defence (attacks/defence.py)
  defence_steps: int = 10
  defence_leapfrog_steps: int = 5
  defence_step_size: float = 0.1
  defence_adaptive: bool = False  # eps_ball output attacks through the defence's chain (fixed randomness)

  def __post_init__(self):
    for name in ("attack_modes", "attack_layers", "attack_starts", "attack_fix"):
      object.__setattr__(self, name, as_tuple(getattr(self, name), name))
    object.__setattr__(self, "attack_epsilons", as_tuple(self.attack_epsilons, "attack_epsilons", float))


@dataclasses.dataclass(frozen=True)
class ExportConfig:
  """SavedModel export (--mode=export): `<export_dir>/<model_name>/<version>/`."""
  export_dir: str = ""  # empty: <workdir>/export
  model_name: str = ""  # empty: the model family (--model)
  saved_model: str = ""  # --mode=attack on an export (<export_dir>/<model_name>/<version>) instead of a checkpoint


MIG_METHODS = ("histogram", "exact", "both")
MIG_LAYERS = ("top", "all")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """The evaluation suite (--mode=evaluate) and reports (--mode=report)."""
  eval_images: int = 1000  # held-out images for the fixed-noise ELBO, noise robustness and figures
  mig_method: str = "histogram"  # histogram (disentanglement_lib), exact (Chen et al. 2018) or both
  mig_points: int = 10000  # points drawn from the factor grid; 0: the full grid
  mig_bins: int = 20
  mig_samples: int = 10000  # posterior samples of the exact protocol
  mig_layers: str = "top"  # top (z^L) or all
  noise_scales: tuple = (0.1, 0.3, 1.0)
  workdirs: tuple = ()  # --mode=report: run workdirs, or folders of them

  def __post_init__(self):
    object.__setattr__(self, "noise_scales", as_tuple(self.noise_scales, "noise_scales", float))
    object.__setattr__(self, "workdirs", as_tuple(self.workdirs, "workdirs"))


TUNERS = ("random", "bayesian", "hyperband")
TUNE_OBJECTIVES = ("val_elbo", "robustness", "combined", "robustness_excess")


@dataclasses.dataclass(frozen=True)
class TuneConfig:
  """Keras Tuner searches (--mode=tune; seatbelt_tf.tuning)."""
  tuner: str = "random"
  tune_objective: str = "val_elbo"
  tune_max_trials: int = 10
  tune_directory: str = ""  # empty: <workdir>/tuning
  tune_project: str = "search"
  tune_models: tuple = ("beta_tcvae", "seatbelt")
  tune_betas: tuple = ("1:10",)  # values to choose from, or one lo:hi item for a log-uniform range
  tune_max_layers: int = 5
  tune_learning_rates: tuple = ("0.001",)
  tune_free_bits: tuple = ("0",)
  tune_estimators: tuple = ("mws",)
  tune_elbo_floor: float = -1e9  # nats: the combined objective's ELBO floor (default: no floor)
  tune_attack_pairs: int = 3
  tune_attack_lambdas: int = 3
  tune_attack_iterations: int = 30

  def __post_init__(self):
    for name in ("tune_models", "tune_betas", "tune_learning_rates", "tune_free_bits", "tune_estimators"):
      object.__setattr__(self, name, as_tuple(getattr(self, name), name))


# Settings that define what a workdir holds: resuming with any other value would mix incompatible checkpoints.
IDENTITY_FIELDS = ("dataset", "data_dir", "grayscale", "eval_examples", "model", "network", "latent_dim", "beta",
                   "estimator", "free_bits", "beta_warmup_steps", "layers", "z_sizes", "h_sizes", "batch_size",
                   "learning_rate", "seed")


@dataclasses.dataclass(frozen=True)
class RunConfig:
  workdir: str
  mode: str = "train"
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  train: TrainConfig = TrainConfig()
  attack: AttackConfig = AttackConfig()
  export: ExportConfig = ExportConfig()
  evaluation: EvalConfig = EvalConfig()
  tune: TuneConfig = TuneConfig()

  def flat(self):
    """All settings as one flat dict keyed by flag name."""
    out = {"mode": self.mode, "workdir": self.workdir}
    for part in (self.data, self.model, self.train, self.attack, self.export, self.evaluation, self.tune):
      out.update(dataclasses.asdict(part))
    return out

  @classmethod
  def from_flat(cls, values):
    """Builds a config from a flat dict keyed by flag name (unknown keys are an error)."""
    values = dict(values)
    parts = {}
    for key, part_cls in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig),
                          ("attack", AttackConfig), ("export", ExportConfig), ("evaluation", EvalConfig),
                          ("tune", TuneConfig)):
      names = {f.name for f in dataclasses.fields(part_cls)}
      parts[key] = part_cls(**{k: values.pop(k) for k in list(values) if k in names})
    workdir = values.pop("workdir")
    mode = values.pop("mode", "train")
    if values:
      raise ValueError(f"Unknown settings: {', '.join(sorted(values))}.")
    return cls(workdir=workdir, mode=mode, **parts)

  @classmethod
  def from_args(cls, args, **overrides):
    """Builds a validated config from `--name=value` arguments (flagfiles already expanded, e.g. by
    `launch.expand_flagfiles`) and then `overrides` by flag name, without absl: values are parsed by the type of
    each setting's default (lists parse themselves). For tests and benchmarks; the command line goes through
    `launch`."""
    values = dict(cls(workdir="").flat())
    for arg in args:
      name, value = arg.lstrip("-").split("=", 1)
      default = values.get(name)
      if isinstance(default, bool):
        values[name] = value.lower() in ("1", "true", "t", "yes")
      else:
        values[name] = type(default)(value) if isinstance(default, (int, float)) else value
    values.update(overrides)
    return cls.from_flat(values).validate()

  def identity(self):
    flat = self.flat()
    return {k: flat[k] for k in IDENTITY_FIELDS}

  def identity_differences(self, saved):
    """{field: (saved value, this config's)} of the identity fields where `saved` (a workdir's recorded
    config.json, as a dict) describes another run; empty when it is this run."""
    theirs = RunConfig.from_flat({**saved, "workdir": self.workdir}).identity()
    return {k: (theirs.get(k), v) for k, v in self.identity().items() if theirs.get(k) != v}

  def to_json(self):
    return json.dumps(self.flat(), indent=2, sort_keys=True)

  def to_flagfile(self):
    """A flagfile that relaunches this run (`--data_dir` omitted when unset)."""
    lines = []
    for key, value in self.flat().items():
      if value is None:
        continue
      if isinstance(value, tuple):
        value = ",".join(str(v) for v in value)
      lines.append(f"--{key}={value}")
    return "\n".join(lines) + "\n"

  def validate(self):
    """Raises ValueError naming every invalid or contradictory setting and how to fix it."""
    d, m, t = self.data, self.model, self.train
    problems = []
    if self.mode not in MODES:
      problems.append(f"mode={self.mode!r} is not one of {', '.join(MODES)}")
    if not self.workdir:
      problems.append("workdir is required: pass --workdir=<folder for checkpoints and results>")
    if d.eval_examples < 1:
      problems.append(f"eval_examples={d.eval_examples} must be >= 1")
    if m.latent_dim < 1:
      problems.append(f"latent_dim={m.latent_dim} must be >= 1")
    if m.beta < 0:
      problems.append(f"beta={m.beta} must be >= 0")
    if m.free_bits < 0:
      problems.append(f"free_bits={m.free_bits} must be >= 0 (nats per latent unit)")
    if m.beta_warmup_steps < 0:
      problems.append(f"beta_warmup_steps={m.beta_warmup_steps} must be >= 0 (0: no warm-up, the paper's setting)")
    elif m.beta_warmup_steps > t.train_steps:
      problems.append(f"beta_warmup_steps={m.beta_warmup_steps} is longer than train_steps={t.train_steps}: the run "
                      f"would end before its loss reaches beta={m.beta}; shorten the warm-up or train longer")
    if m.layers < 1:
      problems.append(f"layers={m.layers} must be >= 1 (stochastic layers of a hierarchical model)")
    if m.z_sizes is not None:
      if not m.z_sizes or min(m.z_sizes) < 1:
        problems.append(f"z_sizes={m.z_sizes} must list positive layer widths, bottom (nearest the data) first")
      elif m.layers > len(m.z_sizes):
        problems.append(f"layers={m.layers} needs at least {m.layers} entries in z_sizes={list(m.z_sizes)}")
    if not m.h_sizes or min(m.h_sizes) < 1:
      problems.append(f"h_sizes={m.h_sizes} must list positive hidden widths")
    elif m.z_sizes is not None and len(m.h_sizes) < len(m.z_sizes) - 1:
      problems.append(f"h_sizes={list(m.h_sizes)} needs one width per pair of adjacent z_sizes "
                      f"({len(m.z_sizes) - 1} for z_sizes={list(m.z_sizes)})")
    if t.batch_size < 2:
      problems.append(f"batch_size={t.batch_size} must be >= 2: the minibatch estimators of q(z) compare "
                      "each sample with the rest of its batch")
    if t.learning_rate <= 0:
      problems.append(f"learning_rate={t.learning_rate} must be > 0")
    if not t.clip_grad_norm >= 0:
      problems.append(f"clip_grad_norm={t.clip_grad_norm} must be >= 0 (0 turns clipping off)")
    for name in ("train_steps", "steps_per_epoch", "steps_per_execution", "eval_batch_size", "keep_checkpoints"):
      if getattr(t, name) < 1:
        problems.append(f"{name}={getattr(t, name)} must be >= 1")
    if t.steps_per_execution >= 1 and t.steps_per_epoch % t.steps_per_execution:
      problems.append(f"steps_per_epoch={t.steps_per_epoch} must be a multiple of "
                      f"steps_per_execution={t.steps_per_execution}")
    if t.steps_per_execution >= 1 and t.train_steps % t.steps_per_execution:
      problems.append(f"train_steps={t.train_steps} must be a multiple of "
                      f"steps_per_execution={t.steps_per_execution}")
    if t.jit_compile not in JIT_CHOICES:
      problems.append(f"jit_compile={t.jit_compile!r} must be one of {', '.join(JIT_CHOICES)}")
    if t.strategy not in STRATEGIES:
      problems.append(f"strategy={t.strategy!r} must be one of {', '.join(STRATEGIES)}")
    if t.on_nonfinite not in NONFINITE_CHOICES:
      problems.append(f"on_nonfinite={t.on_nonfinite!r} must be one of {', '.join(NONFINITE_CHOICES)}")
    elif t.on_nonfinite == "skip" and t.strategy != "default":
      problems.append(f"on_nonfinite=skip needs --strategy=default (one device); got strategy={t.strategy}")
    if self.data.bad_images not in BAD_IMAGE_CHOICES:
      problems.append(f"bad_images={self.data.bad_images!r} must be one of {', '.join(BAD_IMAGE_CHOICES)}")
    if t.devices and t.strategy != "mirrored":
      problems.append(f"devices={','.join(t.devices)} needs --strategy=mirrored")
    if t.verbose not in (0, 1, 2):
      problems.append(f"verbose={t.verbose} must be 0 (silent), 1 (progress bar) or 2 (one line per epoch)")
    a = self.attack
    for name in ("attack_pairs", "attack_lambdas", "attack_max_iterations"):
      if getattr(a, name) < 1:
        problems.append(f"{name}={getattr(a, name)} must be >= 1")
    for name, allowed in (("attack_modes", ATTACK_MODES), ("attack_layers", ATTACK_LAYER_SETS),
                          ("attack_starts", ATTACK_STARTS)):
      values = getattr(a, name)
      if not values or set(values) - set(allowed):
        problems.append(f"{name}={','.join(values)} must be a non-empty list of {', '.join(allowed)}")
    if a.attack_neighbour_rounds < 0:
      problems.append(f"attack_neighbour_rounds={a.attack_neighbour_rounds} must be >= 0 (0: no neighbour restarts)")
    if a.attack_objective_draws < 1:
      problems.append(f"attack_objective_draws={a.attack_objective_draws} must be >= 1 (fixed noise draws the output "
                      "attack's objective averages over; 4 is the protocol's)")
    if a.attack_optimizer not in ATTACK_OPTIMIZERS:
      problems.append(f"attack_optimizer={a.attack_optimizer!r} must be one of {', '.join(ATTACK_OPTIMIZERS)}")
    if a.attack_backend not in ATTACK_BACKENDS:
      problems.append(f"attack_backend={a.attack_backend!r} must be one of {', '.join(ATTACK_BACKENDS)}")
    elif a.attack_backend != "auto" and a.attack_optimizer != "lbfgs":
      problems.append(f"attack_backend={a.attack_backend} needs --attack_optimizer=lbfgs: it chooses where the "
                      f"batched driver's algebra runs, and {a.attack_optimizer} has its own (leave it at auto)")
    if a.attack_shards < 1 or not 0 <= a.attack_shard_index < max(1, a.attack_shards):
      problems.append(f"attack_shard_index={a.attack_shard_index} must be in 0..attack_shards-1 "
                      f"(attack_shards={a.attack_shards})")
    elif a.attack_shards > a.attack_pairs:
      problems.append(f"attack_shards={a.attack_shards} exceeds attack_pairs={a.attack_pairs}: a shard would have "
                      "no pair")
    if a.attack_kind not in ATTACK_KINDS:
      problems.append(f"attack_kind={a.attack_kind!r} must be one of {', '.join(ATTACK_KINDS)}")
    elif a.attack_kind != "lambda_sweep" and (a.attack_shards > 1 or a.attack_merge):
      problems.append(f"attack_kind={a.attack_kind} runs in one process: --attack_shards/--attack_merge split the "
                      "lambda sweep only")
    if any(not e > 0 for e in a.attack_epsilons):
      problems.append(f"attack_epsilons={','.join(map(str, a.attack_epsilons))} must all be > 0 (L2 radii)")
    for name in ("attack_pgd_steps", "attack_margin_bisections", "defence_leapfrog_steps"):
      if getattr(a, name) < 1:
        problems.append(f"{name}={getattr(a, name)} must be >= 1")
    for name in ("attack_random_starts", "defence_steps", "attack_margin_r", "attack_margin_epsilon_max"):
      if getattr(a, name) < 0:
        problems.append(f"{name}={getattr(a, name)} must be >= 0")
    if a.defence not in DEFENCES:
      problems.append(f"defence={a.defence!r} must be one of {', '.join(DEFENCES)}")
    if not a.defence_step_size > 0:
      problems.append(f"defence_step_size={a.defence_step_size} must be > 0")
    if a.defence_adaptive and (a.defence != "hmc" or a.attack_kind != "eps_ball" or "output" not in a.attack_modes):
      problems.append("defence_adaptive needs --defence=hmc, --attack_kind=eps_ball and the output attack mode "
                      "(the defence acts after the encoder, so a latent attack cannot see it)")
    if a.defence != "none" and a.attack_kind == "margin":
      problems.append("defence=hmc re-scores adversarial inputs against targets: use it with --attack_kind="
                      "lambda_sweep or eps_ball")
    if a.attack_fix and not a.attack_vary:
      problems.append(f"attack_fix={','.join(a.attack_fix)} needs --attack_vary (the factor the attack changes)")
    for item in a.attack_fix:
      name, _, value = item.partition("=")
      if not name or not value.strip().isdigit():
        problems.append(f"attack_fix item {item!r} must be name=class, e.g. shape=2")
    e = self.evaluation
    for name in ("eval_images", "mig_bins", "mig_samples"):
      if getattr(e, name) < 1:
        problems.append(f"{name}={getattr(e, name)} must be >= 1")
    if e.mig_points < 0:
      problems.append(f"mig_points={e.mig_points} must be >= 0 (0: the full factor grid)")
    if e.mig_method not in MIG_METHODS:
      problems.append(f"mig_method={e.mig_method!r} must be one of {', '.join(MIG_METHODS)}")
    if e.mig_layers not in MIG_LAYERS:
      problems.append(f"mig_layers={e.mig_layers!r} must be one of {', '.join(MIG_LAYERS)}")
    if any(v < 0 for v in e.noise_scales):
      problems.append(f"noise_scales={','.join(map(str, e.noise_scales))} must be >= 0")
    if self.mode == "report" and not e.workdirs:
      problems.append("--mode=report needs --workdirs=<run workdir or folder of runs>,...; the report goes to "
                      "--workdir")
    u = self.tune
    if u.tuner not in TUNERS:
      problems.append(f"tuner={u.tuner!r} must be one of {', '.join(TUNERS)}")
    if u.tune_objective not in TUNE_OBJECTIVES:
      problems.append(f"tune_objective={u.tune_objective!r} must be one of {', '.join(TUNE_OBJECTIVES)}")
    for name in ("tune_max_trials", "tune_max_layers", "tune_attack_pairs", "tune_attack_lambdas",
                 "tune_attack_iterations"):
      if getattr(u, name) < 1:
        problems.append(f"{name}={getattr(u, name)} must be >= 1")
    if not u.tune_project or "/" in u.tune_project:
      problems.append(f"tune_project={u.tune_project!r} must be a plain folder name")
    if not u.tune_models:
      problems.append("tune_models must name at least one model family")
    if set(u.tune_estimators) - {"mws", "mss"} or not u.tune_estimators:
      problems.append(f"tune_estimators={','.join(u.tune_estimators)} must be a non-empty list of mws, mss")
    for name in ("tune_betas", "tune_learning_rates", "tune_free_bits"):
      values = getattr(u, name)
      try:
        if len(values) == 1 and ":" in values[0]:
          lo, hi = (float(v) for v in values[0].split(":", 1))
          if not 0 < lo < hi:
            raise ValueError
        elif not values or any(float(v) < 0 for v in values):
          raise ValueError
      except ValueError:
        problems.append(f"{name}={','.join(values)} must be non-negative numbers to choose from, or one lo:hi "
                        "item (0 < lo < hi) for a log-uniform range")
    if problems:
      raise ValueError("Invalid settings:\n  - " + "\n  - ".join(problems))
    return self
