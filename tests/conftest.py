"""Shared test harness: quiet TensorFlow, the tiny run config, tmp workdirs, a `--run_slow` switch and each test's
garbage freed after it (`--keep_graphs` keeps it)."""

import gc
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_addoption(parser):
  parser.addoption("--run_slow", action="store_true", default=False, help="also run tests marked slow")
  parser.addoption("--keep_graphs", action="store_true", default=False,
                   help="do not free Keras's state and Python's garbage after each test (benchmarks/test_suite_gc.py)")


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


@pytest.fixture(autouse=True)
def _free_each_test_s_graphs(request):
  """After every test that imported Keras: Keras's global state cleared, Python's garbage collected (as Keras Tuner
  does between trials) and the survivors frozen out of later collections (`gc.freeze`).

  A test's models and traced functions are cyclic garbage. Left to Python's own schedule they pile up over dozens
  of tests and go in one full collection, charged to whichever test triggers it: one took 43 s here. And the live
  objects grow by tens of thousands per test however often one collects (TensorFlow keeps every traced train step:
  its custom gradients, Keras's gradient all-reduce among them, stay in a process-wide registry), so that every
  full collection walks more of them: 2.4 million after 23 tests, about 1.5 s a collection. Frozen, they are
  walked no more. docs/BENCHMARKS.md ("The test suite's garbage") measures the suite with and without this."""
  yield
  if "keras" in sys.modules and not request.config.getoption("--keep_graphs"):
    sys.modules["keras"].backend.clear_session(free_memory=True)
    gc.freeze()


@pytest.fixture
def tiny(tmp_path):
  """Factory: tiny(**overrides) -> RunConfig in a fresh tmp workdir."""
  return lambda **overrides: tiny_config(tmp_path / "workdir", **overrides)
