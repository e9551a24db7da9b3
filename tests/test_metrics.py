"""MIG (paper eq. J.1) on extreme cases, against brute-force references, and through the encoder front end."""

import math

import numpy as np
import pytest

from seatbelt_tf import data, metrics


def _grid(sizes):
  """Every combination of factor classes once: int [prod(sizes), K]."""
  return np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), -1).reshape(-1, len(sizes))


SIZES = (3, 6, 10, 8)  # a small full factor grid: 1440 points, independent uniform factors


def test_identity_codes_score_one_when_bins_resolve_every_class():
  factors = _grid(SIZES)
  result = metrics.mig(factors.astype(float), factors, num_bins=20)
  assert result["mig"] >= 0.99
  assert all(v >= 0.99 for v in result["per_factor"].values())
  assert result["best_unit"] == {f"factor_{k}": k for k in range(len(SIZES))}


def test_binning_caps_identity_codes_on_the_dsprites_grid():
  """With 20 bins, the 40 orientations merge pairwise: that factor scores exactly log 20 / log 40."""
  factors = data.dsprites.factors_from_indices(np.arange(0, 737280, 7))  # a strided sample of the grid
  result = metrics.mig(factors.astype(float), factors, num_bins=20,
                       factor_names=data.dsprites.FACTOR_NAMES)
  h = result["factor_entropy"]["orientation"]
  assert result["per_factor"]["orientation"] == pytest.approx(math.log(20) / h, abs=0.01)
  assert result["per_factor"]["shape"] >= 0.99 and result["per_factor"]["scale"] >= 0.99
  assert 0.85 <= result["mig"] <= 0.92
  assert metrics.mig(factors.astype(float), factors, num_bins=40)["mig"] >= 0.99


def test_constant_codes_score_zero():
  factors = _grid(SIZES)
  codes = np.ones((len(factors), 5))
  assert metrics.mig(codes, factors)["mig"] <= 0.05
  scales = np.ones_like(codes)
  assert metrics.mig(codes, factors, method="exact", scales=scales, num_samples=500)["mig"] <= 0.05


def test_duplicating_a_unit_closes_its_factors_gap():
  factors = _grid(SIZES)
  codes = factors.astype(float)
  duplicated = np.concatenate([codes, codes[:, 2:3]], axis=1)
  result = metrics.mig(duplicated, factors)
  assert result["per_factor"]["factor_2"] <= 0.01
  assert result["per_factor"]["factor_0"] >= 0.99  # the others are untouched
  scales = np.full_like(duplicated, 0.05)
  exact = metrics.mig(duplicated, factors, method="exact", scales=scales, num_samples=1440)
  assert exact["per_factor"]["factor_2"] <= 0.01
  assert exact["per_factor"]["factor_0"] >= 0.9


def _synthetic_codes(factors, rng):
  """Three codes of decreasing quality: axis-aligned, mixed by a 45-degree rotation of two pairs, pure noise."""
  z = (factors - factors.mean(0)) / factors.std(0)
  good = z + 0.05 * rng.standard_normal(z.shape)
  c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
  mix = np.eye(z.shape[1])
  mix[:2, :2] = [[c, -s], [s, c]]
  mix[2:4, 2:4] = [[0.9, 0.3], [-0.3, 0.9]]
  mixed = z @ mix.T + 0.05 * rng.standard_normal(z.shape)
  noise = rng.standard_normal(z.shape)
  return {"good": good, "mixed": mixed, "noise": noise}


def test_both_protocols_rank_three_codes_of_known_quality_the_same():
  factors = _grid(SIZES)
  codes = _synthetic_codes(factors, np.random.default_rng(0))
  hist = {k: metrics.mig(v, factors)["mig"] for k, v in codes.items()}
  exact = {k: metrics.mig(v, factors, method="exact", scales=np.full_like(v, 0.1), num_samples=1440)["mig"]
           for k, v in codes.items()}
  assert hist["good"] > hist["mixed"] > hist["noise"]
  assert exact["good"] > exact["mixed"] > exact["noise"]
  assert hist["noise"] < 0.05 and exact["noise"] < 0.05


def test_discrete_mutual_info_matches_a_brute_force_sum():
  rng = np.random.default_rng(1)
  a = rng.integers(0, 4, size=(500, 2))
  b = np.stack([a[:, 0] // 2 + rng.integers(0, 2, 500), rng.integers(0, 3, 500)], 1)
  got = metrics.discrete_mutual_info(a, b)
  for j in range(2):
    for k in range(2):
      ref = 0.0
      for u in np.unique(a[:, j]):
        for v in np.unique(b[:, k]):
          p = np.mean((a[:, j] == u) & (b[:, k] == v))
          if p > 0:
            ref += p * np.log(p / (np.mean(a[:, j] == u) * np.mean(b[:, k] == v)))
      assert got[j, k] == pytest.approx(ref, abs=1e-12)
  assert metrics.discrete_entropy(b[:, 1:])[0] == pytest.approx(metrics.discrete_mutual_info(b[:, 1:], b[:, 1:])[0, 0])


def test_log_mixture_density_matches_numpy_across_blocks():
  rng = np.random.default_rng(2)
  z = rng.standard_normal((37, 3))
  loc, scale = rng.standard_normal((101, 3)), rng.uniform(0.2, 2.0, (101, 3))
  log_n = -0.5 * ((z[:, None] - loc[None]) / scale[None]) ** 2 - np.log(scale)[None] - 0.5 * np.log(2 * np.pi)
  ref = np.log(np.exp(log_n).mean(axis=1))
  got = metrics.log_mixture_density(z, loc, scale, block_elements=50)  # many small blocks
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("s_count,n_count,dim,block_elements,shapes", [
    (37, 101, 3, 1 << 24, (64, 128, 1)),  # small: one 64 x 128 call, not a padded 256 x ~2*10^4 one
    (5, 3, 2, 1 << 24, (32, 128, 1)),  # the smallest call
    (300, 2500, 2, 1 << 24, (256, 1024, 4)),  # two sample blocks, one padded chunk of 4 component blocks
    (300, 2500, 2, 1 << 19, (256, 1024, 1)),  # three chunks of one block, the last one padded
])
def test_log_mixture_density_matches_numpy_for_every_call_shape(s_count, n_count, dim, block_elements, shapes):
  """Each call shape `block_shapes` picks (small problems shrink the call; large ones keep the full program, e.g.
  the full dSprites grid at D = 10) gives the numpy mixture log-density."""
  assert metrics.block_shapes(s_count, n_count, dim, block_elements) == shapes
  assert metrics.block_shapes(10000, 737280, 10) == (256, 1024, 6)
  rng = np.random.default_rng(s_count)
  z = rng.standard_normal((s_count, dim))
  loc, scale = rng.standard_normal((n_count, dim)), rng.uniform(0.2, 2.0, (n_count, dim))
  log_n = -0.5 * ((z[:, None] - loc[None]) / scale[None]) ** 2 - np.log(scale)[None] - 0.5 * np.log(2 * np.pi)
  ref = np.log(np.exp(log_n).mean(axis=1))
  got = metrics.log_mixture_density(z, loc, scale, block_elements=block_elements)
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_exact_mutual_info_of_a_noiseless_code_is_the_factor_entropy():
  """z = v_k exactly (tiny posterior scale): I(z; v_k) -> H(v_k)."""
  factors = _grid((4, 5))
  loc = factors.astype(float)
  info = metrics.gaussian_mutual_info(loc, np.full_like(loc, 1e-3), factors, num_samples=20)
  np.testing.assert_allclose(np.diag(info), np.log([4, 5]), rtol=1e-6)
  assert info[0, 1] < 1e-6 and info[1, 0] < 1e-6


def test_bad_inputs_are_named():
  factors = _grid((3, 4))
  with pytest.raises(ValueError, match="same N points"):
    metrics.mig(np.zeros((5, 3)), factors)
  with pytest.raises(ValueError, match="needs scales"):
    metrics.mig(factors.astype(float), factors, method="exact")
  with pytest.raises(ValueError, match="Unknown MIG method"):
    metrics.mig(factors.astype(float), factors, method="kde")
  with pytest.raises(ValueError, match="NaN"):
    metrics.mig(np.full((12, 2), np.nan), factors)
  result = metrics.mig(np.stack([factors[:, 0], factors[:, 0]], 1).astype(float),
                       np.stack([factors[:, 0], np.zeros(12, int)], 1))
  assert result["constant_factors"] == ["factor_1"] and result["factor_names"] == ["factor_0", "factor_1"]




def test_compute_mig_runs_through_an_encode_fn():
  source = data.ProceduralDSprites()

  def encode_fn(x):  # a deterministic 'encoder': mean pixel position and mass (correlates with posX/posY/scale)
    import tensorflow as tf
    h = tf.cast(tf.shape(x)[1], tf.float32)
    grid = tf.range(h)[None, :, None, None]
    mass = tf.reduce_sum(x, axis=[1, 2, 3]) + 1e-6
    ys = tf.reduce_sum(x * grid, axis=[1, 2, 3]) / mass
    xs = tf.reduce_sum(x * tf.transpose(grid, [0, 2, 1, 3]), axis=[1, 2, 3]) / mass
    loc = tf.stack([xs, ys, mass], 1)
    return [(loc[:, :2], tf.ones_like(loc[:, :2])), (loc, 0.1 * tf.ones_like(loc))]

  result = metrics.compute_mig(encode_fn, source, num_points=2000, layers="all", batch_size=700)
  assert result["layer"] == 2 and set(result["layers"]) == {"layer_1", "layer_2"}
  assert result["per_factor"]["posX"] > 0.5 and result["per_factor"]["posY"] > 0.5
  assert result["best_unit"]["posX"] == 0 and result["best_unit"]["posY"] == 1 and result["best_unit"]["scale"] == 2
  exact = metrics.compute_mig(encode_fn, source, method="exact", num_points=1000, num_samples=300)
  assert exact["per_factor"]["posX"] > 0.3
  # Both protocols from one encoding (the full grid takes minutes to encode): the same numbers as one at a time.
  images = []
  counting = lambda x: images.append(int(x.shape[0])) or encode_fn(x)  # noqa: E731
  both = metrics.compute_migs(counting, source, ("histogram", "exact"), num_points=1000, num_samples=300)
  assert sum(images) == 1000 and both["exact"] == exact
  assert both["histogram"] == metrics.compute_mig(encode_fn, source, num_points=1000)
  with pytest.raises(ValueError, match="Unknown MIG method 'kde'"):
    metrics.compute_migs(counting, source, ("histogram", "kde"))
  assert sum(images) == 1000  # refused before encoding anything


def test_exact_protocol_progress_bar_counts_every_pair(capsys):
  factors = _grid((3, 4))
  loc = factors.astype(float)
  metrics.mig(loc, factors, method="exact", scales=np.full_like(loc, 0.5), num_samples=5, verbose=True)
  # 5 samples x 12 points for the marginals, plus per factor sum over classes of (samples x points) in the class.
  chosen = np.sort(np.random.default_rng(0).choice(12, size=5, replace=False))
  total = 5 * 12 + sum(int(np.sum(np.bincount(factors[chosen, k], minlength=s) * np.bincount(factors[:, k])))
                       for k, s in enumerate((3, 4)))
  assert f"{total}/{total}" in capsys.readouterr().out
