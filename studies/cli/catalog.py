"""``run``'s SPEC argument: a study spec file, or the name of a ready-made study of the catalog.

The catalog is ``studies/catalog/<name>.yaml``, shipped as package data and read through
``importlib.resources``, so ``disent-study run quickstart`` works from an installed package in any
directory. A file wins over a catalog study of the same name; a bare name that is neither is refused
with the catalog's names.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import as_file, files
from importlib.resources.abc import Traversable
from pathlib import Path

from disent_core.errors import DisentError
from disent_core.registry import suggest

SUFFIX = ".yaml"


def _catalog() -> Traversable:
    return files("studies") / "catalog"


def catalog_names() -> list[str]:
    """The names of the ready-made studies.

    Returns:
        Every ``studies/catalog/<name>.yaml``'s name, sorted.
    """
    return sorted(entry.name.removesuffix(SUFFIX) for entry in _catalog().iterdir()
                  if entry.is_file() and entry.name.endswith(SUFFIX))


@contextmanager
def spec_file(argument: Path) -> Iterator[Path]:
    """The study spec file that ``run``'s SPEC argument names, for the duration of the ``with``.

    Args:
        argument: SPEC as given: a file's path, or a catalog study's name.

    Yields:
        ``argument`` when it is a file; else the catalog's file of that name (a temporary copy only
        when the package is not on a file system); else ``argument`` when it exists (a directory)
        or is a path with a folder, for the spec loader to report.

    Raises:
        DisentError: ``argument`` is a bare name that is neither a file nor a catalog study; the
            message lists the catalog's names.
    """
    if argument.is_file():
        yield argument
        return
    names = catalog_names()
    name = str(argument)
    if name in names:
        with as_file(_catalog() / f"{name}{SUFFIX}") as path:
            yield path
        return
    if argument.exists() or len(argument.parts) != 1:
        yield argument
        return
    raise DisentError(f"{name}: no such study spec file, nor a catalog study; {suggest(name, names)}"
                      f"catalog studies: {', '.join(names)}")
