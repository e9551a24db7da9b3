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
  values = dict(config_lib.RunConfig(workdir=str(workdir)).flat())
  for arg in args:
    name, value = arg.lstrip("-").split("=", 1)
    default = values.get(name)
    if isinstance(default, bool):
      values[name] = value.lower() in ("1", "true", "t", "yes")
    else:
      values[name] = type(default)(value) if isinstance(default, (int, float)) else value  # lists parse themselves
  values.update(workdir=str(workdir), verbose=0, **overrides)
  return config_lib.RunConfig.from_flat(values).validate()


@pytest.fixture
def tiny(tmp_path):
  """Factory: tiny(**overrides) -> RunConfig in a fresh tmp workdir."""
  return lambda **overrides: tiny_config(tmp_path / "workdir", **overrides)
