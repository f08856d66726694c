"""Flags shared by the trainer subcommands: dataclass fields as flags, and the dataset flags."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from coldbridge_cli.errors import CliError

__all__ = ["add_data_args", "add_dataclass_flags", "data_loaders", "dataclass_values", "int_list"]

_Adder = argparse.ArgumentParser | argparse._ArgumentGroup


def add_dataclass_flags(parser: _Adder, cls: type, *, omit: Iterable[str] = ()) -> None:
    """One ``--flag`` per field of the dataclass ``cls`` (tuples take several values).

    The help of each flag comes from the class docstring's ``name : type`` entries.
    """
    helps, skip = _field_help(cls.__doc__ or ""), set(omit)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag, default = "--" + f.name.replace("_", "-"), f.default
        text = helps.get(f.name, "") + " (default: %(default)s)"
        if isinstance(default, bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=helps.get(f.name)
            )
        elif isinstance(default, tuple):
            parser.add_argument(
                flag, type=int, nargs="*", default=list(default), metavar="N", help=text
            )
        else:
            kind = type(default)
            parser.add_argument(
                flag, type=kind, default=default, metavar=kind.__name__.upper(), help=text
            )


def dataclass_values(
    args: argparse.Namespace, cls: type, *, omit: Iterable[str] = ()
) -> dict[str, Any]:
    """The parsed values of :func:`add_dataclass_flags`' flags (lists back to tuples)."""
    skip = set(omit)
    out = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.name not in skip}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in out.items()}


def _field_help(doc: str) -> dict[str, str]:
    """``{field: first sentence}`` of a numpydoc ``name, other : type`` attribute list."""
    out: dict[str, str] = {}
    for names, body in re.findall(r"^ {4}([\w, ]+) : [^\n]+\n((?: {8}[^\n]*\n?)+)", doc, re.M):
        text = " ".join(body.split()).split(". ")[0].rstrip(".").replace("%", "%%")
        out.update({name.strip(): text for name in names.split(",")})
    return out


def add_data_args(parser: argparse.ArgumentParser, *, directions: bool = False) -> None:
    """``--data DIR`` or ``--cdrib DIR`` (``--source``/``--target``, and ``--directions``)."""
    group = parser.add_argument_group("dataset (one of --data, --cdrib, --recbole)")
    one = group.add_mutually_exclusive_group(required=True)
    one.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="dataset directory (the datagen layout, see docs/evaluation.md)",
    )
    one.add_argument(
        "--cdrib",
        type=Path,
        metavar="DIR",
        help="CDRIB folder holding <source>_<target>/ and <target>_<source>/",
    )
    one.add_argument(
        "--recbole",
        metavar="SOURCE.inter,TARGET.inter",
        help="RecBole atomic .inter files of the source and the target domain "
        "(cold users held out as in docs/evaluation.md)",
    )
    group.add_argument("--source", metavar="DOMAIN", help="CDRIB source domain (default: game)")
    group.add_argument("--target", metavar="DOMAIN", help="CDRIB target domain (default: video)")
    group.add_argument(
        "--shared-users",
        type=int,
        metavar="N",
        help="CDRIB: ids below N are the same person in both domains "
        "(needed for any pair but game/video)",
    )
    if directions:
        group.add_argument(
            "--directions",
            metavar="S:T,...",
            help="CDRIB directions, e.g. game:video,video:game (default: --source:--target)",
        )


def data_loaders(args: argparse.Namespace) -> list[Callable[[], Any]]:
    """Picklable loaders of the datasets the flags name (one per direction).

    Raises
    ------
    CliError
        A flag that does not apply (``--source``/``--target``/``--directions`` with ``--data``,
        ``--directions`` with ``--source``/``--target``), a malformed ``--directions``, or a
        path that is not a directory.
    """
    from coldbridge_trainer.data import load_cdrib, load_dataset, load_recbole

    cdrib_only = [
        f"--{n.replace('_', '-')}"
        for n in ("source", "target", "directions", "shared_users")
        if getattr(args, n, None) is not None
    ]
    if args.data is not None or getattr(args, "recbole", None) is not None:
        if cdrib_only:
            raise CliError(
                f"{', '.join(cdrib_only)} applies only with --cdrib "
                "(--data and --recbole name their own domains)"
            )
        if args.data is not None:
            return [functools.partial(load_dataset, _directory("--data", args.data))]
        return [functools.partial(load_recbole, *_inter_files(args.recbole))]
    root = _directory("--cdrib", args.cdrib)
    if getattr(args, "directions", None) is None:
        pairs = [(args.source or "game", args.target or "video")]
    elif args.source is not None or args.target is not None:
        raise CliError("give --directions or --source/--target, not both")
    else:
        pairs = [_direction(d) for d in args.directions.split(",") if d.strip()]
    return [
        functools.partial(load_cdrib, root, s, t, shared_users=args.shared_users) for s, t in pairs
    ]


def _inter_files(text: str) -> tuple[Path, Path]:
    paths = [Path(p.strip()) for p in text.split(",") if p.strip()]
    if len(paths) != 2:
        raise CliError(f"--recbole: expected SOURCE.inter,TARGET.inter, got {text!r}")
    for path in paths:
        if not path.is_file():
            raise CliError(f"--recbole {path}: no such file")
    return paths[0], paths[1]


def _directory(flag: str, path: Path) -> Path:
    if not path.is_dir():
        raise CliError(f"{flag} {path}: no such directory")
    return path


def _direction(text: str) -> tuple[str, str]:
    parts = text.strip().split(":")
    if len(parts) != 2 or not all(parts):
        raise CliError(f"--directions: expected SOURCE:TARGET, got {text!r}")
    return parts[0], parts[1]


def int_list(flag: str, text: str) -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]``; anything else is a :class:`CliError` naming ``flag``."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise CliError(f"{flag}: expected comma-separated integers, got {text!r}") from None
    if not values:
        raise CliError(f"{flag}: give at least one value")
    return values
