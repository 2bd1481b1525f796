"""``aag mcp``: profile lookup and attribute explanations as MCP tools for AI agents.

The server speaks MCP over stdio (an agent host starts it as a subprocess) and reads
the warehouse through the same :class:`ServingService` as the REST API: profiles from
the last gold build, explanations from silver. It is read-only: no intake, no erasure.
"""

from __future__ import annotations

from typing import Any

from mcp.server import MCPServer

from aag.errors import AagError
from aag.serving.api import _json
from aag.serving.service import ServingService

INSTRUCTIONS = (
    "AAG keeps field-level truth about customers merged from Salesforce, SAP, Shopify, "
    "Segment and Zendesk. Find a customer first (find_customer), then read the profile; "
    "use explain_attribute to say which source a value came from and why it won."
)


def build_server(serving: ServingService) -> MCPServer:
    """An MCP server whose tools call ``serving``."""
    server = MCPServer(name="aag", instructions=INSTRUCTIONS)

    def guarded(call: Any) -> dict[str, Any]:
        # Tool errors reach the agent as a readable message, not a stack trace.
        try:
            result: dict[str, Any] = _json(call())
            return result
        except AagError as exc:
            return {"error": str(exc).splitlines()[0]}

    @server.tool(description="Find customers by customer id, e-mail, phone or 'source:record id'.")
    def find_customer(query: str) -> dict[str, Any]:
        return guarded(lambda: {"results": serving.search(query)})

    @server.tool(
        description=(
            "The resolved customer profile (version 2 adds each attribute's source and the time "
            "that field changed). customer_id may be any record id of the customer."
        )
    )
    def get_profile(customer_id: str, version: int = 2) -> dict[str, Any]:
        return guarded(lambda: serving.profile(customer_id, version))

    @server.tool(
        description=(
            "Why an attribute (email, phone, full_name, city, ...) of a customer has its value: "
            "the winner, every competing value with the reason it lost, and the version history."
        )
    )
    def explain_attribute(customer_id: str, attribute: str) -> dict[str, Any]:
        return guarded(lambda: serving.explain(customer_id, attribute))

    return server


def run_stdio(warehouse: str, engine: str = "local") -> None:
    """Serve the tools over stdio until the client closes the stream."""
    serving = ServingService(warehouse, engine=engine, gold_refresh=None)
    serving.index.load()
    build_server(serving).run("stdio")
