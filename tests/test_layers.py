"""The package's imports point down: entry -> config -> trainer -> model -> prompts -> llm /
evaluation -> features -> data -> base (docs/architecture.md)."""

import ast
import os

import recbole_speeder

PACKAGE_DIR = os.path.dirname(recbole_speeder.__file__)

# the layer of a module is that of its longest listed prefix; higher layers may import lower
# ones (and their own), never the other way round
LAYERS = {
    "recbole_speeder.quick_start": 8, "recbole_speeder.cli": 8, "recbole_speeder.benchmark": 8,
    "recbole_speeder.hyper": 8, "recbole_speeder.properties_doc": 8,
    "recbole_speeder.config": 7, "recbole_speeder.utils": 7,
    "recbole_speeder.trainer": 6,
    "recbole_speeder.model": 5,
    "recbole_speeder.prompts": 4.5,
    "recbole_speeder.llm": 4, "recbole_speeder.evaluation": 4,
    "recbole_speeder.features": 3,
    "recbole_speeder.data": 2,
    "recbole_speeder.compat": 1, "recbole_speeder.atomic": 1, "recbole_speeder.errors": 1,
    "recbole_speeder.launch": 1, "recbole_speeder": 1,
}


def layer_of(module):
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise AssertionError(f"{module} belongs to no layer; add it to LAYERS (and to docs/architecture.md)")


def package_modules():
    for root, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[:-3].replace(os.sep, ".")
                yield rel.removesuffix(".__init__"), path


def imported_modules(module, path):
    """Every recbole_speeder module ``path`` imports (function-level imports included)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name == "recbole_speeder" or name.startswith("recbole_speeder."):
                yield node.lineno, name


def known_prefix(name):
    """``name`` cut to the module it names (``pkg.mod.func`` -> ``pkg.mod``)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = os.path.join(os.path.dirname(PACKAGE_DIR), *parts[:n])
        if os.path.isfile(candidate + ".py") or os.path.isdir(candidate):
            return ".".join(parts[:n])
    return name


def test_every_import_points_down():
    upward = []
    for module, path in package_modules():
        own = layer_of(module)
        for line, name in imported_modules(module, path):
            target = known_prefix(name)
            if layer_of(target) > own:
                upward.append(f"{os.path.relpath(path, PACKAGE_DIR)}:{line} imports {target} "
                              f"(layer {layer_of(target)} > {own})")
    assert not upward, "imports that point up:\n" + "\n".join(sorted(set(upward)))


def test_the_checker_sees_an_upward_import(tmp_path):
    """The walk is not vacuous: a model module importing the trainer is reported."""
    path = tmp_path / "speeder.py"
    path.write_text("def f():\n    from recbole_speeder.trainer.llm_trainer import LLMTrainer\n")
    found = list(imported_modules("recbole_speeder.model.speeder", str(path)))
    assert found == [(2, "recbole_speeder.trainer.llm_trainer"), (2, "recbole_speeder.trainer.llm_trainer.LLMTrainer")]
    assert layer_of(known_prefix(found[1][1])) > layer_of("recbole_speeder.model.speeder")
    assert sum(1 for _ in package_modules()) > 40
