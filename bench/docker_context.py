"""Docker build context of the benchmark model: scikit-learn engine against the ONNX graph.

    python bench/docker_context.py [--board /tmp/bench/fxboard]

Writes both bundles of the version stored by ``serve_bench.py --engine ...`` (a
RandomForest pipeline, compiled when written) and prints the size of each build context
(the bundle folder: Dockerfile, requirements, model folder, server code) and of its
model folder, and what the image installs beyond the server's own packages: the
installed size here of the packages only one of the two requirement lists names. There
is no Docker engine on this machine, so image sizes are estimated from installed sizes.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def installed_size(dist: str) -> int:
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        return 0
    total = 0
    for f in files:
        path = Path(str(f.locate()))
        if path.is_file():
            total += path.stat().st_size
    return total


def names(requirements: Path) -> set[str]:
    return {line.split("==")[0].split(";")[0].strip().lower()
            for line in requirements.read_text().splitlines() if line.strip()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", default="/tmp/bench/fxboard")
    args = ap.parse_args()
    from core.deploy.docker import write_bundle
    from core.store.versionstore import VersionStore

    store = VersionStore(args.board)
    with tempfile.TemporaryDirectory() as tmp:
        sk = write_bundle(store, "house_price_rf", Path(tmp) / "sklearn", engine="sklearn")
        graph = write_bundle(store, "house_price_rf", Path(tmp) / "onnx", engine="onnx")
        only_sk = sorted(names(sk / "requirements.txt") - names(graph / "requirements.txt"))
        only_graph = sorted(names(graph / "requirements.txt") - names(sk / "requirements.txt"))
        mb = 1 / 2**20
        print("| bundle | build context | model folder | packages only it installs "
              "(installed size here) |\n|---|---|---|---|")
        for label, folder, extra in (("scikit-learn engine", sk, only_sk),
                                     ("ONNX graph", graph, only_graph)):
            pkgs = ", ".join(f"{d} {installed_size(d) * mb:.0f} MB" for d in extra)
            total = sum(installed_size(d) for d in extra) * mb
            print(f"| {label} | {folder_size(folder) * mb:.2f} MB | "
                  f"{folder_size(folder / 'model') * mb:.2f} MB | {pkgs} (total {total:.0f} MB) |")


if __name__ == "__main__":
    main()
