"""Library layers import downwards only (DESIGN.md section 6). Every package and top-level module of preforch/ has a
tier; a module may import its own unit and the units of lower tiers, never a unit of its own tier or a higher one:

    errors, modeling_preforch, lru, offline, __init__    (import nothing of preforch)
    io, tables                             (tables: load_attr and the rows' check, whose error is a ConfigError)
    data, models, hub
    modeling, config                       (config: the shared base config, helpers and validators)
    rewards
    orchestrator
    generation                             (sampling, combined reward, spec readers, multi-head model, expert set)
    alignment, serving                     (training and serving both stand on generation, neither on the other)
    evaluation
    pipelines
    cli
    __main__

The largest room, serving, is split the same way inside (its __init__ says what each part holds):

    backends, decoding                     (the LMs that sample; decoding helpers only kinds use)
    policies                               (the interface, the KINDS table, one module per kind)
    config                                 (the generate / serve / train-value-head configs; checks kinds)
    generate, train_value_head, server     (the commands; server is `preforch serve`)
    __init__                               (names the public API, imported on first use)

Checked on the source, so an import inside a function (or under TYPE_CHECKING) counts as much as one at the top.
Within a unit, the module import graph has no circle either: a function-level import only hides a circle, it does
not break it."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "preforch"
TIERS = (("errors", "modeling_preforch", "lru", "offline", "__init__"),
         ("io", "tables"),
         ("data", "models", "hub"),
         ("modeling", "config"),
         ("rewards",),
         ("orchestrator",),
         ("generation",),
         ("alignment", "serving"),
         ("evaluation",),
         ("pipelines",),
         ("cli",),
         ("__main__",))
SERVING_TIERS = (("backends", "decoding"),
                 ("policies",),
                 ("config",),
                 ("generate", "train_value_head", "server"),
                 ("__init__",))


def _tier_of(tiers) -> dict[str, int]:
    return {unit: i for i, units in enumerate(tiers) for unit in units}


TIER, SERVING_TIER = _tier_of(TIERS), _tier_of(SERVING_TIERS)


def _units(root: Path) -> set[str]:
    """Each package (a folder with an __init__.py) and each module directly under `root`, by name."""
    return {p.parent.name for p in root.glob("*/__init__.py")} | {p.stem for p in root.glob("*.py")}


def _imported_units(path: Path, root: Path) -> set[str]:
    """The units of `root` (preforch/ or one of its packages) that `path` imports anywhere in its source
    (`from preforch import x` names unit x when x is one; relative imports are resolved against the file's
    package)."""
    units = _units(root)
    prefix = root.relative_to(PACKAGE.parent).parts  # e.g. ("preforch",) or ("preforch", "serving")
    here = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]  # e.g. ("preforch", "serving")
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else ()
            names = [(*base, *(node.module.split(".") if node.module else ()))]
            if names[0] == prefix:  # `from preforch import x`: unit x if it is one, else the package's __init__
                out.update(a.name if a.name in units else "__init__" for a in node.names)
                continue
        elif isinstance(node, ast.Import):
            names = [tuple(alias.name.split(".")) for alias in node.names]
        else:
            continue
        for parts in names:
            if parts == prefix:
                out.add("__init__")
            elif parts[:len(prefix)] == prefix:
                out.add(parts[len(prefix)])
    return out


def _wrong_imports(unit: str, root: Path | None = None, tier: dict[str, int] | None = None) -> list[str]:
    """Imports by `unit` (of `root`, default preforch/, ranked by `tier`) of a unit of its own tier or a higher one."""
    root, tier = root or PACKAGE, tier or TIER
    where = ".".join(root.relative_to(PACKAGE.parent).parts)
    files = sorted((root / unit).rglob("*.py")) if (root / unit).is_dir() else [root / f"{unit}.py"]
    return [f"{path.relative_to(PACKAGE)} imports {where}.{other} (tier {tier.get(other)} >= {tier[unit]})"
            for path in files for other in sorted(_imported_units(path, root))
            if other != unit and tier.get(other, len(tier)) >= tier[unit]]


def test_every_package_and_top_level_module_has_a_tier():
    assert _units(PACKAGE) == set(TIER), (f"untiered: {sorted(_units(PACKAGE) - set(TIER))}, "
                                          f"gone: {sorted(set(TIER) - _units(PACKAGE))}")


@pytest.mark.parametrize("unit", sorted(TIER))
def test_a_unit_never_imports_its_own_tier_or_one_above_it(unit):
    wrong = _wrong_imports(unit)
    assert not wrong, wrong


def test_every_part_of_serving_has_a_tier():
    units = _units(PACKAGE / "serving")
    assert units == set(SERVING_TIER), (f"untiered: {sorted(units - set(SERVING_TIER))}, "
                                        f"gone: {sorted(set(SERVING_TIER) - units)}")


@pytest.mark.parametrize("unit", sorted(SERVING_TIER))
def test_a_part_of_serving_never_imports_its_own_tier_or_one_above_it(unit):
    wrong = _wrong_imports(unit, PACKAGE / "serving", SERVING_TIER)
    assert not wrong, wrong


def test_the_check_sees_imports_inside_functions(tmp_path, monkeypatch):
    """An upward import hidden in a function body is still caught (a lazy import must not dodge the order)."""
    fake = tmp_path / "preforch"
    (fake / "data").mkdir(parents=True)
    (fake / "data" / "__init__.py").write_text("")
    (fake / "data" / "sneaky.py").write_text("def f():\n    from preforch.serving.policies.kinds import KINDS\n"
                                             "    return KINDS\n")
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    assert _wrong_imports("data") == ["data/sneaky.py imports preforch.serving (tier 7 >= 2)"]


def test_the_serving_check_sees_a_kind_importing_the_server(tmp_path, monkeypatch):
    """A policy module reaching up into serving's HTTP server is caught, as a lower layer reaching up is."""
    fake = tmp_path / "preforch"
    (fake / "serving" / "policies").mkdir(parents=True)
    for init in (fake / "serving" / "__init__.py", fake / "serving" / "policies" / "__init__.py"):
        init.write_text("")
    (fake / "serving" / "policies" / "leaky.py").write_text("from preforch.serving.server.served import Served\n"
                                                             "from preforch.serving.backends import lm\n")
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    assert _wrong_imports("policies", fake / "serving", SERVING_TIER) == [
        "serving/policies/leaky.py imports preforch.serving.server (tier 3 >= 1)"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """preforch modules named by any import statement in `tree` (resolving relative imports and `from p import m`)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules}
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {m: imported(ast.parse(p.read_text()), m, p.name == "__init__.py", modules) - {m} for m, p in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (depth-first search with an explicit stack of the current path)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_find_cycle_names_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_preforch_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
