"""Reading a stage's table back, with Spark or with pyarrow.

A stage folder holds its Parquet partitions (`dump=<id>/`) next to
report.json, config.json and plots. Neither Spark nor pyarrow would read such
a folder as it is (a JSON file is not Parquet, and a file beside partition
folders breaks partition discovery), so readers list the data paths first.
A user's own Parquet dataset (files, or hive folders, only) reads the same way.
"""
from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

import pyarrow.dataset as ds
import pyarrow.fs as pafs

from crawl2model.core.errors import InputError
from crawl2model.core.fs import filesystem

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def data_paths(path: str) -> list[str]:
    """The Parquet files and partition folders directly under `path` (or `path` itself if a file)."""
    fs, p = filesystem(path)
    info = fs.get_file_info(p)
    if info.type == pafs.FileType.NotFound:
        raise InputError(f"table not found: {path}")
    if info.type == pafs.FileType.File:
        return [path]
    found = []
    for i in sorted(fs.get_file_info(pafs.FileSelector(p)), key=lambda i: i.base_name):
        if i.base_name.startswith((".", "_")):
            continue
        if (i.type == pafs.FileType.Directory and "=" in i.base_name) or \
                (i.type == pafs.FileType.File and i.base_name.endswith(".parquet")):
            found.append(posixpath.join(path.rstrip("/"), i.base_name))
    if not found:
        raise InputError(f"no Parquet data in {path}")
    return found


def read_table(spark: "SparkSession", paths: str | list[str]) -> "DataFrame":
    """One or more table folders as one DataFrame, with hive partition columns (e.g. `dump`).

    Several tables are unioned by column name; a column one of them lacks is null there.
    """
    frames = [spark.read.option("basePath", p).parquet(*data_paths(p))
              for p in ([paths] if isinstance(paths, str) else paths)]
    if not frames:
        raise InputError("no input table given")
    table = frames[0]
    for other in frames[1:]:
        table = table.unionByName(other, allowMissingColumns=True)
    return table


def arrow_dataset(path: str) -> ds.Dataset:
    """The same table for pyarrow (tests, small tools)."""
    fs, p = filesystem(path)
    paths = [filesystem(x)[1] for x in data_paths(path)]
    if len(paths) == 1 and fs.get_file_info(paths[0]).type == pafs.FileType.File:
        return ds.dataset(paths[0], filesystem=fs, format="parquet")
    files = []
    for x in paths:
        if fs.get_file_info(x).type == pafs.FileType.File:
            files.append(x)
        else:
            files += [i.path for i in fs.get_file_info(pafs.FileSelector(x, recursive=True))
                      if i.type == pafs.FileType.File and not i.base_name.startswith((".", "_"))]
    return ds.dataset(sorted(files), filesystem=fs, format="parquet",
                      partitioning=ds.partitioning(flavor="hive"), partition_base_dir=p)
