"""Every public function, method and class in modbias/ and app/ says what it takes and returns.

A static check (no import): a public definition is one whose name and every enclosing class's
name do not start with ``_``, at module level or in a class body (functions nested in functions
are helpers of their parent).  Each needs a docstring; a function or method with parameters
besides ``self``/``cls`` needs an ``Args:`` section in it.  ``Returns:`` is left to the reader's
judgement (TransformerLens omits it for ``None`` and obvious cases), so it is not checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

NOT_YET_CHECKED: set[str] = set()
"""Paths (relative to the repository root) left out while their docstrings are rewritten; empty when all are checked."""


def documented_parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """Names of the parameters a docstring should describe: all but ``self``/``cls`` (and ``*``-separators)."""
    args = node.args
    names = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return [n for n in names if n not in ("self", "cls")]


def is_overload(node: ast.AST) -> bool:
    """Whether a definition is a ``typing.overload`` signature (documented on the implementation)."""
    return any(ast.unparse(d).split(".")[-1] == "overload" for d in getattr(node, "decorator_list", []))


def undocumented(tree: ast.Module, where: str) -> list[str]:
    """One line per public definition in ``tree`` without a docstring, or with parameters and no ``Args:``.

    Args:
        tree: the parsed module.
        where: the file's path, used as the prefix of each line.

    Returns:
        ``"<where>:<line> <qualified name>: <what is missing>"`` lines, in source order.
    """
    problems: list[str] = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.If):  # definitions under ``if TYPE_CHECKING:`` / version checks
                visit(node.body + node.orelse, prefix)
                continue
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if node.name.startswith("_") or is_overload(node):
                continue
            name = prefix + node.name
            doc = ast.get_docstring(node)
            if not doc:
                problems.append(f"{where}:{node.lineno} {name}: no docstring")
            elif not isinstance(node, ast.ClassDef) and documented_parameters(node) and "Args:" not in doc:
                problems.append(f"{where}:{node.lineno} {name}: parameters {documented_parameters(node)} but no Args:")
            if isinstance(node, ast.ClassDef):
                visit(node.body, name + ".")

    visit(tree.body, "")
    return problems


def checked_files() -> list[Path]:
    """The Python files of modbias/ and app/ this test covers (``NOT_YET_CHECKED`` left out)."""
    files = sorted([*(ROOT / "modbias").rglob("*.py"), *(ROOT / "app").rglob("*.py")])
    return [f for f in files
            if not any(str(f.relative_to(ROOT)).startswith(skip) for skip in NOT_YET_CHECKED)]


def test_every_public_definition_is_documented():
    problems = [p for f in checked_files()
                for p in undocumented(ast.parse(f.read_text()), str(f.relative_to(ROOT)))]
    assert not problems, f"{len(problems)} public definitions lack a docstring or its Args:\n" + "\n".join(problems)


@pytest.mark.parametrize("source, missing", [
    ("def f(x):\n    return x\n", "f: no docstring"),
    ("def f(x):\n    '''Double x.'''\n", "f: parameters ['x'] but no Args:"),
    ("class C:\n    def m(self, *, k=1):\n        '''M.'''\n", "C: no docstring"),
    ("class C:\n    '''C.'''\n    def m(self, *, k=1):\n        '''M.'''\n", "C.m: parameters ['k'] but no Args:"),
    ("class C:\n    '''C.'''\n    @property\n    def p(self):\n        return 1\n", "C.p: no docstring"),
])
def test_a_missing_docstring_is_reported(source, missing):
    """The check can fail: each kind of gap is named, with its qualified name."""
    problems = undocumented(ast.parse(source), "x.py")
    assert any(p.endswith(missing) for p in problems), problems


def test_private_nested_and_documented_definitions_pass():
    source = (
        "def _helper(x):\n    return x\n"
        "def f():\n    '''No parameters: no Args needed.'''\n    def inner(y):\n        return y\n"
        "class _Hidden:\n    def m(self, x):\n        return x\n"
        "class C:\n    '''C.'''\n    def _m(self, x):\n        return x\n"
        "    def m(self, x):\n        '''M.\n\n        Args:\n            x: a thing.\n        '''\n"
    )
    assert undocumented(ast.parse(source), "x.py") == []


def test_exclusions_name_existing_paths():
    """An exclusion that no longer names a file or folder is stale and must go."""
    stale = [p for p in NOT_YET_CHECKED if not (ROOT / p).exists()]
    assert not stale, f"exclusions naming nothing: {stale}"
