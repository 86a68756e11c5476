"""The layering holds: `lint-imports` keeps the contracts of ``[tool.importlinter]`` in
pyproject.toml (cli -> jobs -> stages -> spaces and data -> core; no cycles between nas's
subpackages), and no package imports another package's private modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def _env() -> dict[str, str]:
    # analyse this checkout, whatever `nas` the interpreter would import otherwise
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }


def test_import_linter_contracts_are_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_no_package_imports_another_packages_private_module():
    """``a.b._c`` is imported only from inside ``a.b`` (``nas._yaml``: from inside ``nas``)."""
    code = (
        "import grimp, json; g = grimp.build_graph('nas', 'search_spaces', cache_dir=None); "
        "print(json.dumps([[a, b] for a in sorted(g.modules) "
        "for b in sorted(g.find_modules_directly_imported_by(a))]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    bad = []
    for importer, imported in json.loads(done.stdout):
        parts = imported.split(".")
        private = [i for i, p in enumerate(parts) if p.startswith("_") and i > 0]
        if private:
            owner = ".".join(parts[: private[0]])  # the package whose private module it is
            if importer != owner and not importer.startswith(owner + "."):
                bad.append(f"{importer} -> {imported}")
    assert not bad, "\n".join(bad)


def test_no_function_of_the_engine_or_the_spaces_is_longer_than_80_lines():
    import ast

    long = []
    for root in ("nas", "search_spaces"):
        for path in (REPO / root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    n = node.end_lineno - node.lineno + 1
                    if n > 80:
                        long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({n})")
    assert not long, long
