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
  assert [g[0] for g in got["gradients"]] == [g[0] for g in expected["gradients"]]
  norms = np.array([g[1] for g in got["gradients"]])
  np.testing.assert_allclose(norms, [g[1] for g in expected["gradients"]], rtol=1e-3, atol=1e-6)
  # Sums cancel: compare them on the scale of each gradient's norm.
  sums, reference = np.array([g[2] for g in got["gradients"]]), np.array([g[2] for g in expected["gradients"]])
  assert np.all(np.abs(sums - reference) <= 1e-3 * np.maximum(norms, 1e-6) * 10), case
