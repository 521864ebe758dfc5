"""Downloadable files: declared once with mirrors, size and hashes, fetched and verified safely.

A ``FileSpec`` names one raw file of a dataset: its filename, the URLs it can be fetched from
(mirrors, tried in order; ``http(s)://`` or ``file://``), its size when known and its published
hashes. SHA-256 is preferred; MD5 is used where that is all that was ever published, and
``accepted_hashes`` lists other digests that are also fine (files replaced upstream).

``fetch`` makes sure a verified copy sits in a directory:

- HTTP(S) goes through urllib3 with a ``Retry`` policy: connection errors, read timeouts and the
  answers 429/500/502/503/504 are retried with exponential backoff (``Retry-After`` honoured), and
  every retry is logged; ``file://`` URLs are copied;
- a download goes to ``<name>.part`` and resumes it with an HTTP ``Range`` request, and only a
  verified file is renamed (atomically) to its final name, so no half-written file ever carries
  the final name;
- progress shows as a tqdm bar when stderr is a terminal, else as log lines at the start, at every
  10 % (when the size is known) and at the end;
- verification checks the size first, then the hash;
- a file that fails verification is never used and never deleted: it is moved aside to
  ``<name>.bad-<UTC timestamp>`` and the error says where it went;
- when no copy can be had, ``DataNotFoundError`` lists every URL tried and why it failed, the
  expected path, size and hashes, and how to place the file by hand.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import urllib3
from tqdm import tqdm
from urllib3.exceptions import MaxRetryError
from urllib3.util import Retry, Timeout

from disent_core.errors import ChecksumError, DataNotFoundError

log = logging.getLogger(__name__)

USER_AGENT = "disent-studies/0.1 (dataset downloader; python urllib3)"
RETRIES = 4
"""Retries per URL and per kind of failure (connection, read before the answer, retryable status)."""
BACKOFF_FACTOR = 1.0
"""Seconds; the waits between consecutive retries are 0, 2, 4, 8, ... times this (at most 120 s)."""
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_MAX_REDIRECTS = 10
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


class HTTPStatusError(OSError):
    """A download answered with an HTTP status other than 200/206 (after any retries)."""

    def __init__(self, status: int, reason: str | None) -> None:
        super().__init__(f"HTTP Error {status}: {reason or 'no reason given'}")
        self.status = status


class LoggedRetry(Retry):
    """urllib3's ``Retry`` that logs every retry of a download on this module's logger.

    ``source`` names the download in the log lines (the URL); it is carried over to the new
    ``Retry`` objects that urllib3 makes at each attempt.
    """

    def __init__(self, *args: Any, source: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source = source

    def new(self, **kw: Any) -> LoggedRetry:
        """A copy with ``kw`` changed; keeps ``source``."""
        return super().new(**{"source": self.source, **kw})

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: urllib3.BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: urllib3.connectionpool.ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> LoggedRetry:
        """Count one failed attempt (raising ``MaxRetryError`` when none is left) and log the retry."""
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        if retry.history and retry.history[-1].redirect_location is not None:
            return retry
        if response is not None and response.status:
            cause = f"HTTP {response.status} {response.reason or ''}".rstrip()
            wait = retry.get_retry_after(response) if retry.respect_retry_after_header else None
        else:
            cause = f"{type(error).__name__}: {error}"
            wait = None
        if wait is None:
            wait = retry.get_backoff_time()
        failures = sum(1 for h in retry.history if h.redirect_location is None)
        log.warning("%s: attempt %d failed (%s); retrying in %.1f s", self.source or url, failures, cause,
                    wait)
        return retry


def retry_policy(url: str, retries: int = RETRIES, backoff_factor: float = BACKOFF_FACTOR) -> LoggedRetry:
    """The retry policy of one download.

    Args:
        url: the URL, named in the log line of each retry.
        retries: retries of each kind of failure: connection errors, read errors before an answer,
            and the statuses in ``RETRY_STATUSES``.
        backoff_factor: scale of the exponential backoff between consecutive retries, in seconds.

    Returns:
        A urllib3 ``Retry`` for GET requests that follows up to 10 redirects and returns the last
        answer (instead of raising) when a status stays retryable after the last retry.
    """
    return LoggedRetry(
        total=None,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        redirect=_MAX_REDIRECTS,
        allowed_methods=frozenset({"GET"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_factor,
        raise_on_status=False,
        source=url,
    )


class _Progress:
    """Bytes received: a tqdm bar when stderr is a terminal, else a log line at every 10 %."""

    def __init__(self, name: str, total: int | None, initial: int) -> None:
        self.name, self.total, self.done = name, total, initial
        self.started = time.monotonic()
        self.bar = tqdm(total=total, initial=initial, desc=name, unit="B", unit_scale=True,
                        unit_divisor=1024, disable=None, leave=True)
        self.next_tenth = self._tenths() + 1

    def _tenths(self) -> int:
        return 10 * self.done // self.total if self.total else 0

    def update(self, n: int) -> None:
        self.done += n
        self.bar.update(n)
        if self.bar.disable and self.total and self.next_tenth <= self._tenths() < 10:
            self.next_tenth = self._tenths() + 1
            log.info("%s: %d%% (%s of %s bytes)", self.name, 10 * self._tenths(), f"{self.done:,}",
                     f"{self.total:,}")

    def close(self) -> None:
        self.bar.close()


def _copy_local(url: str, part: Path) -> None:
    """Copy the file named by a ``file://`` URL into ``part``."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.netloc not in ("", "localhost"):
        raise ValueError(f"file:// URL on another host ({parsed.netloc!r}) is not supported")
    source = Path(urllib.request.url2pathname(parsed.path))
    log.info("copying %s -> %s", source, part)
    with open(source, "rb") as src, open(part, "wb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)
        dst.flush()
        os.fsync(dst.fileno())


def _download(url: str, part: Path, timeout: float, retries: Retry) -> None:
    """Fetch ``url`` into ``part``, resuming an existing partial file when the server allows it."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme == "file":
        _copy_local(url, part)
        return
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {scheme!r}; use http://, https:// or file://")
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with urllib3.PoolManager(timeout=Timeout(connect=timeout, read=timeout)) as http:
        response = http.request("GET", url, headers=headers, retries=retries, preload_content=False,
                                decode_content=False)
        try:
            if response.status == 416 and offset:
                log.info("%s: server reports %s already complete; verifying it", url, part.name)
                return
            if response.status not in (200, 206):
                raise HTTPStatusError(response.status, response.reason)
            _receive(url, response, part, offset)
        finally:
            response.release_conn()


def _receive(url: str, response: urllib3.BaseHTTPResponse, part: Path, offset: int) -> None:
    """Write the body of a 200/206 answer to ``part`` (appending when it continues ``offset``)."""
    resume = (
        offset > 0
        and response.status == 206
        and _content_range_start(response.headers.get("Content-Range")) == offset
    )
    if offset and not resume:
        log.info("%s: cannot resume (no range support); restarting %s", url, part.name)
    start = offset if resume else 0
    length = response.headers.get("Content-Length", "")
    expected = start + int(length) if length.isdigit() else None
    log.info("downloading %s -> %s%s%s", url, part, f" ({expected:,} bytes)" if expected is not None else "",
             f", resuming at {offset:,} bytes" if resume else "")
    progress = _Progress(part.name.removesuffix(".part"), expected, start)
    broken: Exception | None = None
    try:
        with open(part, "ab" if resume else "wb") as f:
            try:
                for chunk in response.stream(_CHUNK, decode_content=False):
                    f.write(chunk)
                    progress.update(len(chunk))
            except (urllib3.exceptions.HTTPError, OSError) as err:
                broken = err
            f.flush()
            os.fsync(f.fileno())
    finally:
        progress.close()
    got = part.stat().st_size
    if broken is not None or (expected is not None and got < expected):
        of = f" of {expected:,}" if expected is not None else ""
        timed_out = isinstance(broken, (urllib3.exceptions.TimeoutError, TimeoutError))
        why = " (read timed out)" if timed_out else ""
        raise ConnectionError(f"connection closed after {got:,}{of} bytes{why}; kept {part.name} to resume")
    seconds = time.monotonic() - progress.started
    log.info("downloaded %s: %s bytes in %.1f s", url, f"{got - start:,}", seconds)


def _describe_failure(err: BaseException) -> str:
    """One line for the error message: what went wrong with a URL."""
    if isinstance(err, MaxRetryError):
        reason = err.reason if err.reason is not None else err
        return f"gave up after retries: {type(reason).__name__}: {reason}"
    if isinstance(err, HTTPStatusError):
        return str(err)
    return f"{type(err).__name__}: {err}"


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
    retries: int | None = None,
    backoff_factor: float | None = None,
) -> FileRecord:
    """Make sure a verified ``spec.filename`` sits in ``directory`` and return its record.

    An existing file is verified and used; a bad one is moved aside. Otherwise each URL is tried in
    order (resuming ``<name>.part``), each with retries and backoff on transient failures.

    Args:
        spec: the file's name, URLs, size and digests.
        directory: where the file must sit (created if absent).
        download: whether URLs may be tried when no good copy is there.
        timeout: seconds per network operation of each download.
        retries: retries per URL and kind of failure (default ``RETRIES``); see ``retry_policy``.
        backoff_factor: seconds that scale the waits between retries (default ``BACKOFF_FACTOR``).

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
        retries = RETRIES if retries is None else retries
        backoff_factor = BACKOFF_FACTOR if backoff_factor is None else backoff_factor
        for url in spec.urls:
            try:
                _download(url, part, timeout, retry_policy(url, retries, backoff_factor))
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as err:
                failures.append(f"{url}: {_describe_failure(err)}")
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
