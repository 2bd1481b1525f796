"""AAG: an atomic attribute graph that keeps field-level truth about customers.

Every distinct attribute value is a node; entities link to values through SCD
Type 2 edges that carry the time *that field* changed in *that source*. Two
Delta tables (``nodes`` and ``relationships``) hold the whole graph.
"""

from aag.ids import entity_node_id, value_checksum, value_node_id

__all__ = ["__version__", "entity_node_id", "value_checksum", "value_node_id"]

__version__ = "0.1.0"
