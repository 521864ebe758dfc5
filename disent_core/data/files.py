"""Downloadable files: declared once with mirrors, size and hashes, fetched and verified safely.

A ``FileSpec`` names one raw file of a dataset: its filename, the URLs it can be fetched from
(mirrors, tried in order; ``http(s)://`` or ``file://``), its size when known and its published
hashes. SHA-256 is preferred; MD5 is used where that is all that was ever published, and
``accepted_hashes`` lists other digests that are also fine (files replaced upstream).

``fetch`` makes sure a verified copy sits in a directory:

- a download goes to ``<name>.part`` and resumes it with an HTTP ``Range`` request, and only a
  verified file is renamed (atomically) to its final name, so no half-written file ever carries
  the final name;
- verification checks the size first, then the hash;
- a file that fails verification is never used and never deleted: it is moved aside to
  ``<name>.bad-<UTC timestamp>`` and the error says where it went;
- when no copy can be had, ``DataNotFoundError`` lists every URL tried and why it failed, the
  expected path, size and hashes, and how to place the file by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from disent_core.errors import ChecksumError, DataNotFoundError

log = logging.getLogger(__name__)

USER_AGENT = "disent-studies/0.1 (dataset downloader; python urllib)"
_HASH_LENGTHS = {"sha256": 64, "md5": 32, "sha1": 40}
_CHUNK = 1 << 20


def _check_digest(algorithm: str, digest: str) -> str:
    if algorithm not in _HASH_LENGTHS:
        raise ValueError(f"unsupported hash algorithm {algorithm!r}; use one of {sorted(_HASH_LENGTHS)}")
    digest = digest.lower()
    if not re.fullmatch(f"[0-9a-f]{{{_HASH_LENGTHS[algorithm]}}}", digest):
        raise ValueError(f"{algorithm} digest must be {_HASH_LENGTHS[algorithm]} hex digits, got {digest!r}")
    return digest


@dataclass(frozen=True)
class FileSpec:
    """One raw file: where to get it and how to recognise a good copy."""

    filename: str
    urls: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    accepted_hashes: tuple[str, ...] = ()
    """Other acceptable digests as ``"algorithm:hexdigest"`` (e.g. a file replaced upstream)."""

    def __post_init__(self) -> None:
        if not self.filename or Path(self.filename).name != self.filename:
            raise ValueError(f"FileSpec.filename must be a bare file name, got {self.filename!r}")
        object.__setattr__(self, "urls", tuple(self.urls))
        if self.sha256 is not None:
            object.__setattr__(self, "sha256", _check_digest("sha256", self.sha256))
        if self.md5 is not None:
            object.__setattr__(self, "md5", _check_digest("md5", self.md5))
        accepted = []
        for item in self.accepted_hashes:
            algorithm, sep, digest = item.partition(":")
            if not sep:
                raise ValueError(f"accepted hash {item!r} must look like 'sha256:<hex>' or 'md5:<hex>'")
            accepted.append(f"{algorithm}:{_check_digest(algorithm, digest)}")
        object.__setattr__(self, "accepted_hashes", tuple(accepted))

    @property
    def expected_digests(self) -> tuple[tuple[str, str], ...]:
        """Acceptable (algorithm, digest) pairs: the preferred published hash, then alternatives."""
        primary = [("sha256", self.sha256)] if self.sha256 else [("md5", self.md5)] if self.md5 else []
        alternatives = [tuple(item.split(":", 1)) for item in self.accepted_hashes]
        return tuple(primary + alternatives)

    def describe_expected(self) -> str:
        """Human-readable size and checksums, e.g. for error messages."""
        parts = [f"size {self.size:,} bytes" if self.size is not None else "size unknown"]
        if self.sha256:
            parts.append(f"sha256 {self.sha256}")
        if self.md5:
            parts.append(f"md5 {self.md5}")
        parts.extend(self.accepted_hashes)
        if not self.sha256 and not self.md5 and not self.accepted_hashes:
            parts.append("no published checksum")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "urls": list(self.urls),
            "size": self.size,
            "sha256": self.sha256,
            "md5": self.md5,
            "accepted_hashes": list(self.accepted_hashes),
        }


@dataclass(frozen=True)
class FileRecord:
    """What was actually used: a verified file's size and digests, and where it came from."""

    filename: str
    path: Path
    size: int
    sha256: str
    md5: str
    source: str = field(default="local")
    """The URL it was downloaded from, or ``"local"`` when it was already in place."""

    def to_json(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "size": self.size,
            "sha256": self.sha256,
            "md5": self.md5,
            "source": self.source,
        }


def hash_file(path: str | os.PathLike, algorithms: tuple[str, ...] = ("sha256", "md5")) -> dict[str, str]:
    """Hex digests of a file, computed in one sequential pass.

    Args:
        path: the file.
        algorithms: ``hashlib`` algorithm names.

    Returns:
        {algorithm: lowercase hex digest}.
    """
    hashers = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}


def check_file(path: Path, spec: FileSpec) -> tuple[str | None, dict[str, str]]:
    """Verify ``path`` against ``spec``: size first, then hash.

    Args:
        path: the file to verify.
        spec: its expected size and digests.

    Returns:
        ``(problem, digests)``: ``problem`` is None for a good file, else what is wrong;
        ``digests`` holds the file's sha256 and md5 when it was hashed (empty after a size mismatch).
    """
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        return f"size is {size:,} bytes, expected {spec.size:,}", {}
    algorithms = tuple(dict.fromkeys(("sha256", "md5", *(a for a, _ in spec.expected_digests))))
    digests = hash_file(path, algorithms)
    expected = spec.expected_digests
    if expected and not any(digests[algorithm] == digest for algorithm, digest in expected):
        got = ", ".join(f"{a} {digests[a]}" for a in dict.fromkeys(a for a, _ in expected))
        return f"checksum mismatch: got {got}, expected {spec.describe_expected()}", digests
    return None, digests


def move_aside(path: Path) -> Path:
    """Rename a rejected file to ``<name>.bad-<UTC timestamp>`` next to it; never delete it.

    Args:
        path: the rejected file (a trailing ``.part`` is dropped from the new name).

    Returns:
        Where it now is.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = path.name.removesuffix(".part")
    target = path.with_name(f"{name}.bad-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{name}.bad-{stamp}-{n}")
        n += 1
    os.replace(path, target)
    return target


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-", value or "")
    return int(match.group(1)) if match else None


def _download(url: str, part: Path, timeout: float) -> None:
    """Fetch ``url`` into ``part``, resuming an existing partial file when the server allows it."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            err.close()
            log.info("%s: server reports %s already complete; verifying it", url, part.name)
            return
        raise
    with response:
        resume = (
            offset > 0
            and getattr(response, "status", None) == 206
            and _content_range_start(response.headers.get("Content-Range")) == offset
        )
        if offset and not resume:
            log.info("%s: cannot resume (no range support); restarting %s", url, part.name)
        log.info("downloading %s -> %s%s", url, part, f" (resuming at {offset:,} bytes)" if resume else "")
        length = response.headers.get("Content-Length", "")
        expected = (offset if resume else 0) + int(length) if length.isdigit() else None
        with open(part, "ab" if resume else "wb") as f:
            shutil.copyfileobj(response, f, _CHUNK)
            f.flush()
            os.fsync(f.fileno())
    got = part.stat().st_size
    if expected is not None and got < expected:
        raise ConnectionError(
            f"connection closed after {got:,} of {expected:,} bytes; kept {part.name} to resume"
        )


def manual_instructions(spec: FileSpec, target: Path) -> str:
    """How to put the file in place by hand.

    Args:
        spec: the file's URLs and name.
        target: where the file must end up.

    Returns:
        A multi-line message for an error.
    """
    urls = "\n".join(f"    {u}" for u in spec.urls) or "    (no known URL)"
    return (
        f"To install it by hand, download {spec.filename!r} on a machine with internet access from\n"
        f"{urls}\n"
        f"  and copy it to {target}\n"
        f"  (directory {target.parent}), then run again; the file is verified before use.\n"
        "  Alternatively point $DISENT_DATA (or data_root=) at a data root that already holds it."
    )


def fetch(
    spec: FileSpec,
    directory: str | os.PathLike,
    *,
    download: bool = True,
    timeout: float = 60.0,
) -> FileRecord:
    """Make sure a verified ``spec.filename`` sits in ``directory`` and return its record.

    An existing file is verified and used; a bad one is moved aside. Otherwise each URL is tried in
    order (resuming ``<name>.part``).

    Args:
        spec: the file's name, URLs, size and digests.
        directory: where the file must sit (created if absent).
        download: whether URLs may be tried when no good copy is there.
        timeout: seconds per network operation of each download.

    Returns:
        The verified file's record (path, size, sha256, md5, and the URL or ``"local"``).

    Raises:
        ChecksumError: the only copies found were bad (each is moved aside, and the message says
            where).
        DataNotFoundError: no copy could be had.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / spec.filename
    part = directory / f"{spec.filename}.part"
    failures: list[str] = []
    moved: list[str] = []

    if target.exists():
        problem, digests = check_file(target, spec)
        if problem is None:
            return FileRecord(spec.filename, target, target.stat().st_size, digests["sha256"], digests["md5"])
        bad = move_aside(target)
        log.warning("%s: %s; moved it to %s", target, problem, bad)
        moved.append(f"{target} ({problem}) was moved to {bad}")

    if not download:
        failures.append("downloads are disabled (download=False)")
    else:
        for url in spec.urls:
            try:
                _download(url, part, timeout)
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
                is_http = isinstance(err, urllib.error.HTTPError)
                detail = err if is_http else getattr(err, "reason", None) or err
                failures.append(f"{url}: {type(err).__name__}: {detail}")
                continue
            if not part.exists():
                failures.append(f"{url}: nothing was received")
                continue
            got = part.stat().st_size
            if spec.size is not None and got < spec.size:
                failures.append(f"{url}: incomplete, {got:,} of {spec.size:,} bytes (kept {part} to resume)")
                continue
            problem, digests = check_file(part, spec)
            if problem is not None:
                bad = move_aside(part)
                log.warning("%s: %s; moved it to %s", url, problem, bad)
                moved.append(f"the download from {url} ({problem}) was moved to {bad}")
                continue
            os.replace(part, target)
            return FileRecord(spec.filename, target, got, digests["sha256"], digests["md5"], url)

    tried = "\n".join(f"  - {f}" for f in failures) or "  - (no URL to try)"
    details = (
        f"  expected at: {target}\n"
        f"  expected: {spec.describe_expected()}\n"
        f"  attempts:\n{tried}\n"
    )
    if moved:
        rejected = "\n".join(f"  - {m}" for m in moved)
        raise ChecksumError(
            f"{spec.filename!r} failed verification and was not used.\n{details}"
            f"  rejected copies (kept for inspection, never used):\n{rejected}\n"
            f"{manual_instructions(spec, target)}"
        )
    raise DataNotFoundError(
        f"{spec.filename!r} is missing and could not be downloaded.\n{details}"
        f"{manual_instructions(spec, target)}"
    )
