"""The MCP server: Groundwork's search as a tool agents find where they look for tools.

Built on the official ``mcp`` SDK (:class:`mcp.server.mcpserver.MCPServer`). Two transports, one
tool path:

- **stdio** (``groundwork mcp --config C``): an agent host launches the process; the caller is the
  principal whose key is in ``GROUNDWORK_API_KEY`` (checked at start and again on every call, so a
  key removed from the config stops working without a restart).
- **streamable HTTP** at ``/mcp`` under ``groundwork serve``: every request carries the usual
  ``Authorization: Bearer <key or JWT>``; without a valid one it is refused with a 401 before the
  MCP layer reads it. Stateless JSON responses, so any replica can answer any request.

The ``search`` tool takes the same arguments as ``POST /v1/search`` and answers the same fields
(results, confidence, decision, reasons, request_id) through :func:`serving.searching.run_search`: the
same limits, the same access control and residency (row-level security as the reader role) and the
same audit row. Errors come back as MCP tool errors with a message that never echoes a value the
caller sent (a query may hold personal data): argument problems are checked here, before the SDK's
own validation, whose messages would quote the input.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent
from opentelemetry.trace import NoOpTracer, Tracer
from pydantic import BaseModel, ValidationError
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from groundwork import __version__
from groundwork.errors import AuthError, GroundworkError
from groundwork.settings import GroundworkConfig
from groundwork.telemetry_config import ATTR_DECISION
from indexes.results import SearchOutcome
from indexes.search import Retriever
from serving.actions import ActionCheckRequest, ActionCheckResponse, AgentLedgers, check_action
from serving.auth import Authenticator, Caller
from serving.limits import RateLimiter, retry_after
from serving.metrics import Metrics
from serving.searching import Filters, SearchRequest, SearchResponse, run_search
from serving.telemetry import caller_span, search_span

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Where ``groundwork serve`` answers MCP over streamable HTTP.
MCP_PATH = "/mcp"
#: The environment variable naming the stdio server's caller.
KEY_ENV = "GROUNDWORK_API_KEY"

_INSTRUCTIONS = (
    "Search the organisation's governed document index. Results are only what the caller may read. "
    "Act on them only when decision is 'answer'; on 'handoff' the retrieval is weak: hand the task "
    "to a human instead of taking an external action."
)


def _bearer(headers: Mapping[str, str] | None) -> str | None:
    value = (headers or {}).get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _invalid(exc: ValidationError) -> str:
    """The problems in a tool call's arguments, by field, without the values."""
    problems = []
    for err in exc.errors():
        if err.get("type") == "extra_forbidden":
            problems.append("unknown argument (the tool's input schema lists the allowed ones)")
            continue
        loc = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        problems.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "invalid arguments: " + "; ".join(dict.fromkeys(problems))


#: Each tool's arguments, as the HTTP route's body model checks them.
_ARGUMENTS: dict[str, type[BaseModel]] = {"search": SearchRequest, "check_action": ActionCheckRequest}


class _ArgumentCheck:
    """Refuses a tool call whose arguments do not fit the route's body model, naming fields only.

    Runs before the SDK validates the arguments against the tool's schema, whose error text would
    quote the rejected values back (and into any transcript the agent keeps).
    """

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        params = ctx.params if isinstance(ctx.params, dict) else {}
        model = _ARGUMENTS.get(params.get("name", "")) if ctx.method == "tools/call" else None
        if model is not None:
            try:
                model.model_validate(params.get("arguments") or {})
            except ValidationError as exc:
                return CallToolResult(content=[TextContent(type="text", text=_invalid(exc))], is_error=True)
        return await call_next(ctx)


class McpTools:
    """The tools, bound to one config's retriever, authenticator, rate limiter and ledgers."""

    def __init__(
        self,
        config: GroundworkConfig,
        retriever: Retriever,
        auth: Authenticator,
        limiter: RateLimiter,
        *,
        stdio_key: str | None = None,
        metrics: Metrics | None = None,
        ledgers: AgentLedgers | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.tracer = tracer if tracer is not None else NoOpTracer()
        self.retriever = retriever
        self.auth = auth
        self.limiter = limiter
        self.stdio_key = stdio_key
        self.ledgers = ledgers if ledgers is not None else AgentLedgers(config, retriever)

    def caller(self, ctx: Context[Any, Any]) -> Caller:
        """Who is calling: the HTTP request's bearer credential, else the stdio server's key."""
        token = _bearer(ctx.headers) if ctx.headers is not None else self.stdio_key
        if not token:
            raise AuthError("missing bearer token: send 'Authorization: Bearer <key>'")
        who = self.auth.authenticate(token)
        wait = self.limiter.acquire(who.principal.name)
        if wait:
            raise ToolError(f"rate limit exceeded; retry in {retry_after(wait)} s")
        return who

    def _answer(self, ctx: Context[Any, Any], run: Callable[[Caller], _T]) -> _T:
        """``run`` as the caller; every refusal becomes a tool error with a clear message."""
        try:
            return run(self.caller(ctx))
        except ToolError:
            raise
        except AuthError as exc:
            raise ToolError(f"unauthorized: {exc}") from None
        except GroundworkError as exc:  # limits, conflicts, index unavailable: messages hold no values
            raise ToolError(str(exc)) from None

    def search(self, arguments: dict[str, Any], ctx: Context[Any, Any]) -> SearchResponse:
        """``POST /v1/search`` as a tool."""
        body = SearchRequest.model_validate({k: v for k, v in arguments.items() if v is not None})
        k = body.k if "k" in body.model_fields_set else self.config.retrieval.default_k

        def traced(who: Caller) -> tuple[SearchOutcome, SearchResponse]:
            # The caller is known here (not where the route starts): the span carries its regions.
            with search_span(self.tracer, who, k) as span:
                outcome, response = run_search(self.retriever, self.config.retrieval, who, body, self.ledgers)
                span.record(outcome)
            return outcome, response

        outcome, response = self._answer(ctx, traced)
        if self.metrics is not None:
            self.metrics.record_search(outcome)
        return response

    def check_action(self, arguments: dict[str, Any], ctx: Context[Any, Any]) -> ActionCheckResponse:
        """``POST /v1/actions/check`` as a tool."""
        body = ActionCheckRequest.model_validate({k: v for k, v in arguments.items() if v is not None})

        def traced(who: Caller) -> ActionCheckResponse:
            with caller_span(self.tracer, "groundwork.check_action", who) as span:
                answer = check_action(self.config, self.ledgers, who, body)
                span.set_attribute(ATTR_DECISION, str(answer.decision))
            return answer

        answer = self._answer(ctx, traced)
        if self.metrics is not None:
            self.metrics.record_check(answer.decision, answer.reasons)
        return answer


def create_mcp_server(tools: McpTools) -> MCPServer:
    """An MCP server with the ``search`` and ``check_action`` tools of ``tools``."""
    server: MCPServer = MCPServer(
        name="groundwork",
        title="Groundwork retrieval",
        version=__version__,
        instructions=_INSTRUCTIONS,
        log_level="WARNING",
        middleware=[_ArgumentCheck()],
    )

    def search(
        query: str,
        ctx: Context[Any, Any],
        k: int | None = None,
        filters: Filters | None = None,
        conversation_id: str | None = None,
    ) -> SearchResponse:
        """Top-k chunks of the organisation's documents that you may read, best first.

        Returns results (redacted text, score, source), a confidence in 0..1 that the top result
        is relevant, a decision ("answer" or "handoff") with its reasons, and a request_id to quote
        when checking an action. On "handoff", do not act on the results: hand off to a human.
        """
        arguments = {"query": query, "k": k, "filters": filters, "conversation_id": conversation_id}
        return tools.search(arguments, ctx)

    def check_action(
        request_ids: list[str],
        action: str,
        idempotency_key: str,
        ctx: Context[Any, Any],
        conversation_id: str | None = None,
    ) -> ActionCheckResponse:
        """Ask before taking an external action (a ticket, an email, a refund) on search results.

        Quote the request_id of every search the action relies on and a unique idempotency_key
        for this action. Act only when allowed is true; otherwise hand off to a human. Asking
        again with the same key returns the same answer, and says so once the action was done.
        """
        arguments = {
            "request_ids": request_ids,
            "action": action,
            "idempotency_key": idempotency_key,
            "conversation_id": conversation_id,
        }
        return tools.check_action(arguments, ctx)

    server.add_tool(search, name="search", structured_output=True)
    server.add_tool(check_action, name="check_action", structured_output=True)
    return server


class _Authenticated:
    """Refuses an MCP HTTP request without a valid bearer credential, in the API's error shape."""

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        token = _bearer(headers)
        try:
            if not token:
                raise AuthError("missing bearer token: send 'Authorization: Bearer <key>'")
            self.auth.authenticate(token)
        except AuthError as exc:
            body = json.dumps({"error": "unauthorized", "message": str(exc)}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def mount_mcp(app: FastAPI, config: GroundworkConfig, retriever: Retriever, *, host: str) -> MCPServer:
    """Serve the tools over streamable HTTP at :data:`MCP_PATH` of ``app`` (stateless, JSON answers).

    ``app`` is :func:`serving.api.create_app`'s: the tools share its authenticator (keys reload
    with the config file), its per-principal rate limits and its ledgers (a conversation's searches
    take turns whichever transport they come by). ``host`` is where the server listens:
    on a loopback address the SDK's DNS-rebinding protection (Host and Origin must be local) is on.
    """
    tools = McpTools(
        config,
        retriever,
        app.state.auth,
        app.state.limiter,
        metrics=app.state.metrics,
        ledgers=app.state.ledgers,
        tracer=app.state.tracer,
    )
    server = create_mcp_server(tools)
    starlette_app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        host=host,
        max_request_body_size=tools.config.api.max_body_bytes,
    )
    route = next(r for r in starlette_app.routes if isinstance(r, Route) and r.path == MCP_PATH)
    app.router.routes.append(Route(MCP_PATH, endpoint=_Authenticated(route.endpoint, tools.auth)))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with server.session_manager.run(), inner(a) as state:
            yield state

    app.router.lifespan_context = lifespan
    return server


def stdio_key_from_env() -> str:
    """The stdio server's credential, from :data:`KEY_ENV`; refuses to start without one."""
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise AuthError(f"set {KEY_ENV} to the API key (or JWT) of the principal this MCP server acts for")
    return key
