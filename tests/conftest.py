"""Shared test harness: quiet TensorFlow, the tiny run config, tmp workdirs and a `--run_slow` switch."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_addoption(parser):
  parser.addoption("--run_slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
  if config.getoption("--run_slow"):
    return
  skip = pytest.mark.skip(reason="slow: pass --run_slow")
  for item in items:
    if "slow" in item.keywords:
      item.add_marker(skip)


def tiny_config(workdir, **overrides):
  """The settings of configs/tiny.cfg as a RunConfig, with overrides by flag name."""
  from seatbelt_tf import config as config_lib
  from seatbelt_tf import launch
  args = launch.expand_flagfiles([f"--flagfile={os.path.join(REPO, 'configs', 'tiny.cfg')}"])
  return config_lib.RunConfig.from_args(args, **{"workdir": str(workdir), "verbose": 0, **overrides})


@pytest.fixture
def tiny(tmp_path):
  """Factory: tiny(**overrides) -> RunConfig in a fresh tmp workdir."""
  return lambda **overrides: tiny_config(tmp_path / "workdir", **overrides)
