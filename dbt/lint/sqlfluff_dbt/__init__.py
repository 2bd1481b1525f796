"""What sqlfluff's jinja templater needs to render this dbt project offline.

sqlfluff's dbt builtins stand in for ref/source/config; this library adds the rest
the project uses (project vars with their real values, target, the dbt namespace),
rendered as on the databricks target, the dialect the SQL is linted in.
"""

from pathlib import Path
from types import SimpleNamespace

import yaml

_PROJECT = yaml.safe_load((Path(__file__).resolve().parents[2] / "dbt_project.yml").read_text())
_VARS = dict(_PROJECT.get("vars") or {})

target = SimpleNamespace(type="databricks", name="databricks", database="main", schema="aag")
invocation_id = "00000000-0000-0000-0000-000000000000"


def var(name, default=None):
    """A project var (dbt_project.yml), else the default."""
    return _VARS.get(name, default)


dbt = SimpleNamespace(
    type_string=lambda: "string",
    current_timestamp=lambda: "current_timestamp()",
)


def env_var(name, default=None):
    """Unset: the project renders as a run that does not know what changed."""
    return default
