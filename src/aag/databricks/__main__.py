"""``python -m aag.databricks``: the setup SQL writer and the graph commit task."""

from aag.databricks.job import main

main()
