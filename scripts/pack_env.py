"""Build what a cluster's executors need: the wheel, and a packed environment to ship with the job.

    python scripts/pack_env.py            # what `make dist` runs
    -> dist/crawl2model-<version>-py3-none-any.whl
    -> dist/crawl2model-env.tar.gz        # venv-pack archive: the project + the curation stages' dependencies

Executors then need only Java, Spark and the archive (nothing installed on the hosts):

    crawl2model dedup --master spark://HOST:7077 --ship dist/crawl2model-env.tar.gz ...
    spark-submit --archives dist/crawl2model-env.tar.gz#env --conf spark.pyspark.python=./env/bin/python ...

The environment holds what the executors run of the `data`, `tokenizer` and `blocklists`
extras (not torch or DeepSpeed, nor the driver-only plotting, tokenizer training
and transformers), pinned to the versions of the environment that builds it, so
a driver and its executors write the same bytes. pyspark itself is left out:
every worker's Spark puts its own `pyspark.zip` on the executors' path, and it
must be the cluster's version. Like every venv-pack archive it runs on hosts with the same OS, CPU
architecture and base Python (`sys.base_prefix`) as the machine that built it.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("data", "tokenizer", "blocklists")  # blocklists: the UT1 lists inside datatrove's wheel
# pyspark comes with the cluster's Spark; the rest run only in the driver (plots, tokenizer
# training, HF loading), and pip and setuptools are not needed to run anything.
LEFT_OUT = {"pyspark", "matplotlib", "transformers", "rustbpe"}
NOT_RUN = ["pip", "setuptools"]
PRUNED = {"tests", "include"}  # folders inside packages that nothing imports at run time (~90 MB)
# Parts of the packages that the stages never import, relative to site-packages (~75 MB unpacked):
# Arrow Flight RPC and pyarrow's C++ test module; jieba's POS tagger, paddle mode and keyword
# extraction (the heuristics only cut words); huggingface_hub's Xet downloader (executors download nothing).
UNUSED = ("pyarrow/libarrow_flight.so.*", "pyarrow/libarrow_python_flight.so*", "pyarrow/_flight.*.so",
          "pyarrow/flight.py", "pyarrow/_pyarrow_cpp_tests.*", "jieba/posseg", "jieba/lac_small", "jieba/analyse",
          "hf_xet")
# Run in the packed environment before packing: numba compiles the dedup kernels (`cache=True`:
# `dedup.warm_kernels` runs the signatures, the bucket edges, the union-finds and the Jaccard) into
# the package's __pycache__, so an executor loads them (valid while the source's mtime and size and
# the CPU match; tar keeps the mtime) instead of compiling them in its first task (~15 s per
# executor on a 2-core host); and the filter's word cutter is exercised once, proving the pruned
# jieba still cuts.
WARM = """
from crawl2model.core.text import words
from crawl2model.pipeline.dedup import warm_kernels
warm_kernels()
assert words("数据去重与过滤", "zh")
"""


def requirements(wheel: Path) -> list[str]:
    """The wheel's own requirements for EXTRAS (and the core), those in LEFT_OUT aside."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    wanted = []
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        spec, _, marker = line.split(":", 1)[1].partition(";")
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)", marker)
        name = re.split(r"[<>=!~\[ ]", spec.strip(), maxsplit=1)[0].lower()
        if (extra is None or extra.group(1) in EXTRAS) and name not in LEFT_OUT:
            wanted.append(spec.strip())
    return wanted


def run(*argv: str | Path) -> str:
    return subprocess.run([str(a) for a in argv], check=True, text=True, stdout=subprocess.PIPE).stdout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dist", type=Path, default=ROOT / "dist", help="where the wheel and archive go (default dist/)")
    p.add_argument("--build", type=Path, default=ROOT / "build" / "executor-env",
                   help="the virtualenv that is packed (default build/executor-env)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    args.dist.mkdir(parents=True, exist_ok=True)
    for old in args.dist.glob("crawl2model-*.whl"):
        old.unlink()
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", ROOT, "-w", args.dist)
    wheel = next(args.dist.glob("crawl2model-*.whl"))
    # The builder's versions, so executors write what the driver would.
    pins = [line for line in run(sys.executable, "-m", "pip", "freeze", "--exclude-editable").splitlines()
            if "==" in line and not line.startswith("crawl2model")]
    constraints = args.build.parent / "executor-constraints.txt"
    constraints.parent.mkdir(parents=True, exist_ok=True)
    constraints.write_text("\n".join(pins) + "\n")
    run(sys.executable, "-m", "venv", "--clear", args.build)
    python = args.build / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", constraints,
        "--no-deps", wheel)
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", constraints,
        *requirements(wheel))
    run(python, "-m", "pip", "uninstall", "-q", "-y", *NOT_RUN)
    site = next((args.build / "lib").glob("python3*/site-packages"))
    for folder in sorted(site.glob("*/**/"), key=lambda p: -len(p.parts)):  # test suites, C headers
        if folder.name in PRUNED and folder.is_dir():
            shutil.rmtree(folder)
    for path in (p for pattern in UNUSED for p in site.glob(pattern)):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    run(python, "-I", "-c", WARM)  # -I: not the checkout's crawl2model/ folder in the current directory
    archive = args.dist / "crawl2model-env.tar.gz"
    run(sys.executable, "-m", "venv_pack", "-q", "-p", args.build, "-o", archive, "--force")
    size = archive.stat().st_size
    unpacked = sum(p.stat().st_size for p in args.build.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"{wheel.relative_to(ROOT) if wheel.is_relative_to(ROOT) else wheel}\n"
          f"{archive} ({size / 1e6:.0f} MB, {unpacked / 1e6:.0f} MB unpacked; extras {', '.join(EXTRAS)}, "
          f"without {', '.join(sorted(LEFT_OUT))}) "
          f"in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
