"""Input discovery and task planning (driver side, no Spark)."""
import pytest

from crawl2model.core.errors import InputError
from crawl2model.pipeline.inputs import InputFile, Split, discover, pack_tasks, plan_splits


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_dump_folders_at_any_depth(tmp_path):
    _touch(tmp_path / "CC-MAIN-2024-10" / "segments" / "1" / "warc" / "a.warc.gz")
    _touch(tmp_path / "CC-MAIN-2024-18" / "b.warc.wet.gz")
    _touch(tmp_path / "CC-MAIN-2024-18" / "notes.txt")
    _touch(tmp_path / "CC-MAIN-2024-18" / "_SUCCESS")
    _touch(tmp_path / "CC-MAIN-2024-18" / "user.jsonl.gz")
    files, ignored = discover([str(tmp_path)])
    assert [(f.dump, f.kind, f.path.rsplit("/", 1)[1]) for f in files] == [
        ("CC-MAIN-2024-10", "crawl", "a.warc.gz"),
        ("CC-MAIN-2024-18", "crawl", "b.warc.wet.gz"),
        ("CC-MAIN-2024-18", "jsonl", "user.jsonl.gz"),
    ]
    assert [p.rsplit("/", 1)[1] for p in ignored] == ["notes.txt"]


def test_globs_with_dump_and_dump_from_path(tmp_path):
    _touch(tmp_path / "x" / "a.warc")
    _touch(tmp_path / "x" / "b.arc.gz")
    files, _ = discover([str(tmp_path / "x" / "*")], dump="mine")
    assert {f.dump for f in files} == {"mine"} and len(files) == 2
    f = _touch(tmp_path / "CC-MAIN-2023-50-files" / "c.warc.gz")
    files, _ = discover([str(f)])
    assert files[0].dump == "CC-MAIN-2023-50"


def test_clear_errors(tmp_path):
    with pytest.raises(InputError, match="not found: .*nope"):
        discover([str(tmp_path / "nope")])
    with pytest.raises(InputError, match="matches no file"):
        discover([str(tmp_path / "*.warc")])
    loose = _touch(tmp_path / "loose.warc.gz")
    with pytest.raises(InputError, match="--dump"):
        discover([str(loose)])
    with pytest.raises(InputError, match="unsupported input file type"):
        discover([str(_touch(tmp_path / "a.pdf"))])


def test_splits_cover_files_and_tasks_pack_in_order(tmp_path, monkeypatch):
    import crawl2model.pipeline.warc

    monkeypatch.setattr(crawl2model.pipeline.warc, "is_splittable", lambda path: path.endswith(".gz"))
    files = [InputFile("/a.warc.gz", "d", "crawl", 250), InputFile("/b.warc", "d", "crawl", 250),
             InputFile("/c.jsonl", "d", "jsonl", 30)]
    splits = plan_splits(files, split_bytes=100)
    assert [(s.path, s.start, s.end) for s in splits] == [
        ("/a.warc.gz", 0, 100), ("/a.warc.gz", 100, 200), ("/a.warc.gz", 200, 250),
        ("/b.warc", 0, 250), ("/c.jsonl", 0, 30)]
    tasks = pack_tasks(splits, task_bytes=200)
    assert [[(s.path, s.start) for s in t] for t in tasks] == [
        [("/a.warc.gz", 0), ("/a.warc.gz", 100)], [("/a.warc.gz", 200)], [("/b.warc", 0)], [("/c.jsonl", 0)]]
    assert sum(len(t) for t in tasks) == len(splits)
    assert isinstance(tasks[0][0], Split)
