"""The servers and their keys: ``serve`` (REST API, intake, explorer), ``mcp`` and ``keys``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from aag.cli.common import Warehouse, err, open_service, out
from aag.errors import AagError, WarehouseError
from aag.extras import require


def serve(
    warehouse: Warehouse = None,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port)")] = 8787,
    intake_interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between intake micro-batches")
    ] = 1.0,
    gold_refresh: Annotated[
        float, typer.Option(min=-1, help="Rebuild gold after intake at most every N seconds (-1: never)")
    ] = 30.0,
) -> None:
    """REST API, Segment intake and explorer page (OpenAPI docs at /docs)."""
    require("serve", "aag serve")
    import uvicorn

    from aag.serving.api import create_app
    from aag.serving.service import ServingService

    serving = ServingService(
        open_service(warehouse).warehouse.uri,
        engine=os.environ.get("AAG_ENGINE", "local"),
        intake_interval=intake_interval,
        gold_refresh=None if gold_refresh < 0 else gold_refresh,
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            f"warning: listening on {host} over plain HTTP: API keys and personal data cross the "
            "network unencrypted; put a TLS-terminating proxy in front",
            soft_wrap=True,
        )
    config = uvicorn.Config(create_app(serving), host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    original = server.startup

    async def announce(*args: Any, **kwargs: Any) -> None:
        await original(*args, **kwargs)
        for listener in server.servers:
            for sock in listener.sockets:
                bound_host, bound_port = sock.getsockname()[:2]
                err.print(
                    f"serving {serving.warehouse.uri} on http://{bound_host}:{bound_port}/ "
                    f"(API docs: http://{bound_host}:{bound_port}/docs)",
                    soft_wrap=True,
                )

    server.startup = announce  # type: ignore[method-assign]
    server.run()


def mcp(warehouse: Warehouse = None) -> None:
    """MCP server on stdio: profile lookup and explain as tools for AI agents."""
    require("serve", "aag mcp")
    from aag.serving.mcp_server import run_stdio

    run_stdio(open_service(warehouse).warehouse.uri, engine=os.environ.get("AAG_ENGINE", "local"))


keys_app = typer.Typer(help="API keys of the REST API (stored as hashes in the warehouse config).")


def _keys_file(warehouse: str | None) -> Path:
    from aag.serving.keys import KEYS_FILE

    svc = open_service(warehouse)
    svc.warehouse.require()
    folder = svc.warehouse.config_dir
    if folder is None:
        raise AagError("API keys live in a local warehouse's config folder")
    return folder / KEYS_FILE


@contextmanager
def _writing_keys(path: Path) -> Iterator[None]:
    """Turn a failed write of the keys file (read-only warehouse, full disk) into one line."""
    try:
        yield
    except OSError as exc:
        raise WarehouseError(f"cannot write the API keys file {path}: {exc.strerror or exc}") from exc


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Argument(help="A name for the key (shown in logs and erasure records)")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: read, ingest, erase, admin")] = "read",
    warehouse: Warehouse = None,
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    from aag.serving.keys import add_key, parse_scopes

    path = _keys_file(warehouse)
    with _writing_keys(path):
        key = add_key(path, name, parse_scopes(scopes))
    out.print(key)


@keys_app.command("list")
def keys_list(warehouse: Warehouse = None) -> None:
    """List key names and scopes (never the keys)."""
    from aag.serving.keys import read_keys

    path = _keys_file(warehouse)
    table = Table("name", "scopes")
    for key in read_keys(path) if path.exists() else []:
        table.add_row(key.name, " ".join(sorted(key.scopes)))
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(name: str, warehouse: Warehouse = None) -> None:
    """Remove a key (the running server stops accepting it at its next request)."""
    from aag.serving.keys import revoke_key

    path = _keys_file(warehouse)
    with _writing_keys(path):
        revoke_key(path, name)
    out.print(f"revoked {name}")
