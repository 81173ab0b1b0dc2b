"""Regenerate the committed wire stubs from proto/ (`make proto`).

The stubs are committed so an install needs no protoc; `tests/test_wire_stubs.py` regenerates
them into a temporary folder and fails if anything differs.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

PACKAGE = "evalgrid_wire/v1"


def generate(proto_root: Path, out_root: Path) -> list[Path]:
    """Compile every .proto under proto_root/evalgrid_wire/v1 into out_root; return the outputs."""
    import grpc_tools
    from grpc_tools import protoc

    sources = sorted((proto_root / PACKAGE).glob("*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    bindir = str(Path(sys.executable).parent)
    plugin = shutil.which("protoc-gen-mypy", path=bindir)
    grpc_plugin = shutil.which("protoc-gen-mypy_grpc", path=bindir)
    args = [
        "protoc",
        f"-I{proto_root}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
    ]
    if plugin:
        args += [f"--plugin=protoc-gen-mypy={plugin}", f"--mypy_out={out_root}"]
    if grpc_plugin:
        args += [f"--plugin=protoc-gen-mypy_grpc={grpc_plugin}", f"--mypy_grpc_out={out_root}"]
    args += [str(s.relative_to(proto_root)) for s in sources]
    code = protoc.main(args)
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    return sorted((out_root / PACKAGE).glob("*_pb2*"))


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "proto")
    for path in generate(root, root):
        print(path)


if __name__ == "__main__":
    main()
