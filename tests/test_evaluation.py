"""The evaluation suite (--mode=evaluate), its measures against direct computations, the same numbers on an
export, and multi-run reports (--mode=report)."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from seatbelt_tf import attacks, config as config_lib, data, evaluation, models
from seatbelt_tf.modes import attack as attack_mode
from seatbelt_tf.modes import evaluate as evaluate_mode
from seatbelt_tf.modes import export as export_mode
from seatbelt_tf.modes import report as report_mode
from seatbelt_tf.modes import train as train_mode
from seatbelt_tf.evaluation import report as report_lib
from seatbelt_tf.evaluation import units


def _model(name="seatbelt", layers=2):
  keras.utils.set_random_seed(0)
  kw = {"network": "tiny_mlp", "dataset_size": 1000}
  if models.is_hierarchical(name):
    kw.update(layers=layers, z_sizes=(10, 8, 6)[-layers:], h_sizes=(16, 14))
  else:
    kw.update(latent_dim=4)
  model = models.build_model(name, **kw)
  model.build()
  return model


def _images(n=6):
  return data.ProceduralDSprites().images(np.arange(0, 737280, 737280 // n)[:n]).astype(np.float32)


@pytest.mark.parametrize("name,layers", [("beta_tcvae", 1), ("seatbelt", 2), ("beta_tcdlgm", 2)])
def test_measures_against_direct_computations(name, layers):
  model = _model(name, layers)
  fns = attacks.ModelFns(model)
  x = _images()
  elbo = evaluation.fixed_noise_elbo(fns, x, seed=3, batch_size=4)  # two batches
  rng = np.random.default_rng(3)
  noise = [tf.constant(rng.standard_normal((len(x), d)).astype(np.float32)) for d in model.layer_sizes]
  terms = model.attack_terms(tf.constant(x), tf.constant(x), noise)
  assert elbo["elbo"] == pytest.approx(float(tf.reduce_mean(terms["reconstruction"] - terms["kl"])), rel=1e-5)
  # Noise scale 0 scores the clean images with the same kind of draw; a huge scale makes log p(x|z*) worse.
  robust = evaluation.noise_robustness(fns, x, (0.0, 5.0), (0.0, 1.0), seed=3)
  assert set(robust) == {0.0, 5.0} and robust[0.0].shape == (len(x),)
  rng = np.random.default_rng(4)  # noise_robustness draws eps from seed 3, the posterior samples from seed 4
  rng_noise = [tf.constant(rng.standard_normal((len(x), d)).astype(np.float32)) for d in model.layer_sizes]
  clean = model.attack_terms(tf.constant(x), tf.constant(x), rng_noise)["reconstruction"]
  np.testing.assert_allclose(robust[0.0], clean, rtol=1e-5)
  norms = evaluation.weight_norms(model)
  encoder = [model.encoder] + list(getattr(model, "up", []))
  expected = np.sqrt(sum(np.sum(np.square(v.numpy())) for layer in encoder for v in layer.trainable_weights
                         if v.name == "kernel"))
  assert norms["encoder"] == pytest.approx(expected, rel=1e-6) and norms["decoder"] > 0
  samples = evaluation.samples(fns, 5, seed=1)
  assert samples.shape == (5, 64, 64, 1) and samples.min() >= 0 and samples.max() <= 1
  trav = evaluation.traversals(fns, x[0], values=np.array([-1.0, 0.0, 1.0]))
  assert trav.shape == (model.layer_sizes[-1], 3, 64, 64, 1)
  loc = model.posterior_layers(tf.constant(x[:1]))[-1][0]
  np.testing.assert_allclose(trav[0, 1], model.generate(tf.tensor_scatter_nd_update(loc, [[0, 0]], [0.0]))[0],
                             atol=1e-5)


def test_active_units_count_each_layer_s_units_above_the_threshold_in_layer_order():
  kls = {"10": [0.2, 0.0], "2": [0.1, 0.1000001, 5.0], "1": [0.0, 0.001, 0.05, 0.0999]}
  assert units.ACTIVE_UNIT_KL == 0.1
  assert [layer for layer, _ in units.by_layer(kls)] == ["1", "2", "10"] and units.by_layer(kls)[2][1] == [0.2, 0.0]
  assert units.active_units(kls) == [0, 2, 1]  # layers 1, 2, 10 in numeric order; exactly 0.1 is not above it
  assert units.active_units(kls, threshold=0.0) == [3, 3, 1]
  assert units.active_units({"1": np.zeros(10)}) == [0]  # every posterior the prior: a fully collapsed layer
  assert units.active_units(None) is None and units.active_units({}) is None  # not recorded


def _evaluated_workdir(tmp_path, name="w", **overrides):
  from conftest import tiny_config
  config = tiny_config(tmp_path / name, **overrides)
  train_mode.train(config)
  settings = {"mode": "evaluate", "eval_images": 40, "mig_points": 1500, "noise_scales": "0.2,1"}
  return config_lib.RunConfig.from_flat({**config.flat(), **settings}).validate()


def test_evaluate_mode_on_a_checkpoint_and_on_its_export(tmp_path):
  config = _evaluated_workdir(tmp_path, model="seatbelt", layers=2)
  summary = evaluate_mode.evaluate(config)
  folder = os.path.join(config.workdir, "evaluation")
  figures = ["reconstructions.png", "samples.png", "traversals.png", "kl_activation.png", "noise.png"]
  assert sorted(os.listdir(folder)) == sorted(["evaluation.json", "noise.npz", *figures])
  for figure in figures:
    assert os.path.getsize(os.path.join(folder, figure)) > 5000
  result = json.load(open(os.path.join(folder, "evaluation.json")))
  assert set(result["noise"]) == {"0", "0.2", "1"} and result["eval_images"] == 40
  assert 0.0 <= result["mig"]["mig"] <= 1.0 and result["mig"]["num_points"] == 1500
  assert set(result["mig"]["per_factor"]) == set(data.ProceduralDSprites.factor_names)
  assert result["weight_norms"]["encoder"] > 0 and summary["evaluation"]["mig"] == result["mig"]["mig"]
  assert os.path.isfile(os.path.join(config.workdir, "results.json"))
  # The same suite on the export: identical held-out images, seeds and numbers (weight norms need the model).
  exported = export_mode.export(config_lib.RunConfig.from_flat({**config.flat(), "mode": "export"}).validate())
  other = config_lib.RunConfig.from_flat({**config.flat(), "workdir": str(tmp_path / "of_export"),
                                          "saved_model": exported["export_path"], "mig_method": "both",
                                          "mig_samples": 300}).validate()
  evaluate_mode.evaluate(other)
  served = json.load(open(os.path.join(other.workdir, "evaluation", "evaluation.json")))
  assert served["elbo"]["elbo"] == pytest.approx(result["elbo"]["elbo"], rel=1e-4)
  assert served["mig"]["mig"] == pytest.approx(result["mig"]["mig"], abs=1e-6)
  # --mig_method=both: the histogram protocol under "mig" (as by default) and both protocols under "mig_methods".
  assert set(served["mig_methods"]) == {"histogram", "exact"} and served["mig"] == served["mig_methods"]["histogram"]
  assert served["mig_methods"]["exact"]["method"] == "exact" and 0.0 <= served["mig_methods"]["exact"]["mig"] <= 1.0
  for scale in result["noise"]:
    assert served["noise"][scale]["median"] == pytest.approx(result["noise"][scale]["median"], rel=1e-4)
  assert "weight_norms" not in served
  with pytest.raises(ValueError, match="mig_method='kde'"):
    config_lib.RunConfig.from_flat({**config.flat(), "mig_method": "kde"}).validate()


def test_mig_of_a_dataset_without_factors_is_refused():
  source = data.ProceduralDSprites()
  source.factor_sizes = ()
  from seatbelt_tf import metrics
  with pytest.raises(ValueError, match="no ground-truth factors"):
    metrics.compute_mig(lambda x: [(x, x)], source)


def test_report_over_runs_of_two_betas_with_attacks(tmp_path):
  runs, attack_summaries = [], None
  for beta in (1, 4):
    config = _evaluated_workdir(tmp_path / "runs", name=f"sb_beta{beta}", model="seatbelt", layers=2, beta=beta)
    evaluate_mode.evaluate(config)
    attacked = attack_mode.attack(config_lib.RunConfig.from_flat({
        **config.flat(), "mode": "attack", "attack_pairs": 2, "attack_lambdas": 2, "attack_max_iterations": 5,
        "attack_modes": "latent", "attack_starts": "input"}).validate())
    runs.append(config.workdir)
    attack_summaries = attack_summaries if beta > 1 else attacked["attacks"]
  vae = _evaluated_workdir(tmp_path / "runs", name="vae", model="vae", beta=1)  # trained only: listed as such
  out = str(tmp_path / "report")
  summary = report_mode.report(config_lib.RunConfig.from_flat(
      {**vae.flat(), "mode": "report", "workdir": out, "workdirs": str(tmp_path / "runs")}).validate())
  assert summary["runs"] == 3
  text = open(os.path.join(out, "report.md")).read()
  for heading in ("## Runs", "## ELBO against β", "## Adversarial attacks", "## MIG at z^L", "## Robustness to input",
                  "## Weight norms", "## Attack grids"):
    assert heading in text
  for figure in summary["figures"]:
    assert os.path.getsize(os.path.join(out, figure)) > 5000 and f"]({figure})" in text
  assert {"elbo_vs_beta.png", "attack_latent_all.png", "attack_latent_all_bars.png",
          "noise_seatbelt.png"} <= set(summary["figures"])
  assert "**Caveat: 3 of 3 runs saw fewer than 10 epochs" in text  # tiny runs: a few hundred images each
  assert "| `vae` | VAE, \\|z\\|=4 | 1 |" in text and "| no | no |" in text
  records = json.load(open(os.path.join(runs[0], "attacks", "attack_results.json")))
  medians = report_lib.attack_medians(records)
  assert f"{medians[('latent', 'all')]['delta']:.4g}" in text
  floor = {p: np.median([r["target_own_nll"] for r in records if r["pair"] == p]) for p in (0, 1)}  # per pair
  excess = np.median([r["target_nll"] - floor[r["pair"]] for r in records])
  assert medians[("latent", "all")]["excess"] == pytest.approx(excess, rel=1e-12)
  row = [line for line in text.splitlines() if line.startswith("| `sb_beta1` | latent (all) |")][0]
  assert row.split(" | ")[5] == f"{excess:.1f}"
  assert attack_summaries["latent_all"]["median_excess_nll"] == pytest.approx(excess, rel=1e-12)
  older = report_lib.attack_medians([{k: v for k, v in r.items() if k != "target_own_nll"} for r in records])
  assert older[("latent", "all")]["floor"] == "smallest_lambda"  # a latent sweep from before the floor was kept
  with pytest.raises(FileNotFoundError, match="No run workdirs"):
    evaluation.write_report([str(tmp_path / "report")], str(tmp_path / "r2"))
  with pytest.raises(ValueError, match="needs --workdirs"):
    config_lib.RunConfig.from_flat({**vae.flat(), "mode": "report"}).validate()


def test_heat_map_labels_tell_close_cells_apart_and_panels_share_a_scale(tmp_path, monkeypatch):
  """The issue's case: two cells at 153.65 and 153.80 were both labelled 154 in opposite colours. Labels now carry
  enough decimals for the scale, and panels given one scale draw one colour range."""
  from seatbelt_tf.evaluation import plots  # pylint: disable=g-import-not-at-top
  assert format(153.65, plots.cell_format(153.65, 153.80)) != format(153.80, plots.cell_format(153.65, 153.80))
  assert plots.cell_format(100.0, 300.0) == ".0f" and plots.cell_format(0.0, 1.0) == ".2f"
  ranges = []
  real_imshow = plots.pyplot().Axes.imshow
  monkeypatch.setattr(plots.pyplot().Axes, "imshow",
                      lambda self, *a, **k: (ranges.append((k["vmin"], k["vmax"])), real_imshow(self, *a, **k))[1])
  panels = [("a", [1, 4], [2], np.array([[153.65], [153.80]])), ("b", [1, 4], [2], np.array([[150.0], [160.0]]))]
  plots.heat_maps(str(tmp_path / "h.png"), panels, "beta", "L", "t", scales=[(150.0, 160.0)] * 2)
  assert ranges == [(150.0, 160.0), (150.0, 160.0)]
  plots.bars(str(tmp_path / "b.png"), ["VAE", "beta-TCVAE"], [("median", [1.0, float("nan")])], "t")
  assert os.path.getsize(tmp_path / "b.png") > 3000
