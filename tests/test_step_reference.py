"""One training step of each shipped model family matches the stored reference (tests/step_reference.py) to float
tolerance: the guard that speed work (issue 21) leaves the numerics unchanged."""

import json

import numpy as np
import pytest

import step_reference


@pytest.mark.parametrize("case", sorted(step_reference.CASES))
def test_one_training_step_matches_the_stored_reference(case):
  with open(step_reference.PATH) as f:
    expected = json.load(f)[case]
  got = step_reference.compute(case)
  assert set(got["terms"]) == set(expected["terms"])
  for name, value in expected["terms"].items():
    np.testing.assert_allclose(got["terms"][name], value, rtol=1e-4, atol=1e-4, err_msg=name)
  names = [g[0] for g in got["gradients"]]
  assert names == [g[0] for g in expected["gradients"]]
  # Biases that feed a BatchNorm: the exact gradient is 0 and the present code gives it; the reference holds float
  # round-off, small on the scale of the same layer's kernel gradient (step_reference.ZERO_BY_BATCHNORM).
  zero = np.array([bool(step_reference.ZERO_BY_BATCHNORM.match(n)) for n in names])
  assert zero.sum() == (10 if case.endswith("_conv") else 0) + 4 * ("_L2_" in case), names
  kernel_norm = {g[0].rsplit("/", 1)[0]: g[1] for g in expected["gradients"] if g[0].endswith("/kernel")}
  for (name, norm, total), (_, ref_norm, _) in zip(np.array(got["gradients"], object)[zero],
                                                    np.array(expected["gradients"], object)[zero]):
    assert norm == 0.0 and total == 0.0, name
    assert ref_norm <= 1e-4 * kernel_norm[name.rsplit("/", 1)[0]], name
  norms = np.array([g[1] for g in got["gradients"]])[~zero]
  np.testing.assert_allclose(norms, np.array([g[1] for g in expected["gradients"]])[~zero], rtol=1e-3, atol=1e-6)
  # Sums cancel: compare them on the scale of each gradient's norm.
  sums = np.array([g[2] for g in got["gradients"]])[~zero]
  reference = np.array([g[2] for g in expected["gradients"]])[~zero]
  assert np.all(np.abs(sums - reference) <= 1e-3 * np.maximum(norms, 1e-6) * 10), case
