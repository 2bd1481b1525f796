"""``aag mcp``: profile lookup and attribute explanations as MCP tools for AI agents.

The server speaks MCP over stdio (an agent host starts it as a subprocess) and reads
the warehouse through the same :class:`ServingService` as the REST API: profiles from
the last gold build, explanations from silver. It is read-only: no intake, no erasure.

A tool that fails (an unknown customer, a bad attribute) answers a result with
``isError: true`` and the one-line message, as MCP asks, so the agent can read it and
try something else. A line on stdin that is not JSON gets a JSON-RPC ``-32700`` error
(``-32600`` if it is JSON but no JSON-RPC message), instead of silence.
"""

from __future__ import annotations

from typing import Any

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp.types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError

from aag import __version__
from aag.errors import AagError
from aag.serving.api import _json
from aag.serving.service import NODE_ID, ServingService

INSTRUCTIONS = (
    "AAG keeps field-level truth about customers merged from Salesforce, SAP, Shopify, "
    "Segment and Zendesk. Find a customer first (find_customer), then read the profile; "
    "use explain_attribute to say which source a value came from and why it won."
)


def build_server(serving: ServingService) -> MCPServer:
    """An MCP server whose tools call ``serving``."""
    server = MCPServer(name="aag", instructions=INSTRUCTIONS, version=__version__)

    def guarded(call: Any) -> dict[str, Any]:
        # A tool error reaches the agent as a readable line (isError), not a stack trace.
        try:
            result: dict[str, Any] = _json(call())
            return result
        except AagError as exc:
            raise ToolError(str(exc).splitlines()[0]) from None

    def customer_of(customer_id: str) -> str:
        """A customer id, or the customer of a ``system:record id``."""
        text = customer_id.strip()
        if not NODE_ID.fullmatch(text) and ":" in text:
            system, _, record_id = text.partition(":")
            return serving.customer_of_record(system.strip(), record_id.strip())
        return text

    @server.tool(description="Find customers by customer id, e-mail, phone or 'source:record id'.")
    def find_customer(query: str) -> dict[str, Any]:
        return guarded(lambda: {"results": serving.search(query)})

    @server.tool(
        description=(
            "The resolved customer profile (version 2 adds each attribute's source and the time "
            "that field changed). customer_id is the customer id (a UUID), the id of any record "
            "entity merged into it, or a source record as 'system:record id' "
            "(e.g. 'salesforce:0035g00000Alex1AA')."
        )
    )
    def get_profile(customer_id: str, version: int = 2) -> dict[str, Any]:
        return guarded(lambda: serving.profile(customer_of(customer_id), version))

    @server.tool(
        description=(
            "Why an attribute (email, phone, full_name, city, ...) of a customer has its value: "
            "the winner, every competing value with the reason it lost, and the version history. "
            "customer_id takes the same forms as in get_profile."
        )
    )
    def explain_attribute(customer_id: str, attribute: str) -> dict[str, Any]:
        return guarded(lambda: serving.explain(customer_of(customer_id), attribute))

    return server


def _unreadable(exc: Exception) -> SessionMessage:
    """The JSON-RPC error answering a line that was no message (``id`` null: none was read)."""
    errors = exc.errors() if isinstance(exc, ValidationError) else []
    if errors and errors[0].get("type") == "json_invalid":
        error = ErrorData(code=PARSE_ERROR, message="Parse error: the line is not valid JSON")
    else:
        error = ErrorData(code=INVALID_REQUEST, message="Invalid Request: not a JSON-RPC 2.0 message")
    return SessionMessage(JSONRPCError(jsonrpc="2.0", id=None, error=error))


async def _serve_stdio(server: MCPServer) -> None:
    # The SDK passes unreadable lines on as exceptions and only logs them; answer them.
    lowlevel = server._lowlevel_server
    async with stdio_server() as (read_stream, write_stream):
        relay_send, relay_receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def relay() -> None:
            async with relay_send:
                async for item in read_stream:
                    if isinstance(item, Exception):
                        await write_stream.send(_unreadable(item))
                    else:
                        await relay_send.send(item)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(relay)
            await lowlevel.run(relay_receive, write_stream, lowlevel.create_initialization_options())
            tasks.cancel_scope.cancel()


def run_stdio(warehouse: str, engine: str = "local") -> None:
    """Serve the tools over stdio until the client closes the stream."""
    serving = ServingService(warehouse, engine=engine, gold_refresh=None)
    serving.index.load()
    anyio.run(_serve_stdio, build_server(serving))
