"""Which `inpaint` source files a pipeline stage runs, read from the code itself.

Two things need that list: dvc.yaml's deps (a stage must re-run when any file it runs changes; a test keeps
the deps complete) and the run fingerprint (inpaint/provenance/fingerprint.py: a trained model is tied to the content of
the code that trained it). Both must see lazy imports (`from inpaint import x` inside a function), which
`modulefinder` or importing the entry point would miss, so the graph is read from the source with `ast`.

A stage starts in its function of inpaint/stages.py (pipelines/<stage>.py calls it through `stages.main` and
`stages.run`). Of stages.py only the module-level imports, those two runners and the stage's own function
count: the file holds nothing but every stage's entry point, each importing its stage's code inside itself,
and a change to the report code must not retrain a model. Every other module counts whole: all its imports,
at any depth.

A package's modules imported by discovery (`pkgutil.iter_modules(package.__path__)`: the frameworks'
registrations in inpaint/variants, the trainers in inpaint/frameworks/build.py) count as imports of every
module in the package's folder. What this reading cannot see (any other import by computed name, say) is
caught at run time: with INPAINT_RECORD_IMPORTS set to a folder, each stage process, and each Ray Train
worker, writes the inpaint modules it actually imported, and tests/test_pipeline_e2e.py checks them against
dvc.yaml's deps.
"""
from __future__ import annotations

import ast
import atexit
import os
import sys
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # inpaint/
ENTRY_MODULE = "inpaint.stages"
RUNNERS = ("main", "run")  # the functions of stages.py that every stage passes through
RECORD_ENV = "INPAINT_RECORD_IMPORTS"  # a folder for the run-time records of what each stage imported


def module_file(name: str) -> Path:
    """inpaint.a.b -> inpaint/a/b.py or inpaint/a/b/__init__.py."""
    base = PACKAGE_DIR.joinpath(*name.split(".")[1:])
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _is_module(name: str) -> bool:
    base = PACKAGE_DIR.joinpath(*name.split(".")[1:])
    return base.is_dir() or base.with_suffix(".py").is_file()


def _parents(name: str) -> list[str]:
    """Importing inpaint.a.b runs inpaint/a/__init__.py too (inpaint/__init__.py included)."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _resolve(node: ast.AST, module: str) -> set[str]:
    """The inpaint modules one import statement loads."""
    found: set[str] = set()
    if isinstance(node, ast.Import):
        found = {a.name for a in node.names if a.name.split(".")[0] == "inpaint"}
    elif isinstance(node, ast.ImportFrom):
        if node.level:  # relative: from the module's package
            package = module if module_file(module).name == "__init__.py" else module.rsplit(".", 1)[0]
            base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
            base = f"{base}.{node.module}" if node.module else base
        else:
            base = node.module or ""
        if base.split(".")[0] != "inpaint":
            return set()
        exports = _lazy_exports(base) if _is_module(base) else {}
        found = {base}
        found |= {f"{base}.{a.name}" for a in node.names if _is_module(f"{base}.{a.name}")}
        found |= {exports[a.name] for a in node.names if a.name in exports}
    return {p for name in found if _is_module(name) for p in _parents(name)}


@cache
def _tree(name: str) -> ast.Module:
    path = module_file(name)
    return ast.parse(path.read_text(), filename=str(path))


def _lazy_exports(package: str) -> dict[str, str]:
    """A package that imports its attributes lazily (inpaint/masks/__init__.py) names them in a module-level
    dict {attribute: "inpaint.module"}; `from package import attribute` loads that module."""
    if module_file(package).name != "__init__.py":
        return {}
    for node in _tree(package).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            pairs = list(zip(node.value.keys, node.value.values))
            if pairs and all(isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
                             and str(v.value).startswith("inpaint.") for k, v in pairs):
                return {k.value: v.value for k, v in pairs}
    return {}


def _discovered(name: str) -> set[str]:
    """A module that imports a package's modules by discovery, `pkgutil.iter_modules(<package>.__path__)` (or
    `__path__` in the package's own __init__), imports every module in the package's folder."""
    tree = _tree(name)
    bound = {a.asname or a.name: f"{node.module}.{a.name}" for node in ast.walk(tree)
             if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "inpaint"
             for a in node.names}
    packages = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args and getattr(node.func, "attr", None) == "iter_modules"):
            continue
        arg = node.args[0]
        if isinstance(arg, ast.Name) and arg.id == "__path__" and module_file(name).name == "__init__.py":
            packages.add(name)
        elif isinstance(arg, ast.Attribute) and arg.attr == "__path__" and isinstance(arg.value, ast.Name) \
                and arg.value.id in bound:
            packages.add(bound[arg.value.id])
    found = set()
    for package in packages:
        if _is_module(package) and module_file(package).name == "__init__.py":
            folder = module_file(package).parent
            found |= {f"{package}.{path.stem}" for path in folder.glob("*.py") if path.name != "__init__.py"}
            found |= {f"{package}.{path.parent.name}" for path in folder.glob("*/__init__.py")}
    return {p for m in found for p in _parents(m)}


def imports(name: str) -> set[str]:
    """Every inpaint module that `name` imports, anywhere in its source (a package's modules discovered with
    pkgutil included)."""
    return {m for node in ast.walk(_tree(name)) for m in _resolve(node, name)} | _discovered(name)


def function_imports(name: str, function: str) -> set[str]:
    """What running `function` of module `name` imports: the module's top-level imports and the function's own
    (lazy) imports."""
    tree = _tree(name)
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    if function not in functions:
        raise KeyError(f"{module_file(name)}: no function {function!r}")
    found = {m for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)) for m in _resolve(node, name)}
    found |= {m for node in ast.walk(functions[function]) for m in _resolve(node, name)}
    return found | set(_parents(name))


def closure(roots: set[str]) -> set[str]:
    """`roots` and every inpaint module they import, transitively (inpaint.stages is not followed: a stage
    enters it through its runners and its own function)."""
    done: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name not in done:
            done.add(name)
            if name != ENTRY_MODULE:
                todo += sorted(imports(name) - done)
    return done


def stage_modules(stage: str) -> set[str]:
    """The inpaint modules the DVC stage `stage` runs (the module inpaint.stages itself only in part)."""
    roots = set().union(*(function_imports(ENTRY_MODULE, function) for function in (stage, *RUNNERS)))
    return closure(roots | {ENTRY_MODULE})


def stage_files(stage: str) -> list[Path]:
    """The source files of `stage_modules(stage)`, sorted."""
    return sorted(module_file(m) for m in stage_modules(stage))


def dvc_deps(stage: str) -> list[str]:
    """The code deps of `stage` as dvc.yaml lists them: a package folder when the stage runs all of it, the
    single files otherwise (python -m inpaint.provenance.codegraph STAGE prints them)."""
    root = PACKAGE_DIR.parent
    files = set(stage_files(stage))
    deps = {f"pipelines/{stage}.py"}
    for path in files:
        folder = path.parent
        whole = folder != PACKAGE_DIR and set(folder.glob("*.py")) <= files
        deps.add((folder if whole else path).relative_to(root).as_posix())
    return sorted(deps)


def write_imports(stage: str) -> None:
    """With RECORD_ENV set, write the inpaint modules this process has imported so far to
    <folder>/<stage>-<pid>.txt (a run-time record of stage `stage`); without it, nothing."""
    folder = os.environ.get(RECORD_ENV)
    if folder:
        names = sorted(m for m in sys.modules if m.split(".")[0] == "inpaint")
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{stage}-{os.getpid()}.txt").write_text("".join(f"{n}\n" for n in names))


def record_imports(stage: str) -> None:
    """write_imports(stage) when this process exits (with RECORD_ENV set)."""
    if os.environ.get(RECORD_ENV):
        atexit.register(write_imports, stage)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}:\n" + "".join(f"  - {d}\n" for d in dvc_deps(name)))
