"""The REST API and explorer page (``aag serve``): FastAPI over :class:`ServingService`.

Handlers only translate HTTP to service calls: authentication (API keys with scopes),
body limits, and errors mapped from :mod:`aag.errors` to status codes with a one-line
``{"error": ...}`` body. Handlers are plain functions, so FastAPI runs them in its
thread pool and a slow lineage read never blocks a profile lookup.
"""

import base64
import gzip
import json
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from aag import __version__
from aag.errors import AagError, ConflictError, InputError, NotFoundError, WarehouseError
from aag.normalize import has_control
from aag.serving.intake import MAX_BODY_BYTES, parse_calls
from aag.serving.keys import ApiKey
from aag.serving.service import ServingService

log = logging.getLogger("aag.api")

#: Path and query strings longer than this are refused before any lookup.
MAX_ID = 256


class ApiError(Exception):
    """An HTTP error with a one-line message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _status_of(exc: AagError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, InputError):
        return 400
    if isinstance(exc, ConflictError):
        return 503
    if isinstance(exc, WarehouseError):
        return 503
    return 500


def _key_of(request: Request) -> str | None:
    """The API key: ``Authorization: Bearer``, ``X-API-Key``, or Basic (Segment's write key)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            user = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return None
        return user or None
    return request.headers.get("x-api-key") or None


def _json(value: Any) -> Any:
    """Times as ISO 8601 UTC with ``Z``, recursively."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def _decision(raw: bytes) -> dict[str, Any]:
    """The body of an identity decision, checked (400 with one line otherwise)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object with action, records and note")
    action, records, note = body.get("action"), body.get("records"), body.get("note", "")
    if not isinstance(action, str) or not isinstance(note, str):
        raise ApiError(400, "action and note must be strings")
    if not isinstance(records, list) or len(records) != 2 or not all(isinstance(r, str) for r in records):
        raise ApiError(400, "records must be a list of two SOURCE:OBJECT:ID strings")
    if has_control(action + note + "".join(records)):
        raise ApiError(400, "control characters are not allowed")
    return {"action": action, "records": records, "note": note}


async def _body(request: Request) -> bytes:
    """The request body, refused past :data:`MAX_BODY_BYTES` (also when gzip-inflated)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"body larger than {MAX_BODY_BYTES // 1024} KB")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"body larger than {MAX_BODY_BYTES // 1024} KB")
        chunks.append(chunk)
    body = b"".join(chunks)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        # Inflate at most the limit plus one byte: a gzip bomb stops there.
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, MAX_BODY_BYTES + 1)
        except (zlib.error, gzip.BadGzipFile):
            raise ApiError(400, "body is not valid gzip") from None
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, f"body larger than {MAX_BODY_BYTES // 1024} KB once inflated")
    return body


#: Sent with every response: no MIME sniffing, no framing (clickjacking), no referrer.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
]


#: The API docs pages load scripts, styles, images and fonts from this server only (their
#: inline start-up script and ReDoc's worker and injected styles need the rest).
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' blob:; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'"
)


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` and ``Cache-Control: no-store``.

    ``no-store`` goes on everything but the page's static files: API answers hold
    personal data, which no browser or proxy cache should keep.

    Plain ASGI rather than ``@app.middleware``: it wraps ``send`` and nothing else, so a
    profile from memory stays a few hundred microseconds of work.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Handle one ASGI event, adding the headers to an HTTP response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if cacheable or k.lower() != b"cache-control"
                ]
                # A page with its own policy (the docs) keeps it; it forbids framing too.
                own = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in own]
                if not cacheable:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _serving(request: Request) -> ServingService:
    serving: ServingService = request.app.state.serving
    return serving


def require(scope: str) -> Callable[[Request], Awaitable[ApiKey]]:
    """A dependency admitting requests whose API key has ``scope`` (401/403 otherwise)."""

    async def check(request: Request) -> ApiKey:
        # Async on purpose: a stat and a hash, no reason to hop to the thread pool.
        key = _serving(request).keys.check(_key_of(request))
        if key is None:
            raise ApiError(401, "missing or unknown API key", {"WWW-Authenticate": "Bearer"})
        if scope not in key.scopes:
            raise ApiError(403, f"this key lacks the {scope!r} scope")
        return key

    return check


# Annotations are evaluated by FastAPI at import time: these aliases must be module-level.
Reader = Annotated[ApiKey, Depends(require("read"))]
Ingester = Annotated[ApiKey, Depends(require("ingest"))]
Eraser = Annotated[ApiKey, Depends(require("erase"))]
Admin = Annotated[ApiKey, Depends(require("admin"))]
Id = Annotated[str, Path(min_length=1, max_length=MAX_ID)]
Attribute = Annotated[str, Path(min_length=1, max_length=64)]
Version = Annotated[int, Query(ge=1, le=2, description="Profile shape: 1 or 2")]


def create_app(serving: ServingService, start_worker: bool = True) -> FastAPI:
    """The FastAPI application over a serving service.

    Args:
        serving: What the handlers call.
        start_worker: Start the intake worker and load gold when the app starts.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if start_worker:
            serving.start()
        try:
            yield
        finally:
            serving.stop()

    app = FastAPI(
        title="AAG",
        version=__version__,
        description="Field-level truth for customer data: profiles, lineage, Segment intake, erasure.",
        lifespan=lifespan,
        # The docs pages below load their assets from this package, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.serving = serving
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(AagError)
    async def _aag_error(_: Request, exc: AagError) -> JSONResponse:
        status = _status_of(exc)
        headers = {"Retry-After": "5"} if status == 503 else {}
        return JSONResponse({"error": str(exc).splitlines()[0]}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # A bug, not a bad request: log it whole, answer one line without internals.
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse({"error": "internal error (logged by the server)"}, status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    # -- profiles -----------------------------------------------------------------------
    @app.get("/v1/customers/{customer_id}", tags=["profiles"])
    async def get_profile(customer_id: Id, _: Reader, version: Version = 2, fresh: bool = False) -> Any:
        """A customer's profile from gold (``fresh=true``: resolved from silver now).

        Any record id of the customer gives the profile of its identity cluster.
        """
        # The gold snapshot answers on the event loop (no thread hop); silver in the pool.
        found = None if fresh else serving.profile_in_memory(customer_id, version)
        if found is None and not fresh:
            serving.raise_if_unknown(customer_id)  # a miss is as cheap as a hit
        if found is None:
            found = await run_in_threadpool(serving.profile, customer_id, version, fresh)
        return JSONResponse(_json(found))

    @app.get("/v1/sources/{source_system}/records/{record_id}", tags=["profiles"])
    async def get_profile_by_record(
        source_system: Annotated[str, Path(min_length=1, max_length=64)],
        record_id: Id,
        _: Reader,
        version: Version = 2,
        fresh: bool = False,
    ) -> Any:
        """The profile of the customer a source record belongs to."""
        customer = serving.record_in_memory(source_system, record_id)
        if customer is None:
            customer = await run_in_threadpool(serving.customer_of_record, source_system, record_id)
        found = None if fresh else serving.profile_in_memory(customer, version)
        if found is None:
            found = await run_in_threadpool(serving.profile, customer, version, fresh)
        return JSONResponse(_json(found))

    @app.get("/v1/lookup", tags=["profiles"])
    def lookup(
        _: Reader,
        email: Annotated[str | None, Query(max_length=320)] = None,
        phone: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Any:
        """Customers holding an e-mail address or phone number (normalised, exact)."""
        if (email is None) == (phone is None):
            raise ApiError(400, "give exactly one of email or phone")
        attribute, value = ("email", email) if email is not None else ("phone", phone)
        assert value is not None
        if has_control(value):
            # Stored values never hold control characters (they are removed on ingest).
            raise ApiError(400, f"{attribute} must not contain control characters (such as NUL)")
        return {"attribute": attribute, "customers": serving.lookup(attribute, value)}

    @app.get("/v1/search", tags=["profiles"])
    def search(_: Reader, q: Annotated[str, Query(min_length=1, max_length=320)]) -> Any:
        """Find customers by customer id, ``source:record id``, e-mail or phone."""
        if has_control(q):
            raise ApiError(400, "q must not contain control characters (such as NUL)")
        return {"query": q, "results": _json(serving.search(q))}

    # -- lineage ------------------------------------------------------------------------

    @app.get("/v1/customers/{customer_id}/attributes/{attribute}/explain", tags=["lineage"])
    def explain(customer_id: Id, attribute: Attribute, _: Reader) -> Any:
        """The winner, every competing current value with why it lost, and the rule."""
        return _json(serving.explain(customer_id, attribute))

    @app.get("/v1/customers/{customer_id}/attributes/{attribute}/history", tags=["lineage"])
    def history(customer_id: Id, attribute: Attribute, _: Reader) -> Any:
        """Every version of the attribute in every source (SCD2 timeline)."""
        return _json(serving.history(customer_id, attribute))

    @app.get("/v1/entities/{entity_id}/graph", tags=["lineage"])
    def graph(entity_id: Id, _: Reader, hops: Annotated[int, Query(ge=0, le=5)] = 2) -> Any:
        """The current graph around an entity to ``hops`` steps (customer → company → assets)."""
        return _json(serving.graph(entity_id, hops))

    @app.get("/v1/customers/{customer_id}/bronze", tags=["lineage"])
    def bronze(customer_id: Id, _: Reader) -> Any:
        """The raw rows each source sent about the customer, as landed."""
        return {"customer_id": customer_id, "rows": _json(serving.bronze(customer_id))}

    @app.get("/v1/monitor", tags=["operations"])
    def monitor(_: Reader) -> Any:
        """Freshness per source, open conflicts, completeness, quarantine counts."""
        return _json(serving.monitor())

    @app.get("/v1/status", tags=["operations"])
    def status(_: Reader) -> Any:
        """Gold snapshot in memory and the intake worker's progress."""
        return _json(serving.status())

    @app.get("/v1/attributes", tags=["operations"])
    def attributes(_: Reader) -> Any:
        """Canonical attributes in profile order."""
        return {"attributes": serving.attributes()}

    # -- intake (Segment HTTP API shapes) -----------------------------------------------
    @app.post("/v1/identify", tags=["intake"])
    async def identify(request: Request, _: Ingester) -> Any:
        """Segment ``identify``: acknowledged once landed durably; processed in micro-batches."""
        calls = parse_calls(await _body(request), batch=False)
        return {"success": True, "accepted": serving.accept(calls)}

    @app.post("/v1/batch", tags=["intake"])
    async def batch(request: Request, _: Ingester) -> Any:
        """Segment ``batch`` of identify calls: all land, or none (4xx) does."""
        calls = parse_calls(await _body(request), batch=True)
        return {"success": True, "accepted": serving.accept(calls)}

    # -- erasure --------------------------------------------------------------------------
    # -- identity decisions ------------------------------------------------------------
    @app.get("/v1/identity/decisions", tags=["identity"])
    def identity_decisions(_: Admin) -> Any:
        """The operator decisions in force (records kept apart or joined)."""
        return {"decisions": serving.identity_decisions()}

    @app.post("/v1/identity/decisions", tags=["identity"])
    async def decide_identity(request: Request, key: Admin) -> Any:
        """Keep two records apart (``unlink``), join them (``link``) or ``undo`` either.

        Body: ``{"action": "unlink", "records": ["SOURCE:OBJECT:ID", "SOURCE:OBJECT:ID"],
        "note": "why"}``. ``unlink`` splits the first record off the second's customer.
        """
        body = _decision(await _body(request))
        return _json(
            await run_in_threadpool(
                serving.decide_identity,
                body["action"],
                body["records"],
                body["note"],
                f"api-key:{key.name}",
            )
        )

    @app.delete("/v1/customers/{customer_id}", tags=["erasure"])
    def erase(customer_id: Id, key: Eraser) -> Any:
        """GDPR erasure of the customer's every source record (logged under the key's name)."""
        return _json(serving.erase(customer_id, requested_by=f"api-key:{key.name}"))

    # -- explorer ---------------------------------------------------------------------------
    static = resources.files("aag.serving") / "static"

    @app.get("/health", include_in_schema=False)
    def health() -> Any:
        return {"status": "ok"}

    def docs_page(page: Response) -> Response:
        # Only this server's files: ReDoc's sidebar would fetch a logo from its CDN.
        page.headers["content-security-policy"] = DOCS_POLICY
        return page

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> Response:
        return docs_page(
            get_swagger_ui_html(
                openapi_url="/openapi.json",
                title="AAG API",
                swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
                swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
                swagger_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png",
            )
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> Response:
        return docs_page(
            get_redoc_html(
                openapi_url="/openapi.json",
                title="AAG API",
                redoc_js_url="/static/vendor/redoc/redoc.standalone.js",
                redoc_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png",
                with_google_fonts=False,
            )
        )

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return FileResponse(str(static / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    return app
