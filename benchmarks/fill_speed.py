"""Time ``python -m npf fill`` on a whole DEM scene, variant by variant, in one run.

Each variant (precision, ``torch.compile``, window size) fills the same GeoTIFF in a
process of its own, as a user would run it: the wall time includes loading the model
and, for compiled variants, compiling it. Peak memory is the process's maximum resident
set (``wait4``). Speed-ups are against the first variant (the plain fp32 one by default).
Each bf16 or compiled variant's output is compared, inside the scene's voids, with the
fp32 eager variant of the same window and centring (with ``window`` centring the window
itself changes the result: each window's values are centred on its own context mean):
median and largest change of the filled value and of the std, in the raster's units.
Prints a table and stores JSON under ``benchmarks/results/``.

    .venv/bin/python benchmarks/fill_speed.py                 # srtm3_N46E008 (1,201 x 1,201)
    .venv/bin/python benchmarks/fill_speed.py --scene PATH --variants fp32-256 bf16-compile-512
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import rasterio

from npf.acceleration import native_bf16
from npf.data import default_data_dir
from npf.data.dem import scenes_dir

REPO = Path(__file__).resolve().parents[1]
#: a scene kept by ``python -m npf.data prepare tfasr`` (in the data directory's dem/)
DEFAULT_SCENE = scenes_dir(default_data_dir()) / "srtm3_N46E008.tif"
#: name -> (precision, compile, window, centring, memory); centring as in npf.raster, memory
#: ``python -m npf fill --cpu-memory``: "huge-pages" (the default), "heap" or "plain" (fresh
#: 4 KiB pages, as before either existed)
VARIANTS = {
    "fp32-512-plain": ("fp32", False, 512, "local", "plain"),
    "fp32-256": ("fp32", False, 256, "local", "huge-pages"),
    "fp32-512": ("fp32", False, 512, "local", "huge-pages"),
    "fp32-512-heap": ("fp32", False, 512, "local", "heap"),
    "bf16-512-plain": ("bf16", False, 512, "local", "plain"),
    "bf16-512": ("bf16", False, 512, "local", "huge-pages"),
    "bf16-512-heap": ("bf16", False, 512, "local", "heap"),
    "fp32-compile-512": ("fp32", True, 512, "local", "huge-pages"),
    "bf16-compile-512": ("bf16", True, 512, "local", "huge-pages"),
    "bf16-768": ("bf16", False, 768, "local", "huge-pages"),
    "bf16-512-window": ("bf16", False, 512, "window", "huge-pages"),
    "fp32-512-filled": ("fp32", False, 512, "filled", "huge-pages"),
    "bf16-512-filled": ("bf16", False, 512, "filled", "huge-pages"),
}


def fill(
    scene: Path,
    out: Path,
    precision: str,
    compile: bool,
    window: int,
    centring: str,
    memory: str,
) -> dict:
    """Run one fill in a child process; its wall time and peak resident set."""
    command = [sys.executable, "-m", "npf", "fill", str(scene), "-o", str(out), "--quiet"]
    command += ["--precision", precision, "--window", str(window), "--centring", centring]
    command += ["--compile"] if compile else []
    command += ["--cpu-memory", memory]
    start = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    errors = child.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{errors}")
    return {"seconds": seconds, "peak_mib": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scene", type=Path, default=DEFAULT_SCENE)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--out", type=Path, help="JSON to write (default: results/...)")
    args = parser.parse_args()
    if not args.scene.is_file():
        sys.exit(f"scene {args.scene} not found: python -m npf.data prepare tfasr lays it out")
    with rasterio.open(args.scene) as src:
        band = src.read(1, masked=True)
        shape = band.shape
    voids = np.ma.getmaskarray(band)
    rows, exact, first = [], {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            precision, compile, window, centring, memory = VARIANTS[name]
            out = Path(tmp) / f"{name}.tif"
            row = {
                "variant": name,
                "precision": precision,
                "compile": compile,
                "window": window,
                "centring": centring,
                "memory": memory,
            }
            row |= fill(args.scene, out, precision, compile, window, centring, memory)
            with rasterio.open(out) as filled:
                mean, std = filled.read(1)[voids], filled.read(2)[voids]
            first = first or row["seconds"]
            row["speed_up"] = first / row["seconds"]
            # with local centring every window gives the same result: compare with any
            same = (window if centring == "window" else None, centring)
            if precision == "fp32" and not compile:
                exact[same] = mean, std
            change = "no fp32 eager variant of this window and centring to compare with"
            if same in exact:
                mean_change = np.abs(mean - exact[same][0])
                std_change = np.abs(std - exact[same][1])
                for what, values in (("mean", mean_change), ("std", std_change)):
                    row[f"median_{what}_change"] = float(np.median(values)) if values.size else 0.0
                    row[f"max_{what}_change"] = float(np.max(values, initial=0.0))
                change = (
                    f"change in voids: mean median {row['median_mean_change']:.3g}, max "
                    f"{row['max_mean_change']:.3g}; std max {row['max_std_change']:.3g}"
                )
            rows.append(row)
            print(
                f"{name:>18}: {row['seconds']:6.1f} s  x{row['speed_up']:4.2f}  "
                f"{row['peak_mib']:6.0f} MiB  {change}",
                flush=True,
            )
    record = {
        "scene": args.scene.name,
        "shape": list(shape),
        "void_pixels": int(voids.sum()),
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "machine": platform.processor() or platform.machine(),
        "native_bf16": native_bf16(),
        "rows": rows,
    }
    name = f"fill-speed-cpu-{record['date_utc'][:10]}.json"
    out = args.out or REPO / "benchmarks" / "results" / name
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
