"""``disent-study datasets list|info|prepare``: what is available, what it holds, and getting it.

``disent_core.data`` (PyTorch) is imported by the functions that run a command, so that building
the parser (``--help``) stays cheap.
"""

from __future__ import annotations

import argparse
import logging
import sys


def _status(entry) -> str:
    from disent_core.data.paths import data_root
    from disent_core.data.sources import get_source

    if entry.source is None:
        return "offline"
    ready = get_source(entry.source).is_prepared(data_root())
    if entry.kind == "real-or-procedural":
        return "prepared" if ready else "not prepared (source=procedural works offline)"
    return "prepared" if ready else "not prepared"


def list_datasets() -> int:
    from disent_core.data.paths import data_root
    from disent_core.data.registry import DATASETS

    print(f"data root: {data_root()}")
    width = max(len(name) for name in DATASETS)
    for name, entry in DATASETS.items():
        print(f"  {name:<{width}}  {_status(entry):<46}  {entry.summary}")
    return 0


def _factor_table(dataset) -> list[str]:
    space = dataset.factor_space
    lines = [f"  {'factor':<14} {'size':>5}  role"]
    for i, (name, size) in enumerate(zip(space.names, space.sizes, strict=True)):
        role = "latent" if i in space.latent_indices else "nuisance"
        lines.append(f"  {name:<14} {size:>5}  {role}")
    return lines


def _source_lines(desc: dict) -> list[str]:
    lines = [
        f"source {desc['name']} ({desc['title']}): {desc['status']}",
        f"  raw files go in: {desc['raw_dir']}",
        f"  prepared cache:  {desc['cache_dir']}",
    ]
    for f in desc["files"]:
        size = f"{f['size']:,} B" if f["size"] else "size unpublished"
        checks = ", ".join(f"{algo} {f[algo]}" for algo in ("sha256", "md5") if f.get(algo)) or (
            "no published checksum (SHA-256 recorded on first use)"
        )
        lines.append(f"  {'present' if f['present'] else 'missing'}  {f['filename']}  ({size}; {checks})")
        lines += [f"      {url}" for url in f["urls"]]
    return lines


def info(name: str) -> int:
    from disent_core.data.paths import data_root
    from disent_core.data.registry import get_dataset, get_entry
    from disent_core.data.sources import get_source

    entry = get_entry(name)
    print(f"{entry.name}: {entry.summary}")
    print(f"kind: {entry.kind}")
    options = {}
    if entry.source is not None:
        source = get_source(entry.source)
        print("\n".join(_source_lines(source.describe(data_root()))))
        if not source.is_prepared(data_root()):
            if entry.kind != "real-or-procedural":
                print(f"run `disent-study datasets prepare {entry.name}` to download and convert it")
                return 0
            options = {"source": "procedural"}
            print("not prepared: showing the offline procedural version (option source: procedural)")
    dataset = get_dataset(entry.name, **options)
    print(f"images: {len(dataset):,}  observation shape (C, H, W): {dataset.observation_shape}")
    print(f"resident memory of the image store: {dataset.store.resident_bytes / 2**20:.1f} MiB")
    print("\n".join(_factor_table(dataset)))
    return 0


def prepare(name: str, download: bool) -> int:
    """Download (unless ``download`` is False), verify and convert a dataset's files.

    The download's progress is a bar on a terminal; otherwise ``disent_core.data``'s progress lines
    go to stderr.

    Args:
        name: a registered dataset name.
        download: whether missing files may be downloaded.

    Returns:
        The exit status, 0.
    """
    from disent_core.data.paths import data_root
    from disent_core.data.registry import get_entry
    from disent_core.data.sources import get_source

    data_log = logging.getLogger("disent_core.data")
    if not data_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        data_log.addHandler(handler)
        data_log.setLevel(logging.INFO)
    entry = get_entry(name)
    if entry.source is None:
        print(f"{entry.name} is procedural: nothing to download or prepare")
        return 0
    source = get_source(entry.source)
    root = data_root()
    if source.is_prepared(root):
        print(f"{entry.name}: already prepared in {source.cache_dir(root)}")
        return 0
    path = source.prepare(root, download=download)
    print(f"{entry.name}: prepared in {path}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``datasets list | info NAME | prepare NAME``."""
    parser = subparsers.add_parser("datasets", help="list, describe and prepare datasets")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every registered dataset and whether it is ready")
    for action, help_text in (("info", "factors, files, checksums and cache status"),
                              ("prepare", "download, verify and convert once into the data root")):
        sub = actions.add_parser(action, help=help_text)
        sub.add_argument("name")
        if action == "prepare":
            sub.add_argument("--no-download", action="store_true",
                             help="only use files already placed in the raw directory")
    for sub in (parser, *actions.choices.values()):
        sub.add_argument("--data-root", default=None,
                         help="data root (default: $DISENT_DATA or ~/.cache/disent_studies/data)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``disent-study datasets``; returns the exit status."""
    if args.action == "list":
        return list_datasets()
    if args.action == "info":
        return info(args.name)
    return prepare(args.name, download=not args.no_download)
