"""Salesforce field history: ``ContactHistory`` rows are field events of their Contact.

Salesforce Contact is a record-level source (``LastModifiedDate``). With field history
tracking on, Salesforce also writes one ``ContactHistory`` row per tracked field change:
``ContactId``, ``Field`` (the Contact field's API name, e.g. ``Phone``), ``OldValue``,
``NewValue`` and ``CreatedDate`` (when the change happened). Each row becomes a
field-level event of the Contact's own entity, mapped by the Contact's registry rows
(see :mod:`aag.sources.history`), so it shares the edge key with the Contact feed and
gives the run its exact start time.

Rows Salesforce writes for other things (``Field = 'created'``, compound or relationship
names such as ``Account``, fields without a Contact registry row) yield nothing. The
history row's ``Id`` names the event (``salesforce:ContactHistory:<Id>:<field>``), so a
replayed history row is the very event already stored.
"""

from __future__ import annotations

from aag.engine.dialect import ident
from aag.sources.history import FieldHistoryExtractor


class SalesforceContactHistoryExtractor(FieldHistoryExtractor):
    """``ContactHistory``: one field event per row, on the Contact's entity."""

    belongs_to = "Contact"
    field_column = "Field"
    value_column = "NewValue"
    # OldValue is kept in bronze only: the previous event of the key already says it.
    extra_fields = ("Id", "Field", "NewValue")

    def event_key_sql(self) -> str | None:
        """The history row's ``Id``."""
        return f"nullif(trim({ident('Id')}), '')"
