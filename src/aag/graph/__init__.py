"""The graph store and its warehouse: the silver graph on Delta, and the folders around it.

:mod:`~aag.graph.store` scans and commits the graph (:mod:`~aag.graph.flat_edges` turns
flat edges into relationships rows), :mod:`~aag.graph.delta` wraps delta-rs,
:mod:`~aag.graph.warehouse` lays out bronze, silver, quarantine, the ledger and config,
and :mod:`~aag.graph.local_writes` keeps a local warehouse's writes whole.
"""
