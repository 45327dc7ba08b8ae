"""A class-data archive for the driver's JVM: sessions start in ~3 s instead of ~6.

A Spark session and its first jobs load some 15,000 classes; a JVM that maps
them from a CDS archive (JDK 13+ dynamic archives) skips reading, parsing and
verifying them, which halves the fixed cost every stage pays on a small input.
The archive is written once per Spark install and JVM, by the first stage that
ran without one (`-XX:ArchiveClassesAtExit`: 10-30 s as that process ends, once),
under `~/.cache/crawl2model/jvm/`, where the newest few are kept. The JVM validates it at every
start and ignores one that does not match its classpath or build, so a stale
archive costs speed, never correctness. `CRAWL2MODEL_JVM_CDS=0` turns it off.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

from crawl2model.core.log import get_logger
from crawl2model.core.resources import user_cache

log = get_logger("spark")

QUIET = "-Xlog:cds*=off"   # the JVM reports classes it cannot archive on stdout; none of them matter
_recording: Path | None = None   # where this process's JVM should be dumped, if it records
KEEP_ARCHIVES = 3  # other venvs' and Spark installs' archives kept when one is published


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    return os.path.realpath(java) if java and os.path.exists(java) else None


def archive_path() -> Path | None:
    """The archive for this Spark install and this JVM (None when there is no JVM to use)."""
    import pyspark

    java = _java()
    if os.environ.get("CRAWL2MODEL_JVM_CDS", "1") == "0" or not java:
        return None
    key = hashlib.sha1(f"{pyspark.__version__}|{os.path.dirname(pyspark.__file__)}|{java}".encode()).hexdigest()
    return user_cache("jvm", f"spark-{pyspark.__version__}-{key[:12]}.jsa")


def driver_options(record: bool = True) -> str:
    """JVM options for a driver this process starts: map the archive, or record one at the JVM's exit."""
    global _recording
    path = archive_path()
    if path is None:
        return ""
    if path.is_file():
        return f"-XX:SharedArchiveFile={path} -Xshare:auto {QUIET}"
    if not record or path.with_suffix(".failed").exists():
        return ""
    _recording = path
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(path)
    return f"-XX:ArchiveClassesAtExit={_partial(path)} {QUIET}"


def _partial(path: Path, pid: int | None = None) -> Path:
    """Where a process's JVM writes the archive; renamed to `path` once the JVM has exited."""
    return path.with_name(f"{path.name}.tmp{os.getpid() if pid is None else pid}")


def _remove_orphans(path: Path) -> None:
    """Partial archives of processes that died (a killed driver's JVM still dumps as it exits)."""
    for tmp in path.parent.glob(f"{path.name}.tmp*"):
        pid = tmp.name.rsplit(".tmp", 1)[1]
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (ValueError, PermissionError):
            continue


def _prune(path: Path, keep: int = KEEP_ARCHIVES) -> None:
    """Keep `path` and the `keep` newest other archives: each venv or Spark install records its
    own (~120-190 MB), and a pruned one only costs its next session one recording."""
    others = []
    for p in path.parent.glob("spark-*.jsa"):
        with contextlib.suppress(OSError):  # another process may be pruning too
            if p != path:
                others.append((p.stat().st_mtime, p))
    for _, old in sorted(others, reverse=True)[keep:]:
        with contextlib.suppress(OSError):
            old.unlink()
            log.info(f"removed an old JVM class archive: {old}")


def publish_at_exit() -> None:
    """If the JVM just started records an archive, publish it when this process ends.

    The JVM writes the archive as it exits, with every class it linked (a `jcmd VM.cds
    dynamic_dump` of a running JVM, on JDK 17, leaves out the ~4,000 classes loaded but not
    yet linked: the filter of 400 documents then still loaded 4,500 classes from the jars,
    ~1.5 s of JVM CPU). So at exit this process stops the session and its JVM, waits for
    the dump (10-30 s, once per machine) and renames the file into place; the next sessions
    map it. A failure only costs the speed-up, and is remembered so no later stage pays
    for a dump again.
    """
    global _recording
    path, _recording = _recording, None
    if path is not None:
        import atexit

        atexit.register(_publish, path)


def _publish(path: Path) -> None:
    from pyspark import SparkContext

    tmp = _partial(path)
    proc = getattr(SparkContext._gateway, "proc", None)  # the JVM launch_gateway started
    if proc is None:
        return
    if SparkContext._active_spark_context is not None:
        SparkContext._active_spark_context.stop()
    if path.is_file():  # another process published one meanwhile: no dump to wait for
        proc.kill()
        proc.wait()
        tmp.unlink(missing_ok=True)
        return
    log.info(f"saving the JVM's class archive for faster session starts (once, 10-30 s): {path}")
    try:
        proc.stdin.close()  # the JVM exits when its stdin closes, and dumps as it does
        proc.wait(timeout=600)
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise RuntimeError(f"the JVM wrote no archive (exit code {proc.returncode})")
        os.replace(tmp, path)
    except Exception as e:  # noqa: BLE001 - any failure only loses the speed-up
        log.warning(f"could not save the JVM's class archive ({e}); sessions start without one")
        path.with_suffix(".failed").touch()
        tmp.unlink(missing_ok=True)
        return
    _prune(path)
