"""Salesforce extractors.

Contact is a record-level ("tier 2") source: ``LastModifiedDate`` stamps the
whole record, so the edge rules' change detection is what keeps unchanged
fields at their real change time. ``IsDeleted`` removes the record's values;
``HasOptedOutOfEmail`` is read as the negation of email marketing consent (in
the registry). Salesforce-specific here: record ids arrive as 15-character
case-sensitive or 18-character case-insensitive forms of the same id, and are
canonicalised to 18 characters so both spellings are one record.
"""

from __future__ import annotations

from aag.sources.base import Extractor, q

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def sf_id18(record_id: str) -> str:
    """The 18-character form of a Salesforce id (15-character ids get their checksum)."""
    if len(record_id) != 15:
        return record_id
    suffix = ""
    for chunk in range(3):
        bits = 0
        for i in range(5):
            char = record_id[chunk * 5 + i]
            if "A" <= char <= "Z":
                bits |= 1 << i
        suffix += _SUFFIX_ALPHABET[bits]
    return record_id + suffix


def sf_id18_sql(col: str) -> str:
    """SQL computing :func:`sf_id18` (canonical dialect)."""
    chunks = []
    for chunk in range(3):
        terms = " + ".join(
            f"(CASE WHEN substr({col}, {chunk * 5 + i + 1}, 1) BETWEEN 'A' AND 'Z' THEN {1 << i} ELSE 0 END)"
            for i in range(5)
        )
        chunks.append(f"substr('{_SUFFIX_ALPHABET}', {terms} + 1, 1)")
    return f"CASE WHEN length({col}) = 15 THEN concat({col}, {', '.join(chunks)}) ELSE {col} END"


class SalesforceContactExtractor(Extractor):
    """Salesforce ``Contact``: registry-driven, plus 18-character id canonicalisation."""

    def record_id_sql(self) -> str:
        """Trimmed id, 15-character ids extended to 18 characters."""
        return sf_id18_sql(f"nullif(trim({q(self.spec.id_field)}), '')")
