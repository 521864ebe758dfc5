"""One registry for every kind of named thing: datasets, methods, metrics, protocols.

A ``Registry[T]`` is a read-only ``Mapping`` from names to entries of one kind:

- entries may be *lazy*: ``Lazy("package.module:attr")`` is imported on first lookup (and cached),
  so listing names never imports the modules behind them;
- *aliases* resolve to a registered name on lookup (``"dsprites" -> "dsprites_full"``); they are
  accepted by ``in`` and ``[]`` but not listed by ``names()`` or iteration;
- an unknown name raises ``UnknownNameError`` (a ``KeyError``, so ``Mapping.get`` still returns its
  default) with one message format::

      unknown <kind> 'x'; did you mean a, b? valid names: a, b, c

``suggest``/``close_matches`` are the one close-match helper; use them for messages in other
formats (a config path before the message, say) instead of calling difflib again.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from disent_core.errors import UnknownNameError

T = TypeVar("T")

SUGGESTIONS = 3
"""How many close matches a message offers by default."""
CUTOFF = 0.4
"""difflib similarity below which a name is not offered as a match."""


def close_matches(
    name: object, valid: Iterable[str], n: int = SUGGESTIONS, cutoff: float = CUTOFF
) -> list[str]:
    """Up to ``n`` names of ``valid`` closest to ``name``, best first (difflib's ratio >= ``cutoff``).

    Args:
        name: the name asked for (converted with ``str``).
        valid: the names to choose from.
        n: the most matches to return.
        cutoff: the least similarity, in [0, 1].

    Returns:
        The matches, best first (possibly empty).
    """
    return difflib.get_close_matches(str(name), list(valid), n=n, cutoff=cutoff)


def suggest(name: object, valid: Iterable[str], n: int = SUGGESTIONS, cutoff: float = CUTOFF) -> str:
    """``"did you mean a, b? "`` for the close matches of ``name`` in ``valid``, or ``""`` if none.

    Args:
        name: the name asked for (converted with ``str``).
        valid: the names to choose from.
        n: the most matches to offer.
        cutoff: the least similarity, in [0, 1].

    Returns:
        The suggestion, ending in a space, or ``""``.
    """
    close = close_matches(name, valid, n=n, cutoff=cutoff)
    return f"did you mean {', '.join(close)}? " if close else ""


def import_attr(target: str) -> Any:
    """The object a ``"package.module:attr"`` string names, importing its module.

    Args:
        target: ``"package.module:attr"``; attr may be dotted (``"Class.method"``).

    Returns:
        The object.

    Raises:
        ValueError: ``target`` is not of that form.
        ImportError: the module cannot be imported.
        AttributeError: the module has no such attribute.
    """
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"expected 'package.module:attr', got {target!r}")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Lazy(Generic[T]):
    """A registry entry imported from ``"package.module:attr"`` on first use."""

    __slots__ = ("target",)

    def __init__(self, target: str) -> None:
        if not isinstance(target, str) or target.count(":") != 1:
            raise ValueError(f"a lazy entry is 'package.module:attr', got {target!r}")
        self.target = target

    def load(self) -> T:
        return import_attr(self.target)

    def __repr__(self) -> str:
        return f"Lazy({self.target!r})"


class Registry(Mapping[str, T], Generic[T]):
    """Names -> entries of one ``kind`` (lazy or not), with aliases and close-match suggestions.

    Args:
        kind: what the entries are, for messages (``"dataset"``, ``"evaluation protocol"``).
        entries: ``(name, entry)`` pairs or a mapping, in the order ``names()`` lists them; an
            entry may be a ``Lazy``.
        aliases: other names of registered entries, ``{alias: name}``.
        sort_valid_names: list the valid names of an error message sorted (else in order).
    """

    def __init__(
        self,
        kind: str,
        entries: Mapping[str, T | Lazy[T]] | Iterable[tuple[str, T | Lazy[T]]] = (),
        *,
        aliases: Mapping[str, str] | None = None,
        sort_valid_names: bool = False,
    ) -> None:
        self.kind = kind
        self.sort_valid_names = sort_valid_names
        self._entries: dict[str, Any] = {}
        self._aliases: dict[str, str] = {}
        pairs = entries.items() if isinstance(entries, Mapping) else entries
        for name, entry in pairs:
            self.register(name, entry)
        for alias, name in (aliases or {}).items():
            self.alias(alias, name)

    # --- registration ------------------------------------------------------------------------
    def register(self, name: str, entry: T | Lazy[T]) -> None:
        """Add ``entry`` (or a ``Lazy``) as ``name``; a name or alias is registered once.

        Args:
            name: the new name.
            entry: the entry, or a ``Lazy`` imported on first lookup.

        Raises:
            ValueError: ``name`` is already a name or alias.
        """
        if name in self._entries or name in self._aliases:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry

    def alias(self, alias: str, name: str) -> None:
        """Make ``alias`` another name of the registered ``name``.

        Args:
            alias: the new name.
            name: a registered name (not an alias).

        Raises:
            ValueError: ``alias`` is already a name or alias.
            UnknownNameError: ``name`` is not registered.
        """
        if alias in self._entries or alias in self._aliases:
            raise ValueError(f"{self.kind} {alias!r} is already registered")
        if name not in self._entries:
            raise self.unknown(name)
        self._aliases[alias] = name

    # --- lookup ------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Registered names in registration order (aliases excluded)."""
        return list(self._entries)

    @property
    def aliases(self) -> dict[str, str]:
        """``{alias: name}`` (a copy)."""
        return dict(self._aliases)

    def resolve(self, name: str) -> str:
        """The registered name ``name`` is or aliases; ``UnknownNameError`` if neither.

        Args:
            name: a name or alias.

        Returns:
            The registered name.

        Raises:
            UnknownNameError: ``name`` is neither.
        """
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise self.unknown(name)

    def is_loaded(self, name: str) -> bool:
        """Whether ``name``'s entry is in memory (False while a lazy entry is not yet imported).

        Args:
            name: a name or alias.

        Returns:
            True unless the entry is a ``Lazy`` not yet looked up.

        Raises:
            UnknownNameError: ``name`` is neither a name nor an alias.
        """
        return not isinstance(self._entries[self.resolve(name)], Lazy)

    def __getitem__(self, name: str) -> T:
        name = self.resolve(name)
        entry = self._entries[name]
        if isinstance(entry, Lazy):
            entry = self._entries[name] = entry.load()
        return entry

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"

    # --- messages ----------------------------------------------------------------------------
    def valid_names(self) -> list[str]:
        """Names and aliases, as error messages list them."""
        valid = self.names() + list(self._aliases)
        return sorted(valid) if self.sort_valid_names else valid

    def unknown_message(self, name: object) -> str:
        """``unknown <kind> 'x'; did you mean a, b? valid names: ...``.

        Args:
            name: the name that is not registered.

        Returns:
            The message.
        """
        valid = self.valid_names()
        return f"unknown {self.kind} {name!r}; {suggest(name, valid)}valid names: {', '.join(valid)}"

    def unknown(self, name: object) -> UnknownNameError:
        """The error for a name that is not registered (returned, for the caller to raise).

        Args:
            name: the name that is not registered.

        Returns:
            An ``UnknownNameError`` with ``unknown_message(name)``.
        """
        return UnknownNameError(self.unknown_message(name))
