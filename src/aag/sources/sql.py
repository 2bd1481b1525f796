"""The names every part of an extraction shares.

Extraction is SQL in the canonical dialect (:mod:`aag.engine`; quoting is
:mod:`aag.engine.dialect`'s). These are the relationship and node types of the identity
edges, and the engine tables an extraction reads and leaves behind.
"""

from __future__ import annotations

import re

#: rel_type and node type of the identity edge every record gets.
SOURCE_RECORD_REL = "HAS_SOURCE_RECORD"
SOURCE_RECORD_NODE = "source_record"
#: rel_type of a ``same_as`` field: the record names another object's record.
REFERS_TO_RECORD_REL = "REFERS_TO_RECORD"


#: Engine tables an extraction leaves behind for the rules (dropped by the caller).
EVENTS_TABLE = "batch_events"
NODES_TABLE = "batch_nodes"
#: Engine table (``source_node_id``) of the entities that more than one row of the batch
#: is about; only their keys can carry more than one event (see :attr:`aag.sources.base.Extracted.repeats`).
REPEATS_TABLE = "batch_repeats"


def landed_table(source_object: str) -> str:
    """Engine table holding the landed rows of an object another extractor reads.

    See :attr:`aag.sources.base.Extractor.reads`: the pipeline registers the rows under this name before
    extraction, e.g. ``landed_adr6`` for SAP ``ADR6``.
    """
    return "landed_" + re.sub(r"\W", "_", source_object.lower())
