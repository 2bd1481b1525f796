"""Identity (SPEC §8): which source records are one customer.

Every source record has its own entity node, and its attribute edges hang from it,
so each record keeps its own field history (two CRM duplicates never interleave
their events under one edge key). Records become one customer through the values
they share on *identifier* edges (``identity_rules.csv``: normalised email, a record's
own id, a ``same_as`` field naming another record). The records connected that way
form a cluster; its **survivor** is the record seen first in its source (earliest
``HAS_SOURCE_RECORD`` time, then lowest id), and the survivor's id is the customer id.

The cluster is stored in the same two tables: every other member has one current
``member -[SAME_AS]-> survivor`` edge (``source_system = 'aag'``). These edges are
derived state, recomputed for the clusters a batch touches: when a batch links two
customers, the younger survivor gets a ``SAME_AS`` edge to the older one (the merge
is recorded in the graph and the old customer id keeps resolving), and every
attribute edge of both stays where it was, history included.

A value node links nothing when more than ``max_records_per_source`` records of one
source system point at it, or when it is on ``identity_blocklist.csv``: a shared
placeholder must not glue strangers together.

Identity has memory: clusters are computed over every identifier value a record has
held, current or closed, so a customer who changes their e-mail in one system stays one
customer. A link ends only when a record is deleted in its source (its
``HAS_SOURCE_RECORD`` edge is closed: it links nothing), when the over-sharing guard or
the blocklist rules the value out (the guard counts every record that ever held the
value), or when an operator keeps two records apart (:mod:`aag.identity.overrides`).
Because clusters are a function of the full identifier history and the operator
decisions, any order of batches gives the same clusters and survivors.

- :mod:`aag.identity.settings`: the identity rules of one entity type.
- :mod:`aag.identity.closure`: the records a batch touches, and the SAME_AS change.
- :mod:`aag.identity.clusters`: which values link records, and the clusters they form.
- :mod:`aag.identity.overrides`: operator decisions on a pair of records (link, unlink).
- :mod:`aag.identity.relink`: identity outside a batch: re-linking the records a decision
  names.
"""

from __future__ import annotations

from aag.identity.closure import ID_KEYS, ID_ROWS, IdentityResult, release_identity, resolve_identity
from aag.identity.settings import IDENTITY_SYSTEM, SAME_AS_REL, IdentitySettings, identity_settings

__all__ = [
    "IDENTITY_SYSTEM",
    "ID_KEYS",
    "ID_ROWS",
    "SAME_AS_REL",
    "IdentityResult",
    "IdentitySettings",
    "identity_settings",
    "release_identity",
    "resolve_identity",
]
