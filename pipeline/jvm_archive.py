"""A class-data archive for the driver's JVM: sessions start in ~3 s instead of ~6.

A Spark session and its first jobs load some 15,000 classes; a JVM that maps
them from a CDS archive (JDK 13+ dynamic archives) skips reading, parsing and
verifying them, which halves the fixed cost every stage pays on a small input.
The archive is written once per Spark install and JVM, by the first stage that
ran without one (`jcmd PID VM.cds dynamic_dump` when its work is done: about
8 s, once), under `~/.cache/crawl2model/jvm/`. The JVM validates it at every
start and ignores one that does not match its classpath or build, so a stale
archive costs speed, never correctness. `CRAWL2MODEL_JVM_CDS=0` turns it off.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from crawl2model.core.log import get_logger
from crawl2model.core.resources import user_cache

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = get_logger("spark")

QUIET = "-Xlog:cds*=off"   # the JVM reports classes it cannot archive on stdout; none of them matter
_recording: Path | None = None   # where this process's JVM should be dumped, if it records


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    return os.path.realpath(java) if java and os.path.exists(java) else None


def _jcmd() -> str:
    return os.path.join(os.path.dirname(_java() or ""), "jcmd")


def archive_path() -> Path | None:
    """The archive for this Spark install and this JVM (None when there is no JVM or jcmd to use)."""
    import pyspark

    java = _java()
    if os.environ.get("CRAWL2MODEL_JVM_CDS", "1") == "0" or not java:
        return None
    key = hashlib.sha1(f"{pyspark.__version__}|{os.path.dirname(pyspark.__file__)}|{java}".encode()).hexdigest()
    return user_cache("jvm", f"spark-{pyspark.__version__}-{key[:12]}.jsa")


def driver_options(record: bool = True) -> str:
    """JVM options for a driver this process starts: map the archive, or record what to put in one."""
    global _recording
    path = archive_path()
    if path is None:
        return ""
    if path.is_file():
        return f"-XX:SharedArchiveFile={path} -Xshare:auto {QUIET}"
    if not record or not os.access(_jcmd(), os.X_OK) or path.with_suffix(".failed").exists():
        return ""
    _recording = path
    return f"-XX:+RecordDynamicDumpInfo {QUIET}"


def save_archive(spark: "SparkSession") -> None:
    """Dump the classes this session's JVM loaded into the archive, if it was started to record.

    Runs once, after a stage's work: the next sessions start from it. A failure
    only costs the speed-up, and is remembered so no later stage pays the dump again.
    """
    global _recording
    path, _recording = _recording, None
    if path is None or path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    log.info(f"saving the JVM's class archive for faster session starts (once): {path}")
    try:
        pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
        done = subprocess.run([_jcmd(), str(pid), "VM.cds", "dynamic_dump", str(tmp)],
                              check=False, capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            raise RuntimeError((done.stdout + done.stderr).strip()[-300:])
        os.replace(tmp, path)
    except Exception as e:  # noqa: BLE001 - any failure only loses the speed-up
        log.warning(f"could not save the JVM's class archive ({e}); sessions start without one")
        path.with_suffix(".failed").touch()
        tmp.unlink(missing_ok=True)
