"""`evalgrid province`: generate, import and split province files."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from app.cli.options import REDIS_URL_HELP, CliError, add_data_dir, data_dir, iso_day, province_tz

SCALES = ("national", "province", "small")  # their sizes: coordinator.province.generator.SCALES
SIZE_OPTIONS = ("cities", "sites", "workstations", "experts", "companies", "projects", "relations")


def cmd_province_generate(args: argparse.Namespace) -> int:
    from coordinator.province.files import write_province
    from coordinator.province.generator import SCALES as SIZES
    from coordinator.province.generator import generate_province
    from evalgrid.progress import phases

    params: dict[str, int] = dict(SIZES[args.scale])
    for key in SIZE_OPTIONS:
        value = getattr(args, key)
        if value is not None:
            if value < 1:
                raise CliError(f"--{key}: at least 1, not {value}")
            params[key] = value
    day = iso_day(args.day, "--day") if args.day else datetime.now(province_tz()).date()
    out = Path(args.out)
    _writable_folder(out, "--out")
    with phases() as phase:
        phase(f"generating ({args.scale}, seed {args.seed})")
        try:
            province = generate_province(seed=args.seed, day=day, **params)
        except (ValueError, AssertionError) as exc:
            raise CliError(f"these sizes give no valid province: {exc}") from None
        phase(f"writing to {out}")
        try:
            write_province(province, out)
        except OSError as exc:
            raise CliError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    print(f"wrote {len(province.sites)} sites, {len(province.experts)} experts, "
          f"{len(province.companies)} companies, {len(province.projects)} projects to {out}")
    return 0


def _writable_folder(path: Path, option: str) -> None:
    """Refuse, before any work, a folder that cannot be made or written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"{option}: cannot create {path}: {exc.strerror or exc}") from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise CliError(f"{option}: {path} is not a writable folder")


def cmd_province_import(args: argparse.Namespace) -> int:
    from coordinator.offline import import_province
    from coordinator.province.files import ImportFailed
    from evalgrid.progress import phases

    if not Path(args.dir).is_dir():
        raise CliError(f"DIR: {args.dir} is not a folder of province files")
    try:
        with phases() as phase:
            counts = asyncio.run(import_province(Path(args.dir), data_dir(args),
                                                 args.redis_url, progress=phase))
    except ImportFailed as exc:
        print(f"import refused, nothing stored: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    print("imported: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def cmd_province_inventory(args: argparse.Namespace) -> int:
    """One site's inventory file for its agent: its line of sites.jsonl (docs/inventory.md)."""
    source = Path(args.dir) / "sites.jsonl"
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"DIR: cannot read {source}: {exc}") from None
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line) if line.strip() else None
        except json.JSONDecodeError as exc:
            raise CliError(f"{source}:{number}: not JSON: {exc.msg}") from None
        if isinstance(record, dict) and record.get("id") == args.site:
            out = Path(args.out)
            try:
                out.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n",
                               encoding="utf-8")
            except OSError as exc:
                raise CliError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
            workstations = sum(len(r["workstations"]) for v in record.get("venues", [])
                               for r in v.get("rooms", []))
            print(f"wrote the inventory of {args.site} ({workstations} workstations) to {out}")
            return 0
    raise CliError(f"--site: no site {args.site!r} in {source}")


def register(sub: Any) -> None:
    """`province generate|inventory|import`."""
    prov = sub.add_parser("province", help="province data files")
    prov_sub = prov.add_subparsers(dest="province_command", required=True)
    p = prov_sub.add_parser("generate", help="write a synthetic province (seeded)")
    p.add_argument("--out", required=True, help="the folder to write the province files to "
                   "(created if missing)")
    p.add_argument("--seed", type=int, default=2026, help="the same seed gives the same files")
    p.add_argument("--scale", choices=sorted(SCALES), default="province",
                   help="small (a test grid), province or national sizes")
    p.add_argument("--day", help="day of the projects, YYYY-MM-DD (default: today, local time)")
    for key in SIZE_OPTIONS:
        p.add_argument(f"--{key}", type=int, help=f"number of {key} (default: the scale's)")
    p.set_defaults(func=cmd_province_generate)
    p = prov_sub.add_parser("inventory", help="write one site's inventory file for its agent")
    p.add_argument("dir", help="the folder of province files")
    p.add_argument("--site", required=True, help="the site id")
    p.add_argument("--out", required=True, help="the inventory file to write (JSON)")
    p.set_defaults(func=cmd_province_inventory)
    p = prov_sub.add_parser("import", help="import province files into the coordinator's store")
    p.add_argument("dir", help="the folder of province files (docs/province-files.md)")
    add_data_dir(p)
    p.add_argument("--redis-url", help=REDIS_URL_HELP)
    p.set_defaults(func=cmd_province_import)
