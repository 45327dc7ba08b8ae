"""Reading tables without Spark's own inference jobs: footer row counts and footer schemas."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawl2model.pipeline.tables import local_rows, read_table


@pytest.fixture
def hive(tmp_path):
    for dump, n in (("CC-MAIN-2024-10", 3), ("CC-MAIN-2024-18", 5)):
        folder = tmp_path / "docs" / f"dump={dump}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"doc_id": [f"{dump}-{i}" for i in range(n)], "text": ["x"] * n,
                                 "n_chars": pa.array([1] * n, pa.int32())}), folder / "part-0.parquet")
    return tmp_path / "docs"


def test_local_rows_sum_the_footers(hive):
    assert local_rows(str(hive)) == 8
    assert local_rows([str(hive), str(hive / "dump=CC-MAIN-2024-18" / "part-0.parquet")]) == 13
    assert local_rows(str(hive), most_files=1) is None  # many files: Spark's parallel count instead


@pytest.mark.spark
def test_footer_schema_is_the_one_spark_infers(spark, hive):
    ours = read_table(spark, str(hive))
    inferred = spark.read.option("basePath", str(hive)).parquet(*map(str, sorted(hive.rglob("*.parquet"))))
    assert ours.schema == inferred.schema
    assert sorted(map(tuple, ours.select("dump", "doc_id").collect())) == \
        sorted(map(tuple, inferred.select("dump", "doc_id").collect()))
