"""Run one benchmark by name: `python -m bench.run NAME [its options]` (`make bench
BENCH_ARGS="NAME ..."`). Without a name, or with `list`, it lists them.

Each benchmark is a module with `main(argv)` (or a `main()` that reads sys.argv) that prints
a table and the machine it ran on; adding one is one line in BENCHES. Modules are imported
only when run.
"""

from __future__ import annotations

import importlib
import inspect
import sys

BENCHES: dict[str, tuple[str, str]] = {
    "aggregation": ("bench.aggregation", "committee scoring of 21 million scores (executors)"),
    "collusion": ("bench.collusion", "favour and lock-step signals over the same history"),
    "draw-latency": ("bench.draw_latency", "single draw, request to booked reservations"),
    "status-load": ("bench.status_load",
                    "150 sites x 30 workstations streaming status to one coordinator"),
    "national": ("bench.national", "the national-scale day plan"),
    "faults": ("bench.faults", "journal fsync, seat pass seal/open, lease check of 3,000 sites"),
}


def usage() -> str:
    width = max(len(name) for name in BENCHES)
    lines = ["usage: python -m bench.run NAME [options]   (NAME --help for its options)",
             "benchmarks:"]
    lines += [f"  {name.ljust(width)}  {what}" for name, (_, what) in BENCHES.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("list", "-h", "--help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in BENCHES:
        print(f"bench.run: unknown benchmark {name!r}\n{usage()}", file=sys.stderr)
        return 2
    module_name = BENCHES[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        print(f"bench.run: {name!r} is registered but {module_name} is not there",
              file=sys.stderr)
        return 2
    if inspect.signature(module.main).parameters:
        module.main(rest)
    else:  # a main() that reads sys.argv itself
        sys.argv = [module_name, *rest]
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
