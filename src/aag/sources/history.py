"""Field histories: each row records one change of one field of another object's record.

Record-level sources stamp every field with the record's write time. Some also keep a
log of field changes (Salesforce ``ContactHistory``, SAP change documents), which gives
the exact time each field changed: a field-level (tier 1) event per row.

A history row names its record (``ContactId``), the changed field (``Field``), the new
value (``NewValue``) and the time. Its event goes to **that record's entity** (the
extractor :attr:`~aag.sources.base.Extractor.belongs_to` the record's object), and the
field is mapped by **that object's registry rows**: the same attribute, ``rel_type``,
node type, normaliser and confidence as the record feed, and the same ``source_system``.
So the history and the record feed describe one key K, and SPEC §3 combines them: a
run's first event is the history's exact change time whichever feed lands first, and
the record feed's later repeats of the value are absorbed.

Only the changed field takes part (like a Segment trait, a field a row does not name
says nothing); an empty new value removes the source's value. A change of the record
object's deletion flag to "deleted" removes every mapped field at that time. A field
without a registry row of the record object (Salesforce's ``created`` rows, fields AAG
does not map) yields nothing and is not an error.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import pyarrow as pa

from aag.config import Config, ObjectSpec, RegistryRow
from aag.engine.base import Engine
from aag.engine.dialect import ident, lit
from aag.errors import ConfigError
from aag.normalize import sql_normalise
from aag.sources.base import Extractor


def present_column(source_field: str) -> str:
    """Column telling whether a history row changes ``source_field``."""
    return f"_changes:{source_field}"


class FieldHistoryExtractor(Extractor):
    """Rows of a field-change log of another object's records, one event per row.

    Subclasses set :attr:`~aag.sources.base.Extractor.belongs_to` and the two columns
    below; the registry rows of the history object give its record id (the record it
    belongs to) and, where the log has one, its time (``record_time``).
    """

    #: Column naming the changed field: a ``source_field`` of the record object.
    field_column: ClassVar[str] = ""
    #: Column holding the field's new value (empty: the value was removed).
    value_column: ClassVar[str] = ""

    def __init__(self, spec: ObjectSpec, config: Config) -> None:
        super().__init__(spec, config)
        owner = self.owner
        if owner is None or not self.field_column or not self.value_column:
            raise TypeError(f"{type(self).__name__} must set belongs_to, field_column and value_column")
        if spec.id_normaliser != owner.id_normaliser:
            # Different canonical ids would put the events on entities the records never become.
            raise ConfigError(
                f"{spec.name}: its record id uses the {spec.id_normaliser!r} normaliser, but the "
                f"records it belongs to ({owner.name}) use {owner.id_normaliser!r}"
            )
        #: The history object as the registry describes it (its own columns).
        self.history_spec = spec
        # The record object's rows map the fields; id and time stay the history's own.
        self.spec = replace(
            spec,
            entity_type=owner.entity_type,
            deleted_field=owner.deleted_field,
            deleted_normaliser=owner.deleted_normaliser,
            attributes=owner.attributes,
            same_as=(),
        )

    @property
    def fields(self) -> tuple[str, ...]:
        """The history's own columns (the record object's columns are derived from them)."""
        return tuple(dict.fromkeys((*self.history_spec.fields, *self.extra_fields)))

    def present_sql(self, row: RegistryRow) -> str | None:
        """A field takes part only in the rows that change it."""
        return ident(present_column(row.source_field))

    def changes_sql(self, source_field: str) -> str:
        """SQL telling whether a row records a change of ``source_field``.

        Field names are compared without regard to case: logs spell them as the source's
        API does, which the registry may not.
        """
        named = f"lower(trim({ident(self.field_column)})) = {lit(source_field.lower())}"
        relevant = self.relevant_sql()
        return f"(coalesce({relevant}, FALSE) AND {named})" if relevant else f"coalesce({named}, FALSE)"

    def change_sql(self, row: RegistryRow) -> tuple[str, str]:
        """SQL for one mapped field in a history row: (new value, whether the row changes it)."""
        changed = self.changes_sql(row.source_field)
        return f"CASE WHEN {changed} THEN {ident(self.value_column)} END", changed

    def deletion_sql(self) -> str:
        """SQL telling whether a row sets the record object's deletion flag."""
        spec = self.spec
        if not spec.deleted_field:
            return "FALSE"
        flag, _ = sql_normalise(spec.deleted_normaliser, ident(self.value_column))
        return f"({self.changes_sql(spec.deleted_field)} AND coalesce({flag} = 'true', FALSE))"

    def history_rows_sql(self, source: str, columns: list[str]) -> tuple[str, list[str]]:
        """The rows to spread into fields, and their columns.

        A subclass may join what a row lacks (an SAP change document item's time is in
        its header).
        """
        return f"SELECT {', '.join(ident(c) for c in columns)} FROM {source}", columns  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names

    def pivot_sql(self, source: str, columns: list[str]) -> str:
        """One column per mapped field (the new value where the row changes it) + flags."""
        spec = self.spec
        generated: dict[str, str] = {}
        deletion = self.deletion_sql()
        if spec.deleted_field:
            generated[spec.deleted_field] = (
                f"CASE WHEN {self.changes_sql(spec.deleted_field)} THEN {ident(self.value_column)} END"
            )
        for row in spec.attributes:
            value, changed = self.change_sql(row)
            generated[row.source_field] = value
            # Deletion removes every field, as a record-level deletion flag does.
            generated[present_column(row.source_field)] = f"({changed} OR {deletion})"
        rows_sql, row_columns = self.history_rows_sql(source, columns)
        keep = [ident(c) for c in row_columns if c not in generated]
        picks = keep + [f"{sql} AS {ident(name)}" for name, sql in generated.items()]
        return f"SELECT {', '.join(picks)} FROM ({rows_sql}) h"  # noqa: S608 - config names via dialect.ident/lit; relations are internal table names

    def enrich_sql(self, source: str, columns: list[str]) -> str:
        """:meth:`pivot_sql`: the record object's field columns, as :meth:`enrich` gives them."""
        return self.pivot_sql(source, columns)

    def enrich(self, engine: Engine, rows: pa.Table) -> pa.Table:
        """Spread each row's change into the record object's field columns (:meth:`enrich_sql`)."""
        engine.register("history_rows", rows)
        try:
            return engine.query(self.enrich_sql("history_rows", rows.column_names))
        finally:
            engine.drop("history_rows")
