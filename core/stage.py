"""The one protocol every command that produces an output follows.

    report = run_stage("remix", config, body, output=cfg.output, inputs=cfg.input, overwrite=cfg.overwrite)

1. The fingerprint is a hash of the resolved config (less the keys that do
   not change what is written, such as `overwrite`) and of each input: its
   `_SUCCESS` fingerprint when it is a stage output, else its files' names
   and sizes.
2. A finished output with the same fingerprint is skipped; with another one
   the command stops (exit code 2) naming the keys or inputs that changed,
   unless `--overwrite`.
3. The output is claimed (a second live run stops), the body writes into the
   folder it is given and returns its report, `report.json` and
   `config.json` are written, and `_SUCCESS` last.

Every report starts with the common keys `stage`, `docs_in`, `docs_out`,
`removed_by_reason`, `seconds`, and `docs_in == docs_out + sum(removed_by_reason)`
is checked wherever a stage removes documents.
"""
from __future__ import annotations

import hashlib
import json
import posixpath
from typing import Any, Callable, Iterable

from crawl2model.core.errors import InputError, OutputMismatchError
from crawl2model.core.fs import filesystem, is_hidden, list_files, read_json, write_json
from crawl2model.core.log import Timer, get_logger
from crawl2model.core.outputs import StageOutput, is_unfinished, read_success

# Keys that say how to run, not what to write: they never make an output stale.
NOT_FINGERPRINTED = frozenset({"overwrite", "output", "progress", "num_workers", "log_every"})
COMMON_KEYS = ("stage", "docs_in", "docs_out", "removed_by_reason", "seconds")

Body = Callable[[StageOutput, Timer], dict[str, Any]]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value}


def fingerprinted(config: dict[str, Any], skip: Iterable[str] = ()) -> dict[str, Any]:
    """The flattened config keys that decide what is written."""
    drop = NOT_FINGERPRINTED | set(skip)
    return {k: v for k, v in _flatten(config).items() if k.rsplit(".", 1)[-1] not in drop and k not in drop}


def input_fingerprint(path: str, output: str | None = None) -> str:
    """A stage output's own fingerprint, or a hash of the files' names and sizes.

    Hidden files (other runs' claims and temporary folders; what readers skip) and
    anything under `output` (an output written inside its own input folder) do not count.
    """
    fs, p = filesystem(path)
    marker = read_success(fs, p)
    if marker is not None and marker.get("fingerprint"):
        return marker["fingerprint"]
    if is_unfinished(fs, p):
        raise InputError(f"{path} is an unfinished stage output (no _SUCCESS): its run was killed or is "
                         f"still running; rerun the stage that writes it")
    own = filesystem(output)[1].rstrip("/") + "/" if output else None
    files = [f for f in list_files(fs, p)
             if not (own and f.path.startswith(own)) and not is_hidden(posixpath.relpath(f.path, p))]
    if not files:
        raise InputError(f"input not found or empty: {path}")
    h = hashlib.sha256()
    for f in files:
        h.update(f"{posixpath.relpath(f.path, p)}\0{f.size}\n".encode())
    return h.hexdigest()


def fingerprint(stage: str, config: dict[str, Any], inputs: dict[str, str]) -> str:
    blob = json.dumps({"stage": stage, "config": config, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _changes(before: dict[str, Any], after: dict[str, Any], limit: int = 6) -> list[str]:
    keys = sorted(set(before) | set(after))
    changed = [f"{k}: {before.get(k, '(unset)')!r} -> {after.get(k, '(unset)')!r}"
               for k in keys if before.get(k) != after.get(k)]
    return changed[:limit] + ([f"... {len(changed) - limit} more"] if len(changed) > limit else [])


def finish_report(stage: str, report: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Put the common keys first and check that no document went missing."""
    removed = {k: int(v) for k, v in (report.get("removed_by_reason") or {}).items()}
    common = {"stage": stage, "docs_in": report.get("docs_in"), "docs_out": report.get("docs_out"),
              "removed_by_reason": removed, "seconds": round(report.get("seconds", seconds), 3)}
    docs_in, docs_out = common["docs_in"], common["docs_out"]
    if isinstance(docs_in, int) and isinstance(docs_out, int) and (removed or report.get("removes_docs")):
        if docs_in != docs_out + sum(removed.values()):
            raise AssertionError(f"{stage}: docs_in {docs_in} != docs_out {docs_out} + removed "
                                 f"{sum(removed.values())} ({removed}): documents went missing")
    rest = {k: v for k, v in report.items() if k not in common and k != "removes_docs"}
    return {**common, **rest}


def run_stage(stage: str, config: dict[str, Any], body: Body, *, output: str, inputs: Iterable[str] = (),
              overwrite: bool = False, in_place: bool = False, extend: bool = False,
              skip_keys: Iterable[str] = (), config_file: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run `body` under the protocol; returns the report (the old one when skipped).

    `config` is the resolved config as plain values (fingerprinted and kept in
    `_SUCCESS`); `config_file` is what `config.json` holds (default
    `{stage: config}`). `extend` lets an in-place output that is finished with
    other settings grow on (a resumed training run) instead of stopping.
    """
    log = get_logger(stage)
    out = StageOutput(output, overwrite=bool(overwrite), in_place=in_place)
    inputs_fp = {p: input_fingerprint(p, output) for p in inputs}
    keys = fingerprinted(config, skip_keys)
    fp = fingerprint(stage, keys, inputs_fp)
    prior = out.finished()
    if prior is not None and not overwrite:
        if prior.get("fingerprint") == fp:
            log.info(f"{output} is already finished with this config and input (_SUCCESS); skipped")
            return read_json(posixpath.join(output, "report.json"))
    if prior is not None and not overwrite and not (in_place and extend):
        changes = _changes(prior.get("config", {}), keys)
        changes += [f"input {p} changed" for p in sorted(set(inputs_fp) | set(prior.get("inputs", {})))
                    if prior.get("inputs", {}).get(p) != inputs_fp.get(p)]
        raise OutputMismatchError(
            f"{output} was made with other settings ({'; '.join(changes) or 'another version'}); "
            f"rerun with --overwrite to replace it, or choose another --output")
    out.claim()
    timer = Timer()
    try:
        report = finish_report(stage, body(out, timer), timer.total)
        write_json(out.fs, out.path("report.json"), report)
        write_json(out.fs, out.path("config.json"), config_file or {stage: config})
        out.commit(stage, fp, keys, inputs_fp)
    except BaseException:
        if in_place:
            out.release()
        else:
            out.abort()
        raise
    summary = {k: v for k, v in report.items() if isinstance(v, (int, float, str)) and v is not None}
    log.info(json.dumps(summary))
    log.info(f"wrote {output}")
    return report

