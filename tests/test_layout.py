"""The package's layout (issue 25): no import circles between modules, no private name used across modules, one
module per --mode with one public entry point, and the launcher's table covering every mode."""

import ast
import importlib
import os

from seatbelt_tf import config as config_lib
from seatbelt_tf import launch

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "seatbelt_tf")


def _modules():
  """{dotted module name: parsed AST} of every file of the package."""
  out = {}
  for root, _, files in os.walk(PACKAGE):
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(root, f)
        rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
        with open(path) as fh:
          out[rel.removesuffix(".__init__")] = ast.parse(fh.read())
  return out


def _imports(modules):
  """{module: set of package modules it imports, at any depth of its code (lazy imports included)}."""
  graph = {}
  for name, tree in modules.items():
    deps = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("seatbelt_tf"):
        for alias in node.names:
          full = f"{node.module}.{alias.name}"
          deps.add(full if full in modules else node.module)
      elif isinstance(node, ast.Import):
        deps.update(a.name for a in node.names if a.name.startswith("seatbelt_tf"))
    graph[name] = deps - {name}
  return graph


def test_no_module_imports_a_module_that_imports_it_back():
  graph = _imports(_modules())
  # A package's __init__ re-exporting its own submodules is not a circle between modules.
  def edges(name):
    return {d for d in graph.get(name, ()) if not (name.startswith(d + ".") or d.startswith(name + "."))
            and d != "seatbelt_tf"}
  circles = []
  for start in graph:
    stack = [(start, (start,))]
    while stack:
      node, path = stack.pop()
      for dep in edges(node):
        if dep == start:
          circles.append(" -> ".join(path + (start,)))
        elif dep not in path:
          stack.append((dep, path + (dep,)))
  assert not circles, circles


def test_no_private_name_is_used_from_another_module():
  modules = _modules()
  aliases_of = {}
  for name, tree in modules.items():
    local = {}
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("seatbelt_tf"):
        for alias in node.names:
          local[alias.asname or alias.name] = f"{node.module}.{alias.name}"
          assert not alias.name.startswith("_") or alias.name == "__version__", (name, alias.name)
    aliases_of[name] = local
  for name, tree in modules.items():
    for node in ast.walk(tree):
      if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr.startswith("_")
          and not node.attr.startswith("__") and node.value.id in aliases_of[name]):
        raise AssertionError(f"{name} uses {node.value.id}.{node.attr}, private to "
                             f"{aliases_of[name][node.value.id]}")


def test_every_mode_has_its_module_and_entry_point():
  assert set(launch.MODES) == set(config_lib.MODES)
  for mode, module_name in launch.MODES.items():
    module = importlib.import_module(module_name)
    public = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
              and getattr(v, "__module__", None) == module.__name__ and not isinstance(v, type)]
    assert public == [mode], (module_name, public)
