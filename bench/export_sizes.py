"""Export one model to several quants, one run per quant, and print size, time and tensor types.

Usage: python bench/export_sizes.py [SOURCE] [--quant f16 --quant q8_0 ...] [--out DIR]
Default: SmolLM2-135M (the built-in) to f16, q8_0 and q4_k_m. Each quant is its own export (as a
user would run it), so the time includes resolving the source, hashing it and the lossless write.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from caspo_lite.quant.export import export
from caspo_lite.quant.quantize import format_groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default="smollm2-135m")
    parser.add_argument("--quant", action="append", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="export-sizes-"))
    print(f"| quant | size (MB) | total s | step s | source: {args.source} |")
    print("| --- | --- | --- | --- | --- |")
    groups = {}
    for quant in args.quant or ["f16", "q8_0", "q4_k_m"]:
        t0 = time.perf_counter()
        item = export(args.source, out, [quant]).files[0]
        total = time.perf_counter() - t0
        groups[quant] = item.groups
        print(f"| {quant} | {item.size / 2**20:.1f} | {total:.1f} | {item.seconds:.1f} | {item.path.name} |")
    for quant, g in groups.items():
        print(f"{quant}: {format_groups(g)}")


if __name__ == "__main__":
    main()
