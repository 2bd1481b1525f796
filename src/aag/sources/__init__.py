"""Source extractors: one module per system, all on :class:`~aag.sources.base.Extractor`."""

from __future__ import annotations

from aag.config import Config, ObjectSpec
from aag.sources.base import Extracted, Extractor, GenericExtractor
from aag.sources.salesforce import SalesforceContactHistoryExtractor
from aag.sources.sap import SapAdr6Extractor, SapCdhdrExtractor, SapCdposExtractor, SapKna1Extractor
from aag.sources.segment import SegmentIdentifiesExtractor

#: Extractor classes for objects with rules the registry alone cannot express, keyed by
#: lower-case (system, object). Everything else (Salesforce Contact, Account and Asset
#: included: id canonicalisation is the ``salesforce_id`` normaliser, links to accounts
#: are ``reference`` rows) runs on :class:`GenericExtractor`.
EXTRACTORS: dict[tuple[str, str], type[Extractor]] = {
    ("salesforce", "contacthistory"): SalesforceContactHistoryExtractor,
    ("sap", "kna1"): SapKna1Extractor,
    ("sap", "adr6"): SapAdr6Extractor,
    ("sap", "cdhdr"): SapCdhdrExtractor,
    ("sap", "cdpos"): SapCdposExtractor,
    ("segment", "identifies"): SegmentIdentifiesExtractor,
}


def extractor_for(spec: ObjectSpec, config: Config) -> Extractor:
    """The extractor of a source object (the generic one unless a class is registered)."""
    cls = EXTRACTORS.get((spec.source_system.lower(), spec.source_object.lower()), GenericExtractor)
    return cls(spec, config)


def objects_belonging_to(config: Config, source_system: str, source_object: str) -> list[ObjectSpec]:
    """Objects whose rows are about records of ``source_system.source_object``.

    Their landed rows carry that object's record ids (see
    :attr:`~aag.sources.base.Extractor.belongs_to`), e.g. ``ContactHistory`` for
    Salesforce ``Contact``.
    """
    system, obj = source_system.lower(), source_object.lower()
    found = []
    for spec in config.objects:
        cls = EXTRACTORS.get((spec.source_system.lower(), spec.source_object.lower()), GenericExtractor)
        if spec.source_system.lower() == system and (cls.belongs_to or "").lower() == obj:
            found.append(spec)
    return found


def day_precision_prefixes(config: Config) -> tuple[str, ...]:
    """Event id prefixes of objects whose times are days (``yyyymmdd``), e.g. ``sap:KNA1:``.

    Every event an extractor emits has an id starting with ``system:Object:``; the edge
    rules let finer same-day events shadow these (:func:`aag.rules.apply_edge_rules`).
    """
    return tuple(
        sorted(
            f"{spec.source_system}:{spec.source_object}:"
            for spec in config.objects
            if spec.time_format == "yyyymmdd"
        )
    )


__all__ = [
    "EXTRACTORS",
    "Extracted",
    "Extractor",
    "GenericExtractor",
    "day_precision_prefixes",
    "extractor_for",
    "objects_belonging_to",
]
