"""Workflow modules loaded once per process, executed afresh for every workflow instance.

Temporal's sandbox re-imports a workflow's module for each workflow instance it creates (each
start, and each replay after the workflow left the worker's cache), so that module-level
state is never shared between instances and the module's code runs with the sandbox's
restricted builtins and modules. Re-importing means loading the module's bytecode again:
Python unmarshals the .pyc into new code objects every time, about two thirds of the memory a
cached approval workflow holds and a slice of the CPU of every replay (docs/benchmarks.md,
fourth pass).

Code objects are immutable, so they can be shared: `share_workflow_code` installs an import
finder that keeps, per module of the given packages, the code object of its first load and
hands it to every later load. Each import still creates a new module and executes that code in
it, inside the sandbox, exactly as before: new globals, new classes, the sandbox's checks. Only
the unmarshalling is skipped. (Passing the workflow modules through the sandbox instead would
save a little more but run them outside it; not done.)
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from types import CodeType, ModuleType


class _SharedCodeLoader(importlib.abc.Loader):
    """Wraps a file loader; `exec_module` runs the module's cached code object."""

    def __init__(self, inner: importlib.machinery.SourceFileLoader, finder: SharedCodeFinder):
        self.inner = inner
        self.finder = finder

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module creation

    def exec_module(self, module: ModuleType) -> None:
        exec(self.finder.code_for(self.inner), module.__dict__)  # noqa: S102 - the module's own code

    def get_code(self, fullname: str) -> CodeType:
        return self.finder.code_for(self.inner)

    def get_source(self, fullname: str) -> str | None:
        return self.inner.get_source(fullname)

    def is_package(self, fullname: str) -> bool:
        return self.inner.is_package(fullname)

    def get_filename(self, fullname: str) -> str:
        return str(self.inner.get_filename(fullname))


class SharedCodeFinder(importlib.abc.MetaPathFinder):
    """Finds the modules of `packages` as Python's path finder does, with a loader that
    reuses each module's code object."""

    def __init__(self, packages: Sequence[str]) -> None:
        self.packages = tuple(packages)
        self._codes: dict[str, CodeType] = {}
        self._lock = threading.Lock()

    def _covers(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.packages)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not self._covers(fullname):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        spec.loader = _SharedCodeLoader(spec.loader, self)
        return spec

    def code_for(self, loader: importlib.machinery.SourceFileLoader) -> CodeType:
        key = str(loader.path)
        code = self._codes.get(key)
        if code is None:
            with self._lock:
                code = self._codes.get(key)
                if code is None:
                    code = loader.get_code(loader.name)
                    assert code is not None
                    self._codes[key] = code
        return code

    def cached(self) -> list[str]:
        """The files whose code objects are shared (for tests and diagnostics)."""
        return sorted(self._codes)


_installed: SharedCodeFinder | None = None


def share_workflow_code(packages: Sequence[str] = ("workflows",)) -> SharedCodeFinder:
    """Install the finder once per process (first in `sys.meta_path`); returns it."""
    global _installed
    if _installed is None:
        _installed = SharedCodeFinder(packages)
        sys.meta_path.insert(0, _installed)
    return _installed
