"""The session helper: profiles, conf pairs, and the settings every stage relies on."""
import os
import sys

import pytest

from crawl2model.core.errors import ConfigError
from crawl2model.pipeline.spark import PROFILES_DIR, parse_conf_pairs, read_profile


def test_profiles_parse_and_name_their_master():
    masters = {p.stem: read_profile(p.stem).get("spark.master") for p in PROFILES_DIR.glob("*.conf")}
    assert masters["local"] == "local[*]" and masters["yarn"] == "yarn"
    assert set(masters) >= {"local", "standalone", "yarn", "k8s"}


def test_bad_profile_and_conf_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="known: .*local"):
        read_profile("nosuch")
    bad = tmp_path / "bad.conf"
    bad.write_text("spark.executor.memory\n")
    with pytest.raises(ConfigError, match="bad.conf:1"):
        read_profile(str(bad))
    assert parse_conf_pairs(["a.b=1", "c = x=y"]) == {"a.b": "1", "c": "x=y"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_conf_pairs(["novalue"])


@pytest.mark.spark
def test_session_settings(spark):
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert os.environ["PYSPARK_PYTHON"] == sys.executable
    # Workers run this interpreter: they can import the project.
    got = spark.sparkContext.parallelize([0], 1).map(lambda _: __import__("crawl2model.pipeline").pipeline.__name__).collect()
    assert got == ["crawl2model.pipeline"]
