"""A pytest plugin for the PySpark 3.5 run (``tests/test_spark35.py``): what really ran.

After each test it writes, to the JSON file ``AAG_SPARK35_REPORT`` names, the PySpark
client's version, the version of the Spark session the test used, and the jar Delta
Lake's classes were loaded from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    yield
    import pyspark
    from pyspark.sql import SparkSession

    spark: Any = SparkSession.getActiveSession()
    report: dict[str, Any] = {"test": item.nodeid, "pyspark": pyspark.__version__}
    if spark is not None:
        report["spark"] = spark.version
        # Delta's jars are on the driver's context class loader (spark.jars), not the system one.
        jvm = spark._jvm
        try:
            loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
            delta = loader.loadClass("io.delta.tables.DeltaTable")
            report["delta_jar"] = str(delta.getProtectionDomain().getCodeSource().getLocation().toString())
        except Exception as error:  # reported, and failed on, by tests/test_spark35.py
            report["delta_jar"] = f"not found: {error}"
    with open(os.environ["AAG_SPARK35_REPORT"], "w", encoding="utf-8") as handle:
        json.dump(report, handle)
