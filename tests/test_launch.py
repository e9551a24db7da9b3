"""End to end: tiny train + evaluate of every model, resume, workdir safety, flagfiles and bad input."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import app

from seatbelt_tf import config as config_lib
from seatbelt_tf import launch, runs
from seatbelt_tf.modes import evaluate as evaluate_mode
from seatbelt_tf.modes import train as train_mode

from conftest import REPO, tiny_config


@pytest.mark.parametrize("model,network", [("vae", "tiny_mlp"), ("beta_tcvae", "tiny_conv")])
def test_tiny_train_then_evaluate(tiny, model, network):
  config = tiny(model=model, network=network)
  results = train_mode.train(config)
  workdir = config.workdir
  on_disk = json.load(open(os.path.join(workdir, "results.json")))
  assert on_disk == results
  for name in ("loss", "elbo", "reconstruction", "kl", "mi", "tc", "dim_kl"):
    assert np.isfinite(results[name])
  assert results["step"] == 6 and results["num_examples_seen"] == 6 * 16
  assert results["wall_time_s"] > 0
  # The loop's own speed: steps 4-6 (the second epoch; the first, with tracing, is left out), 16 images each; that
  # epoch took less than the whole run, so its rate is above 48 images over the run's wall time.
  assert results["train_images_per_s"] > 3 * 16 / results["wall_time_s"]
  assert sorted(os.listdir(workdir)) == ["checkpoints", "config.json", "flags.cfg", "results.json", "tensorboard"]
  assert tf.io.gfile.glob(os.path.join(workdir, "tensorboard", "train", "events.out.tfevents.*"))
  evaluated = evaluate_mode.evaluate(config_lib.RunConfig.from_flat({**config.flat(), "mode": "evaluate"}))
  for name in ("elbo", "loss", "kl", "tc"):  # same checkpoint, same evaluation seed: same numbers
    assert evaluated[name] == pytest.approx(results[name], rel=1e-5)
  # --mode=evaluate rewrites results.json and keeps what only the training loop knew (its speed).
  assert evaluated["train_images_per_s"] == results["train_images_per_s"]
  assert json.load(open(os.path.join(workdir, "results.json")))["train_images_per_s"] == results["train_images_per_s"]


def _weights(workdir):
  reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints"))
  names = sorted(n for n in reader.get_variable_to_shape_map() if n.startswith("model/"))
  return {n: reader.get_tensor(n) for n in names}


@pytest.mark.parametrize("model_kw", [{}, {"model": "seatbelt", "layers": 3}])
def test_resume_continues_the_same_trajectory(tmp_path, model_kw):
  straight = tiny_config(tmp_path / "straight", train_steps=6, **model_kw)
  straight_results = train_mode.train(straight)
  split = tiny_config(tmp_path / "split", train_steps=3, **model_kw)
  train_mode.train(split)
  resumed = train_mode.train(tiny_config(tmp_path / "split", train_steps=6, **model_kw))
  assert resumed["step"] == 6
  a, b = _weights(straight.workdir), _weights(tmp_path / "split")
  assert a.keys() == b.keys() and len(a) > 10
  for name in a:
    np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)
  # A finished run is not trained again (its training records stay); a process that saw fewer than two epoch ends
  # reports no loop speed.
  again = train_mode.train(tiny_config(tmp_path / "split", train_steps=6, **model_kw))
  assert again["step"] == 6 and again["train_images_per_s"] is None
  assert resumed["train_images_per_s"] is None and straight_results["train_images_per_s"] > 0
  straight_again = train_mode.train(straight)
  assert straight_again["train_images_per_s"] == straight_results["train_images_per_s"]


def test_workdir_of_another_configuration_is_refused(tiny):
  train_mode.train(tiny())
  with pytest.raises(runs.WorkdirMismatchError, match="beta: workdir has 4.0, requested 8.0"):
    train_mode.train(tiny(beta=8.0))
  with open(os.path.join(tiny().workdir, "config.json")) as f:
    assert json.load(f)["beta"] == 4.0  # the recorded settings are untouched


def test_evaluate_without_checkpoint_is_refused(tiny):
  with pytest.raises(FileNotFoundError, match="--mode=train"):
    evaluate_mode.evaluate(tiny(mode="evaluate"))


def test_config_round_trips_through_its_flagfile(tmp_path):
  config = tiny_config(tmp_path / "w", beta=2.5, jit_compile="true", data_dir="/data")
  path = tmp_path / "flags.cfg"
  path.write_text(config.to_flagfile())
  argv = launch.expand_flagfiles(["prog", f"--flagfile={path}"])
  values = dict(a.lstrip("-").split("=", 1) for a in argv[1:])
  assert values["beta"] == "2.5" and values["jit_compile"] == "true" and values["workdir"] == str(tmp_path / "w")
  assert set(values) == {k for k, v in config.flat().items() if v is not None}  # unset z_sizes: the dataset default


def test_hierarchy_settings_round_trip_through_the_flag_parser(tmp_path):
  config = tiny_config(tmp_path / "w", model="seatbelt", layers=3, z_sizes="10,8,6,4", h_sizes=[32, 16, 8])
  assert config.model.z_sizes == (10, 8, 6, 4) and config.model.h_sizes == (32, 16, 8)
  path = tmp_path / "flags.cfg"
  path.write_text(config.to_flagfile())
  assert "--z_sizes=10,8,6,4" in path.read_text()
  try:
    launch.FLAGS(launch.expand_flagfiles(["prog", f"--flagfile={path}"]))
    assert launch.config_from_flags() == config
  finally:
    launch.FLAGS.unparse_flags()
  default = tiny_config(tmp_path / "d", model="seatbelt")
  assert default.model.z_sizes is None  # the dataset's widths (eq. C.1 for dSprites)
  assert config_lib.RunConfig.from_flat(json.loads(config.to_json())) == config


def test_nested_flagfiles_resolve_against_the_including_file(tmp_path, monkeypatch):
  (tmp_path / "cfg").mkdir()
  (tmp_path / "cfg" / "base.cfg").write_text("--beta=3\n# comment\n")
  (tmp_path / "cfg" / "run.cfg").write_text("--flagfile=base.cfg\n--latent_dim=7\n")
  monkeypatch.chdir(tmp_path)  # not the flagfiles' folder
  assert launch.expand_flagfiles(["p", "--flagfile=cfg/run.cfg", "--seed=1"]) == [
      "p", "--beta=3", "--latent_dim=7", "--seed=1"]
  (tmp_path / "cfg" / "loop.cfg").write_text("--flagfile=loop.cfg\n")
  with pytest.raises(app.UsageError, match="includes itself"):
    launch.expand_flagfiles(["p", "--flagfile=cfg/loop.cfg"])
  with pytest.raises(app.UsageError, match="not found"):
    launch.expand_flagfiles(["p", "--flagfile=cfg/missing.cfg"])
  (tmp_path / "cfg" / "bad.cfg").write_text("beta 3\n")
  with pytest.raises(app.UsageError, match="malformed line"):
    launch.expand_flagfiles(["p", "--flagfile=cfg/bad.cfg"])


def test_invalid_settings_name_every_problem(tmp_path):
  with pytest.raises(ValueError) as e:
    tiny_config(tmp_path, steps_per_execution=4, steps_per_epoch=6, beta=-1.0, free_bits=-2.0,
                beta_warmup_steps=10 ** 6)
  message = str(e.value)
  for fragment in ("steps_per_epoch=6 must be a multiple of steps_per_execution=4", "beta=-1.0", "free_bits",
                   "beta_warmup_steps=1000000 is longer than train_steps"):
    assert fragment in message


def _launch(*args, cwd=REPO):
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
  return subprocess.run([sys.executable, "-m", "seatbelt_tf.launch", *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=300)


def test_command_line_runs_the_tiny_config_from_any_directory(tmp_path):
  workdir = tmp_path / "cli"
  proc = _launch(f"--flagfile={os.path.join(REPO, 'configs', 'tiny.cfg')}", f"--workdir={workdir}",
                 cwd=str(tmp_path))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"Outputs in {workdir}" in proc.stdout
  results = json.load(open(workdir / "results.json"))
  assert results["step"] == 6
  flags_cfg = (workdir / "flags.cfg").read_text()
  assert "--model=beta_tcvae" in flags_cfg and "--network=tiny_conv" in flags_cfg
  # The workdir's own flagfile relaunches the run: evaluation of the same checkpoint.
  proc = _launch(f"--flagfile={workdir / 'flags.cfg'}", "--mode=evaluate", cwd=str(tmp_path))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.load(open(workdir / "results.json"))["mode"] == "evaluate"
  assert (workdir / "flags.cfg").read_text() == flags_cfg  # evaluation leaves the training flagfile alone


BAD_COMMAND_LINES = [
    (["--model=vae", "--flagfile=configs/tiny.cfg"],  # (e.g. --mode=attack before a workdir's flags.cfg)
     "--model=vae comes before --flagfile=configs/tiny.cfg, which sets --model=beta_tcvae: the last value counts"),
    (["--model=seatbelt_xl"], "Unknown --model='seatbelt_xl': choose one of beta_tcdlgm, beta_tcvae, seatbelt, vae"),
    (["--dataset=celeba"], "Unknown --dataset='celeba'"),
    (["--network=resnet"], "Unknown --network='resnet'"),
    (["--estimator=exact"], "value should be one of <mws|mss>"),
    (["--batch_size=1"], "batch_size"),
    (["--steps_per_execution=4"], "must be a multiple of steps_per_execution=4"),
    (["--dataset=dsprites"], "The dsprites dataset is not available offline"),
    (["--dataset=dsprites", "--data_dir=/nonexistent"], "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"),
    (["--dataset=shapes3d", "--manual_dir=/nonexistent"], "--manual_dir=/nonexistent lacks: 3dshapes.h5"),
    (["--dataset=image_folder"], "--dataset=image_folder needs --data_dir"),
    (["--workdir="], "--workdir is required"),
    (["--layers=3"], "--layers=3 needs a hierarchical model (beta_tcdlgm, seatbelt)"),
    (["--model=seatbelt", "--layers=6"], "layers=6 must be between 1 and len(z_sizes)=5"),
    (["--model=seatbelt", "--z_sizes=8,x"], "z_sizes='8,x' must be a comma-separated list of integers"),
    (["--model=seatbelt", "--layers=3", "--z_sizes=8,4"], "layers=3 needs at least 3 entries in z_sizes=[8, 4]"),
    (["--flagfile=/nonexistent.cfg"], "Flagfile not found"),
    (["stray"], "Unexpected arguments: stray"),
]

# Runs each command line through the console entry point (`launch.run`, what `python -m seatbelt_tf.launch` calls)
# in one process, flags reset to their defaults in between: one TensorFlow start-up for all of them instead of one
# each (~10 s each on a 2-core machine). Prints one JSON line per command line: its exit code and what it wrote to
# stderr, with the traceback of anything that escaped the launcher.
_BAD_INPUT_DRIVER = """
import io, json, sys, traceback
from seatbelt_tf import launch
for argv in json.loads(sys.argv[1]):
  launch.FLAGS.unparse_flags()
  sys.argv, sys.stderr = ["launch", *argv], io.StringIO()
  try:
    launch.run()
    code = 0
  except SystemExit as e:
    code = e.code
  except BaseException:
    traceback.print_exc()
    code = "raised"
  err, sys.stderr = sys.stderr.getvalue(), sys.__stderr__
  print(json.dumps({"code": code, "stderr": err}), flush=True)
"""


@pytest.fixture(scope="module")
def bad_command_line_results(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("bad_input") / "w"
  argvs = [["--flagfile=configs/tiny.cfg", f"--workdir={workdir}", *args] for args, _ in BAD_COMMAND_LINES]
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
  proc = subprocess.run([sys.executable, "-c", _BAD_INPUT_DRIVER, json.dumps(argvs)], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)
  lines = [line for line in proc.stdout.splitlines() if line.startswith('{"code"')]
  assert proc.returncode == 0 and len(lines) == len(argvs), proc.stderr[-3000:]
  return [json.loads(line) for line in lines], workdir


@pytest.mark.parametrize("case", range(len(BAD_COMMAND_LINES)),
                         ids=[" ".join(args) for args, _ in BAD_COMMAND_LINES])
def test_command_line_refuses_bad_input_with_a_clear_message(bad_command_line_results, case):
  results, workdir = bad_command_line_results
  message = BAD_COMMAND_LINES[case][1]
  assert results[case]["code"] not in (0, None, "raised"), results[case]
  assert message in results[case]["stderr"], results[case]["stderr"][-2000:]
  assert "Traceback" not in results[case]["stderr"]
  assert not os.path.exists(os.path.join(workdir, "checkpoints"))  # no command line trained anything


@pytest.mark.parametrize("args,message", [
    (["--workdir="], "--workdir is required"),
    (["--learning_rate=0"], "learning_rate=0.0 must be > 0"),
    (["--model=seatbelt", "--layers=3", "--z_sizes=8,4"], "layers=3 needs at least 3 entries in z_sizes=[8, 4]"),
])
def test_settings_plain_python_can_check_are_refused_before_tensorflow_loads(tmp_path, args, message):
  """A typo in a setting costs the user a fraction of a second, not TensorFlow's start-up: the launcher runs
  `RunConfig.validate` before it imports TensorFlow (the registry names, which need the models, are checked
  after)."""
  script = ("import sys; from seatbelt_tf import launch\n"
            f"sys.argv = ['launch', '--flagfile=configs/tiny.cfg', '--workdir={tmp_path / 'w'}', *{args!r}]\n"
            "try:\n  launch.run()\nexcept SystemExit as e:\n"
            "  print('exit', e.code, 'tensorflow' in sys.modules, file=sys.stderr)\n")
  proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert message in proc.stderr, proc.stderr[-2000:]
  assert "exit 1 False" in proc.stderr, proc.stderr[-2000:]
  assert not (tmp_path / "w").exists()


def test_train_steps_need_not_be_a_multiple_of_steps_per_epoch(tiny):
  results = train_mode.train(tiny(train_steps=5, steps_per_epoch=3))
  assert results["step"] == 5
  checkpoints = tf.train.get_checkpoint_state(os.path.join(tiny().workdir, "checkpoints"))
  assert checkpoints.model_checkpoint_path.endswith("ckpt-5")
  assert [os.path.basename(p) for p in checkpoints.all_model_checkpoint_paths] == ["ckpt-3", "ckpt-5"]


def test_subpackages_are_reachable_as_attributes_of_the_package():
  import seatbelt_tf  # pylint: disable=g-import-not-at-top
  for name in ("data", "models", "objectives", "metrics", "attacks", "evaluation", "serving", "runs", "modes"):
    assert getattr(seatbelt_tf, name).__name__ == f"seatbelt_tf.{name}"
  with pytest.raises(AttributeError, match="no attribute 'nothing'"):
    seatbelt_tf.nothing  # noqa: B018  (the attribute access is the test)


@pytest.mark.parametrize("overrides,message", [
    ({"model": "seatbelt", "layers": 9}, "layers=9"),
    ({"model": "beta_tcdlgm", "layers": 3, "h_sizes": "8"}, "h_sizes"),
    ({"model": "beta_tcvae", "layers": 2}, "needs a hierarchical model"),
    ({"model": "seatbelt", "layers": 2, "z_sizes": "6,0"}, "z_sizes"),
    ({"dataset": "image_folder", "data_dir": "/nonexistent/folder"}, "nonexistent"),
])
def test_a_rejected_setting_writes_nothing(tmp_path, overrides, message):
  """Every setting refused by the data or the model (not only by the flag checks) is refused before the first
  write: no workdir, config.json or flags.cfg is left behind (before, `--model=seatbelt --layers=9` left a
  config.json that then refused the corrected run as "a run with different settings")."""
  workdir = tmp_path / "run"
  with pytest.raises((ValueError, FileNotFoundError), match=message):
    train_mode.train(tiny_config(workdir, **overrides))
  assert not workdir.exists()


def test_help_exits_0_with_a_usage_header_and_every_flag_in_one_group():
  defined = {f.name for f in launch.FLAGS.get_flags_for_module(launch.__name__)}
  grouped = [name for _, names in launch.HELP_GROUPS for name in names if name != "flagfile"]
  assert sorted(grouped) == sorted(defined), set(grouped) ^ defined  # each flag exactly once
  for arg in ("--help", "--helpfull", "-h"):
    out = subprocess.run([sys.executable, "-m", "seatbelt_tf.launch", arg], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("usage: python -m seatbelt_tf.launch")
    for title, names in launch.HELP_GROUPS:
      assert f"\n{title}:\n" in out.stdout
      assert out.stdout.index(f"\n{title}:\n") < out.stdout.index(f"  --{names[0]}")


def test_the_progress_of_a_short_last_epoch_counts_its_own_steps(tmp_path, capsys):
  """7 steps at 3 per epoch: the log lines read 3/3, 3/3 and 1/1 (before: the last one said 3/3)."""
  train_mode.train(tiny_config(tmp_path / "run", train_steps=7, steps_per_epoch=3, verbose=2))
  counts = [line.split(" - ")[0] for line in capsys.readouterr().out.splitlines() if " - " in line and "/" in
            line.split(" - ")[0]]
  assert counts == ["3/3", "3/3", "1/1"], counts


def test_tensorflow_start_up_noise_is_dropped_and_real_errors_kept():
  from seatbelt_tf import startup  # pylint: disable=g-import-not-at-top
  cuinit = "E0000 00:00:1.5 1 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: UNKNOWN ERROR (303)"
  assert startup.benign(cuinit, gpu_machine=False) and not startup.benign(cuinit, gpu_machine=True)
  assert startup.benign("I0000 00:00:1.5 1 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
                        "not be used.")
  assert not startup.benign("E0000 00:00:1.5 1 some_op.cc:12] Could not open file: Permission denied")
  script = ("import sys; from seatbelt_tf import startup; tf = startup.import_tensorflow_quietly(); "
            "print('after', tf.__name__, file=sys.stderr)")
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120,
                       env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
  assert out.returncode == 0, out.stderr
  lines = [line for line in out.stderr.splitlines() if line.strip()]
  assert lines[-1] == "after tensorflow"
  noisy = [line for line in lines if startup.benign(line, gpu_machine=False)]
  assert not noisy, noisy


# ------------------------------------------------------------------ the quickstart's command lines
_SCRIPT_SETTINGS = ("RUNS", "STEPS", "NETWORK", "PAIRS", "LAMBDAS", "MIG_POINTS", "MIG_METHOD", "EVAL_IMAGES",
                    "EXTRA", "SEEDS", "ATTACK", "JOBS", "LAYER_MIG", "AFTER_CELL", "RECORDED", "BETAS", "LAYERS",
                    "ROOT", "SHARDS", "INDEX", "MERGE", "MERGE_ONLY", "WORKERS", "ROLE", "ORACLE_IP", "NAME", "FLAGS",
                    "CHUNK", "FREE_BITS", "DRY_RUN_CALLS")


def _dry_run(tmp_path, script, *args, **settings):
  """Runs launch/`script` (from `tmp_path`) with `python` replaced, on PATH and as $PYTHON, by a script that hands
  every launcher call to tests/launch_dry_run.py and skips every other Python call (the scripts' own tables over the
  results, which a dry run has not made), with the scripts' settings from the caller only: (the finished process,
  the accepted launcher calls as dicts {"argv", "config"})."""
  calls, bin_dir = tmp_path / "calls.jsonl", tmp_path / "bin"
  os.makedirs(bin_dir, exist_ok=True)
  fake = bin_dir / "python"
  fake.write_text(f'#!/usr/bin/env bash\nif [ "$1" = -m ] && [ "$2" = seatbelt_tf.launch ]; then shift 2; '
                  f'exec {sys.executable} {os.path.join(REPO, "tests", "launch_dry_run.py")} "$@"; fi\n'
                  'cat > /dev/null  # (a script on standard input)\n')
  fake.chmod(0o755)
  env = {k: v for k, v in os.environ.items() if k not in _SCRIPT_SETTINGS}
  env.update(PYTHON=str(fake), DRY_RUN_CALLS=str(calls), PATH=f"{bin_dir}:{os.environ['PATH']}", **settings)
  proc = subprocess.run(["bash", os.path.join(REPO, script), *args], cwd=tmp_path, env=env, capture_output=True,
                        text=True, timeout=300, stdin=subprocess.DEVNULL)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
  records = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
  # The names the launcher checks against its registries once TensorFlow is up (launch._check_registry_names).
  registries = launch._registry_names()  # pylint: disable=protected-access
  for record in records:
    for key, registry in registries.items():
      assert record["config"][key] in registry, (key, record["config"][key])
  return proc, records


def _stages(records):
  return [(r["config"]["mode"], os.path.basename(r["config"]["workdir"])) for r in records]


def test_every_launcher_call_of_the_quickstart_is_a_valid_command_line(tmp_path):
  """README's quickstart (its last step, launch/mini_paper.sh -> launch/paper.sh) with the launcher replaced by
  tests/launch_dry_run.py, which takes each command line as the launcher does before TensorFlow starts (absl flags,
  nested flagfiles, RunConfig.validate, the workdir's recorded settings) and leaves the files the script looks for
  instead of training: every call the real script makes is accepted, and they are the quickstart's (4 runs x train,
  evaluate, attack on the settings mini_paper.sh names, then one report over the 4). A flag renamed in the launcher
  but not in the scripts fails here in seconds, not after 10 minutes of quickstart."""
  readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
  quickstart = readme.split("<!-- quickstart-command -->", 1)[1].split("```")[1].strip()
  last = quickstart.split("&&")[-1].split()
  assert last[0].startswith("PYTHON=") and last[1:] == ["launch/mini_paper.sh"], quickstart
  root = tmp_path / "mini_paper"
  proc, records = _dry_run(tmp_path, last[1], ROOT=str(root))
  runs_ = [("vae_L1_beta1", "vae", 1, 1.0), ("beta_tcvae_L1_beta6", "beta_tcvae", 1, 6.0),
           ("seatbelt_L2_beta1", "seatbelt", 2, 1.0), ("seatbelt_L2_beta6", "seatbelt", 2, 6.0)]
  assert _stages(records) == \
      [(mode, name) for name, *_ in runs_ for mode in ("train", "evaluate", "attack")] + [("report", "report")]
  for (name, model, layers, beta), (train, evaluate, attack) in zip(runs_, zip(*[iter(records[:-1])] * 3)):
    for record in (train, evaluate, attack):
      c = record["config"]
      assert (c["workdir"], c["model"], c["layers"], c["beta"]) == (str(root / name), model, layers, beta)
      assert (c["network"], c["train_steps"], c["eval_examples"], c["dataset"]) == \
          ("mlp", 700, 5000, "dsprites_procedural")
    assert (evaluate["config"]["mig_points"], evaluate["config"]["eval_images"]) == (5000, 500)
    a = attack["config"]
    assert (a["attack_pairs"], a["attack_lambdas"], a["attack_modes"], a["attack_layers"]) == \
        (2, 6, ["latent", "output"], ["all"])
  assert records[-1]["config"]["workdirs"] == [str(root / name) for name, *_ in runs_]
  assert (root / "report" / "report.md").is_file() and "Report:" in proc.stdout


def test_every_launcher_call_of_paper_sh_s_grid_entries_is_a_valid_command_line(tmp_path):
  """The entries the quickstart does not use, dry-run as above: a beta-TC DLGM (its latent attack on z^1 and on every
  layer, eq. 14 and 15) at L = 3, a beta-TCVAE with its own |z|, seeds, the default conv network and protocol."""
  root = tmp_path / "paper"
  _, records = _dry_run(tmp_path, "launch/paper.sh", ROOT=str(root), RUNS="beta_tcdlgm:3:4 beta_tcvae:1:6:20",
                        SEEDS="0 1", STEPS="40", MIG_METHOD="both")
  names = ["beta_tcdlgm_L3_beta4_seed0", "beta_tcvae_z20_beta6_seed0", "beta_tcdlgm_L3_beta4_seed1",
           "beta_tcvae_z20_beta6_seed1"]
  assert _stages(records) == \
      [(mode, name) for name in names for mode in ("train", "evaluate", "attack")] + [("report", "report")]
  by_stage = {(os.path.basename(r["config"]["workdir"]), r["config"]["mode"]): r["config"] for r in records}
  for seed in (0, 1):
    dlgm, tcvae = (by_stage[(names[2 * seed + i], "attack")] for i in (0, 1))
    assert (dlgm["model"], dlgm["layers"], dlgm["beta"], dlgm["seed"]) == ("beta_tcdlgm", 3, 4.0, seed)
    assert (tcvae["model"], tcvae["latent_dim"], tcvae["beta"], tcvae["seed"]) == ("beta_tcvae", 20, 6.0, seed)
    assert dlgm["attack_layers"] == ["first", "all"] and tcvae["attack_layers"] == ["all"]
    for c in (dlgm, tcvae):
      assert (c["network"], c["train_steps"], c["attack_pairs"], c["attack_lambdas"]) == ("conv", 40, 10, 50)
    assert by_stage[(names[2 * seed], "evaluate")]["mig_method"] == "both"


def test_paper_sh_s_logs_keep_every_call_of_a_run_trained_on_to_the_next_budget(tmp_path):
  """A campaign cell trained on to its next budget (or resumed after a kill) runs the same stages again: each call's
  output goes under its own dated header in the run's logs, the earlier calls' output (training-health warnings,
  epoch lines) kept."""
  root = tmp_path / "paper"
  for steps in ("40", "80"):
    _, records = _dry_run(tmp_path, "launch/paper.sh", ROOT=str(root), RUNS="seatbelt:2:4", SEEDS="0", STEPS=steps,
                          ATTACK="0")
  # (the dry run's call record accumulates over the two runs)
  assert [r["config"]["train_steps"] for r in records if r["config"]["mode"] == "train"] == [40, 80]
  logs = root / "logs"
  for stage in ("train", "evaluate"):
    text = (logs / f"seatbelt_L2_beta4_seed0.{stage}.log").read_text()
    headers = re.findall(r"^== (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC: (\w+)$", text, flags=re.M)
    assert [name for _, name in headers] == [stage, stage], text
    assert headers[0][0] <= headers[1][0]


def test_every_launcher_call_of_the_other_scripts_is_a_valid_command_line(tmp_path):
  """launch/'s other scripts, dry-run as above with their documented settings made small: each runs to its end and
  every launcher call it makes is accepted, in the order the script's header describes. health_remeasure.sh's
  robustness stage reuses the beta = 1 beta-TCVAE of its ELBO stage as the vanilla VAE: the dry run's workdir check
  proves the two calls describe the same run."""
  configs = os.path.join(REPO, "configs")
  w = tmp_path / "w"
  _, records = _dry_run(tmp_path, "launch/train.sh", os.path.join(configs, "quickstart.cfg"), f"--workdir={w}/q")
  assert _stages(records) == [("train", "q")]
  _, records = _dry_run(tmp_path / "e", "launch/elbo_vs_beta.sh", ROOT=str(w / "e"), STEPS="40", SEEDS="0 1")
  families = ["beta_tcvae_L1", "seatbelt_L2", "seatbelt_L3", "seatbelt_L4", "beta_tcdlgm_L3"]
  assert _stages(records) == [("train", f"{f}_beta{b}_seed{s}") for s in (0, 1) for b in (1, 6) for f in families]
  _, records = _dry_run(tmp_path / "r", "launch/robustness.sh", ROOT=str(w / "r"), STEPS="40", FREE_BITS="0")
  assert _stages(records) == [(mode, name) for name in ("vae_L1_beta1_seed0", "beta_tcvae_L1_beta6_seed0",
                                                       "seatbelt_L4_beta6_seed0") for mode in ("train", "attack")]
  assert all(r["config"]["free_bits"] == 0.0 and r["config"]["attack_lambdas"] == 50 for r in records)
  # Re-run: each run resumes (a train call) and its attack is skipped; trained on (STEPS up), each is attacked again.
  for steps, attacked in (("40", False), ("80", True)):
    os.remove(tmp_path / "r" / "calls.jsonl")
    _, records = _dry_run(tmp_path / "r", "launch/robustness.sh", ROOT=str(w / "r"), STEPS=steps, FREE_BITS="0")
    assert [mode for mode, _ in _stages(records)] == (["train", "attack"] if attacked else ["train"]) * 3
  _, records = _dry_run(tmp_path / "h", "launch/health_remeasure.sh", ROOT=str(w / "h"), STEPS="40", SEEDS="0")
  elbo = [("train", f"{f}_beta{b}_seed0") for b in (1, 6)
          for f in ("beta_tcvae_L1", "seatbelt_L2", "seatbelt_L4", "beta_tcdlgm_L2")]
  robust = [(mode, name) for name in ("beta_tcvae_L1_beta1_seed0", "beta_tcvae_L1_beta6_seed0",
                                      "seatbelt_L4_beta6_seed0") for mode in ("train", "attack")]
  assert _stages(records) == elbo + robust
  _, records = _dry_run(tmp_path / "c", "launch/learning_curve.sh", ROOT=str(w / "c"), NAME="curve", STEPS="20",
                        CHUNK="10", FLAGS=f"--flagfile={configs}/beta_tcvae.cfg --beta=6 --free_bits=0")
  assert _stages(records) == [("train", "curve"), ("evaluate", "curve")] * 2
  assert [r["config"]["train_steps"] for r in records[::2]] == [10, 20]
  _, records = _dry_run(tmp_path / "s", "launch/attack_shards.sh", f"--flagfile={w}/q/flags.cfg", "--attack_pairs=4",
                        SHARDS="2")
  shards = [(r["config"]["attack_shard_index"], r["config"]["attack_merge"]) for r in records]
  assert _stages(records) == [("attack", "q")] * 3 and sorted(shards[:2]) == [(0, False), (1, False)]
  assert shards[2][1] and all(r["config"]["attack_shards"] == 2 for r in records)
  # A script's own mode or strategy holds over a workdir's flags.cfg, which records --mode=train and --strategy
  # (absl keeps a flag's last value: before 2026-12-03 these three scripts put theirs first, so the documented
  # `attack_shards.sh --flagfile=<workdir>/flags.cfg` re-evaluated the run three times and attacked nothing).
  for i, where in enumerate((f"{configs}/seatbelt.cfg", f"{w}/q/flags.cfg")):
    _, records = _dry_run(tmp_path / f"m{i}", "launch/multi_worker.sh", f"--flagfile={where}", f"--workdir={w}/m{i}",
                          WORKERS="localhost:1,localhost:2", INDEX="1")
    assert _stages(records) == [("train", f"m{i}")] and records[0]["config"]["strategy"] == "multi_worker"
    _, records = _dry_run(tmp_path / f"t{i}", "launch/tune_distributed.sh", f"--flagfile={where}",
                          f"--workdir={w}/t{i}", ROLE="worker", INDEX="0", ORACLE_IP="127.0.0.1")
    assert _stages(records) == [("tune", f"t{i}")]


def test_a_flag_before_a_flagfile_is_shadowed_only_when_the_file_sets_another_value(tmp_path):
  """launch.shadowed_flags: a direct flag counts as shadowed when a later flagfile (nested ones included) sets it to
  another value; one value spelt two ways (--beta=4 and 4.0, as the launcher parses them) is not, nor is a flag
  given again after the flagfile."""
  inner, outer = tmp_path / "inner.cfg", tmp_path / "outer.cfg"
  inner.write_text("--beta=4.0\n--model=seatbelt\n")
  outer.write_text("--flagfile=inner.cfg\n--layers=3\n")
  same = launch._same_value  # pylint: disable=protected-access
  assert launch.shadowed_flags(["--beta=4", f"--flagfile={outer}"], same=same) == []
  assert launch.shadowed_flags(["--beta=4", f"--flagfile={outer}"]) == [("beta", "4", str(outer), "4.0")]
  assert launch.shadowed_flags(["--model=vae", "--layers=3", f"--flagfile={outer}", "--model=vae"], same=same) == \
      [("model", "vae", str(outer), "seatbelt")]
  assert launch.shadowed_flags([f"--flagfile={outer}", "--model=vae", "--layers=2"], same=same) == []
