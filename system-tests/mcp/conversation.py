"""An agent's conversation with task-api's MCP server, through the official Python MCP SDK.

Run by system-tests/tests/mcp.rs (`make test`) against a private devhost system, with the SDK
installed by scripts/mcp-python.sh. Nothing here is written against our server's code: it
speaks MCP through `mcp.Client` over Streamable HTTP, the way an agent configured from the
README would, and compares what the tools say with what the REST API says.

Environment:
  MCP_URL        the server, e.g. http://127.0.0.1:8080/mcp
  API_URL        task-api's REST base URL (to compare errors and results with REST)
  USER_A, TOKEN_A, USER_B, TOKEN_B
                 two users and their bearer tokens
  MCP_REPORT     where to write the JSON report

The report lists every check (name, ok, detail), the negotiated protocol version, the tools,
and the ids the Rust side checks through REST afterwards (`kept`: a task made and changed by
MCP; `deleted`: one deleted by MCP). Exit status: 0 when every check passed, 1 when one
failed, 2 when the conversation could not be held at all.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import traceback
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import mcp
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import LATEST_HANDSHAKE_VERSION, LATEST_PROTOCOL_VERSION

TOOLS = {
    "add_task",
    "list_tasks",
    "get_task",
    "update_task",
    "complete_task",
    "reopen_task",
    "delete_task",
    "task_history",
}
# The fields of todo_core::validate::NewTask (POST /v1/tasks), plus the idempotency key.
ADD_TASK_ARGS = {"title", "description", "priority", "tags", "due", "time_zone", "recurrence", "reminder", "request_id"}
# The query parameters of GET /v1/tasks.
LIST_TASKS_ARGS = {"q", "status", "priority", "tag", "due_before", "due_after", "sort", "limit", "cursor"}
READ_ONLY = {"list_tasks", "get_task", "task_history"}
BERLIN = ZoneInfo("Europe/Berlin")


class Failed(Exception):
    """A check failed that later steps depend on."""


class Report:
    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []
        self.data: dict[str, Any] = {}

    def check(self, name: str, ok: bool, detail: Any = "") -> bool:
        self.checks.append({"name": name, "ok": bool(ok), "detail": detail if isinstance(detail, str) else repr(detail)})
        mark = "ok  " if ok else "FAIL"
        print(f"{mark} {name}" + ("" if ok else f": {detail}"), flush=True)
        return bool(ok)

    def require(self, name: str, ok: bool, detail: Any = "") -> None:
        if not self.check(name, ok, detail):
            raise Failed(name)

    def equal(self, name: str, actual: Any, expected: Any) -> bool:
        return self.check(name, actual == expected, f"expected {expected!r}, got {actual!r}")

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if not c["ok"]]


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", None) == "text")


def instant(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


def at_nine_berlin(days_ahead: int) -> dt.datetime:
    day = dt.date.today() + dt.timedelta(days=days_ahead)
    return dt.datetime.combine(day, dt.time(9, 0), tzinfo=BERLIN)


def rfc3339(when: dt.datetime) -> str:
    return when.isoformat(timespec="seconds")


class Agent:
    """One user's MCP client, and their REST client for comparisons."""

    def __init__(self, report: Report, name: str, user: str, client: Client, rest: httpx2.AsyncClient) -> None:
        self.report, self.name, self.user, self.client, self.rest = report, name, user, client, rest

    async def call(self, tool: str, args: dict[str, Any]) -> Any:
        """A successful tool call's structuredContent (the SDK has validated it against the
        tool's output schema); a failed check otherwise."""
        label = f"{self.name}: {tool}({json.dumps(args, sort_keys=True)[:160]})"
        try:
            result = await self.client.call_tool(tool, args)
        except (MCPError, RuntimeError) as error:
            self.report.check(label, False, f"raised {type(error).__name__}: {error}")
            raise Failed(label) from error
        if result.is_error:
            self.report.check(label, False, f"tool error: {text_of(result)}")
            raise Failed(label)
        self.report.check(f"{label} has a text rendering", bool(text_of(result).strip()), result.content)
        if not isinstance(result.structured_content, dict):
            self.report.check(label, False, f"no structuredContent object: {result.structured_content!r}")
            raise Failed(label)
        return result.structured_content

    async def call_result(self, tool: str, args: dict[str, Any]) -> Any:
        """The whole CallToolResult of a call that must succeed."""
        result = await self.client.call_tool(tool, args)
        if result.is_error:
            self.report.check(f"{self.name}: {tool}", False, f"tool error: {text_of(result)}")
            raise Failed(tool)
        return result

    async def refused(self, name: str, tool: str, args: dict[str, Any], *needles: str) -> str:
        """The call is a tool error (isError, not a protocol error) whose text contains every
        needle (case-insensitive). Returns the text."""
        try:
            result = await self.client.call_tool(tool, args)
        except MCPError as error:
            self.report.check(name, False, f"a protocol error (code {error.code}: {error}) instead of a tool error")
            return ""
        text = text_of(result)
        missing = [n for n in needles if n.lower() not in text.lower()]
        self.report.check(
            name,
            result.is_error and not missing,
            f"isError={result.is_error}, text {text!r} lacks {missing}" if missing or not result.is_error else "",
        )
        return text

    async def rest_error(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, params: Any = None
    ) -> dict[str, Any]:
        """What REST answers to the same request: its error body (`error`, `field`)."""
        kwargs: dict[str, Any] = {"headers": headers or {}, "params": params}
        if body is not None:
            kwargs["json"] = body
            if method == "PATCH":
                kwargs["headers"]["Content-Type"] = "application/merge-patch+json"
                kwargs["content"] = json.dumps(body)
                del kwargs["json"]
        response = await self.rest.request(method, path, **kwargs)
        self.report.check(f"REST {method} {path} is refused (for comparison)", response.status_code >= 400, response.status_code)
        try:
            return response.json()
        except ValueError:
            return {"error": response.text}

    async def refused_like_rest(self, name: str, tool: str, args: dict[str, Any], rest: dict[str, Any]) -> str:
        """The tool error names REST's field and repeats REST's message for the same input."""
        # The REST API's header names are the tools' arguments that set them.
        def argument(text: str) -> str:
            return text.replace("Idempotency-Key", "request_id").replace("If-Match", "if_match")

        needles = [argument(rest["error"])] + ([argument(rest["field"])] if rest.get("field") else [])
        return await self.refused(f"{name} (REST says {rest})", tool, args, *needles)

    async def list_ids(self, args: dict[str, Any]) -> list[str]:
        page = await self.call("list_tasks", args)
        return [t["id"] for t in page["items"]]


async def eventually(what: str, probe, timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while True:
        last = await probe()
        if last is not None and last is not False:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise Failed(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.2)


def connect(url: str, token: str, mode: str) -> tuple[httpx2.AsyncClient, Client]:
    """What an agent's configuration amounts to: the URL and an Authorization header. `mode`:
    "auto" (the SDK's default: probe `server/discover`, the 2026-07-28 revision, else fall back
    to the `initialize` handshake) or "legacy" (the handshake, as every client before 2026-07-28)."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0, read=60.0))
    return http, Client(streamable_http_client(url, http_client=http), mode=mode)


async def discover(report: Report, a: Agent, b: Agent) -> None:
    client = a.client
    report.data["protocol_version"] = {"A (auto)": client.protocol_version, "B (legacy)": b.client.protocol_version}
    info = b.client.server_info
    report.data["server_info"] = info.model_dump(mode="json") if info is not None else None
    report.equal("A (the SDK's default) negotiates the newest revision the SDK knows", client.protocol_version, LATEST_PROTOCOL_VERSION)
    report.equal("B (the initialize handshake) gets the newest handshake revision", b.client.protocol_version, LATEST_HANDSHAKE_VERSION)
    report.equal("the handshake names the server", info.name if info is not None else None, "task-api")
    for who in (a, b):
        caps = who.client.server_capabilities
        report.check(f"{who.name}: the server advertises tools", caps.tools is not None, caps)

    listed = await client.list_tools()
    tools = {t.name: t for t in listed.tools}
    report.data["tools"] = {
        name: {
            "input": sorted((t.input_schema.get("properties") or {}).keys()),
            "required": sorted(t.input_schema.get("required") or []),
            "output": t.output_schema is not None,
            "annotations": t.annotations.model_dump(mode="json", exclude_none=True) if t.annotations else None,
        }
        for name, t in tools.items()
    }
    report.equal("the tools are exactly the eight of issue 22", set(tools), TOOLS)
    for name in sorted(TOOLS & set(tools)):
        tool = tools[name]
        props = tool.input_schema.get("properties") or {}
        report.check(f"{name}: a description an agent can act on", len(tool.description or "") >= 20, tool.description)
        report.check(f"{name}: an object input schema", tool.input_schema.get("type") == "object", tool.input_schema)
        report.check(f"{name}: an object output schema", (tool.output_schema or {}).get("type") == "object", tool.output_schema)
        hints = tool.annotations
        report.check(
            f"{name}: readOnlyHint is {name in READ_ONLY}",
            hints is not None and hints.read_only_hint is (name in READ_ONLY),
            hints,
        )
        if name == "delete_task":
            report.check("delete_task: destructiveHint", hints is not None and hints.destructive_hint is True, hints)
        if name in {"get_task", "update_task", "complete_task", "reopen_task", "delete_task", "task_history"}:
            report.check(f"{name}: requires task_id", "task_id" in (tool.input_schema.get("required") or []), tool.input_schema)
    if "add_task" in tools:
        schema = tools["add_task"].input_schema
        report.equal("add_task: its arguments are NewTask's fields and request_id", set(schema.get("properties") or {}), ADD_TASK_ARGS)
        report.equal("add_task: only title is required", schema.get("required"), ["title"])
    if "list_tasks" in tools:
        props = tools["list_tasks"].input_schema.get("properties") or {}
        report.equal("list_tasks: its arguments are the REST list's query parameters", set(props), LIST_TASKS_ARGS)
        report.check("list_tasks: `limit` is bounded like REST (1..200)", props.get("limit", {}).get("maximum") == 200, props.get("limit"))
    report.data["tool_objects"] = tools
    b_listed = await b.client.list_tools()
    report.equal(
        "B, on the handshake revision, lists the same tools and schemas",
        {t.name: (t.input_schema, t.output_schema) for t in b_listed.tools},
        {name: (t.input_schema, t.output_schema) for name, t in tools.items()},
    )


async def conversation(report: Report, a: Agent, b: Agent) -> None:
    await discover(report, a, b)

    # --- add_task -----------------------------------------------------------------------------
    rent_due = at_nine_berlin(30)
    rent = await a.call(
        "add_task",
        {
            "title": "Pay rent",
            "description": "Transfer to the landlord",
            "priority": "high",
            "tags": ["money", "home"],
            "due": rfc3339(rent_due),
            "time_zone": "Europe/Berlin",
        },
    )
    report.equal("add_task: the task belongs to the caller", rent.get("owner"), a.user)
    report.equal("add_task: title", rent.get("title"), "Pay rent")
    report.equal("add_task: priority", rent.get("priority"), "high")
    report.equal("add_task: tags (sorted, as REST stores them)", rent.get("tags"), ["home", "money"])
    report.equal("add_task: due (the same instant)", instant(rent.get("due")), rent_due)
    report.equal("add_task: time_zone", rent.get("time_zone"), "Europe/Berlin")
    report.equal("add_task: status", rent.get("status"), "open")
    report.equal("add_task: version", rent.get("version"), 1)

    plants_due = at_nine_berlin(31)
    plants = await a.call(
        "add_task",
        {
            "title": "Water the plants",
            "tags": ["home"],
            "due": rfc3339(plants_due),
            "time_zone": "Europe/Berlin",
            "recurrence": {"rule": "FREQ=WEEKLY", "mode": "strict"},
        },
    )
    report.equal("add_task: recurrence rule", (plants.get("recurrence") or {}).get("rule"), "FREQ=WEEKLY")
    report.equal("add_task: default priority", plants.get("priority"), "medium")

    dentist_due = at_nine_berlin(32)
    dentist = await a.call(
        "add_task",
        {"title": "Call the dentist", "priority": "low", "tags": ["health"], "due": rfc3339(dentist_due), "reminder": {"before_due_seconds": 3600}},
    )
    report.equal("add_task: reminder", dentist.get("reminder"), {"before_due_seconds": 3600})

    # A client that retries after a timeout: the same request_id is the same task.
    request_id = f"agent-{uuid.uuid4()}"
    milk = await a.call("add_task", {"title": "Buy milk", "request_id": request_id})
    again = await a.call("add_task", {"title": "Buy milk", "request_id": request_id})
    report.equal("add_task retried with the same request_id: the same task", again.get("id"), milk.get("id"))
    report.equal("add_task retried: not changed by the retry", again.get("version"), 1)
    report.equal(
        "add_task retried: one task, not two",
        await a.list_ids({"q": "Buy milk"}),
        [milk["id"]],
    )
    await a.refused(
        "add_task: the same request_id with another body is refused, naming request_id",
        "add_task",
        {"title": "Buy oat milk", "request_id": request_id},
        "request_id",
    )
    report.data["ids"] = {"rent": rent["id"], "plants": plants["id"], "dentist": dentist["id"], "milk": milk["id"]}

    # --- add_task errors: the same field and rule as REST for the same input ---------------------
    await a.refused_like_rest("add_task without a title", "add_task", {"description": "no title"}, await a.rest_error("POST", "/v1/tasks", {"description": "no title"}))
    await a.refused_like_rest("add_task with an empty title", "add_task", {"title": " "}, await a.rest_error("POST", "/v1/tasks", {"title": " "}))
    bad_rule = {"title": "Bad rule", "due": rfc3339(rent_due), "recurrence": {"rule": "FREQ=SOMETIMES"}}
    await a.refused_like_rest("add_task with a bad RRULE", "add_task", bad_rule, await a.rest_error("POST", "/v1/tasks", bad_rule))
    no_due = {"title": "Recurring without due", "recurrence": {"rule": "FREQ=DAILY"}}
    await a.refused_like_rest("add_task: recurrence without due", "add_task", no_due, await a.rest_error("POST", "/v1/tasks", no_due))
    past_reminder = {"title": "Late", "reminder": {"at": "2001-01-01T00:00:00Z"}}
    await a.refused_like_rest("add_task: a reminder in the past", "add_task", past_reminder, await a.rest_error("POST", "/v1/tasks", past_reminder))
    bad_zone = {"title": "Where", "time_zone": "Mars/Olympus"}
    await a.refused_like_rest("add_task: an unknown time zone", "add_task", bad_zone, await a.rest_error("POST", "/v1/tasks", bad_zone))
    bad_priority = {"title": "When", "priority": "whenever"}
    await a.refused("add_task: an unknown priority names the field", "add_task", bad_priority, "priority")
    report.equal("the refused adds created nothing", sorted(await a.list_ids({"limit": 200})), sorted(report.data["ids"].values()))

    # --- list_tasks: filters, search, sort, cursor -----------------------------------------------
    ids = report.data["ids"]
    report.equal("list_tasks: everything", sorted(await a.list_ids({})), sorted(ids.values()))
    report.equal("list_tasks: tag home", sorted(await a.list_ids({"tag": ["home"]})), sorted([ids["rent"], ids["plants"]]))
    report.equal("list_tasks: tags home AND money", await a.list_ids({"tag": ["home", "money"]}), [ids["rent"]])
    report.equal("list_tasks: priority high OR low", sorted(await a.list_ids({"priority": ["high", "low"]})), sorted([ids["rent"], ids["dentist"]]))
    report.equal("list_tasks: search is caseless", await a.list_ids({"q": "PLANTS"}), [ids["plants"]])
    report.equal("list_tasks: search finds the description", await a.list_ids({"q": "landlord"}), [ids["rent"]])
    report.equal(
        "list_tasks: due_before",
        sorted(await a.list_ids({"due_before": rfc3339(plants_due + dt.timedelta(hours=1))})),
        sorted([ids["rent"], ids["plants"]]),
    )
    report.equal("list_tasks: due_after", await a.list_ids({"due_after": rfc3339(plants_due)}), [ids["dentist"]])
    report.equal("list_tasks: status completed (none yet)", await a.list_ids({"status": "completed"}), [])
    first = await a.call("list_tasks", {"sort": "due", "limit": 2})
    report.equal("list_tasks: sort due, page 1", [t["id"] for t in first["items"]], [ids["rent"], ids["plants"]])
    report.check("list_tasks: page 1 has a next_cursor", isinstance(first.get("next_cursor"), str), first.get("next_cursor"))
    if isinstance(first.get("next_cursor"), str):
        second = await a.call("list_tasks", {"sort": "due", "limit": 2, "cursor": first["next_cursor"]})
        # Tasks without a due time come last.
        report.equal("list_tasks: sort due, page 2", [t["id"] for t in second["items"]], [ids["dentist"], ids["milk"]])
        report.equal("list_tasks: the last page has no next_cursor", second.get("next_cursor"), None)
        await a.refused_like_rest(
            "list_tasks: a cursor with another sort",
            "list_tasks",
            {"sort": "title", "cursor": first["next_cursor"]},
            await a.rest_error("GET", "/v1/tasks", params={"sort": "title", "cursor": first["next_cursor"]}),
        )
    await a.refused_like_rest("list_tasks: an unknown sort", "list_tasks", {"sort": "sideways"}, await a.rest_error("GET", "/v1/tasks", params={"sort": "sideways"}))
    await a.refused_like_rest("list_tasks: limit over 200", "list_tasks", {"limit": 500}, await a.rest_error("GET", "/v1/tasks", params={"limit": "500"}))

    # --- get_task ---------------------------------------------------------------------------------
    got = await a.call("get_task", {"task_id": ids["rent"]})
    report.equal("get_task: the task add_task returned", got, rent)
    unknown = str(uuid.uuid4())
    not_found = await a.rest_error("GET", f"/v1/tasks/{unknown}")
    await a.refused_like_rest("get_task: an unknown task id", "get_task", {"task_id": unknown}, not_found)
    await a.refused("get_task: a task id that is not one", "get_task", {"task_id": "not-a-uuid"}, "not found")

    # --- update_task ------------------------------------------------------------------------------
    updated = await a.call("update_task", {"task_id": ids["rent"], "title": "Pay the rent", "priority": "urgent", "tags": ["home"]})
    report.equal("update_task: title", updated.get("title"), "Pay the rent")
    report.equal("update_task: priority", updated.get("priority"), "urgent")
    report.equal("update_task: tags are replaced whole", updated.get("tags"), ["home"])
    report.equal("update_task: what it did not name is kept", (updated.get("description"), instant(updated.get("due"))), ("Transfer to the landlord", rent_due))
    report.equal("update_task: version", updated.get("version"), 2)
    bad_patch = {"recurrence": {"rule": "FREQ=BOGUS"}}
    await a.refused_like_rest(
        "update_task with a bad RRULE",
        "update_task",
        {"task_id": ids["rent"], **bad_patch},
        await a.rest_error("PATCH", f"/v1/tasks/{ids['rent']}", bad_patch),
    )
    await a.refused_like_rest(
        "update_task with an empty title",
        "update_task",
        {"task_id": ids["rent"], "title": ""},
        await a.rest_error("PATCH", f"/v1/tasks/{ids['rent']}", {"title": ""}),
    )
    await a.refused_like_rest("update_task: an unknown task", "update_task", {"task_id": unknown, "title": "x"}, not_found)
    report.equal("the refused updates changed nothing", (await a.call("get_task", {"task_id": ids["rent"]})).get("version"), 2)
    await preconditions(report, a)

    # --- complete_task, reopen_task ---------------------------------------------------------------
    next_due = (plants_due.replace(tzinfo=None) + dt.timedelta(days=7)).replace(tzinfo=BERLIN)
    completed_result = await a.call_result("complete_task", {"task_id": ids["plants"]})
    completed = completed_result.structured_content or {}
    text = text_of(completed_result)
    report.data["complete_recurring"] = {"structured": completed, "text": text}
    report.equal("complete_task: the completed task", ((completed.get("task") or {}).get("id"), (completed.get("task") or {}).get("status")), (ids["plants"], "completed"))
    named = completed.get("next_occurrence") or {}
    report.equal(
        f"complete_task on a weekly task names the next occurrence's due time ({rfc3339(next_due)})",
        instant(named.get("due")),
        next_due,
    )
    report.check("complete_task: the text says when it comes back", any(v in text for v in {named.get("due") or "?", rfc3339(next_due)}), text)

    async def next_occurrence() -> Any:
        page = await a.call("list_tasks", {"q": "plants", "status": "open"})
        return page["items"][0] if len(page["items"]) == 1 else None

    successor = await eventually("the next occurrence of the weekly task", next_occurrence)
    report.equal("the next occurrence is due a week later, same wall-clock time in Berlin", instant(successor.get("due")), next_due)
    report.equal("the next occurrence is the task complete_task named", successor["id"], named.get("task_id"))
    report.check("the next occurrence is a new task", successor["id"] != ids["plants"], successor)
    report.equal("the next occurrence belongs to the caller", successor.get("owner"), a.user)
    again = await a.call("complete_task", {"task_id": ids["plants"]})
    report.equal("complete_task again: the same next occurrence", again.get("next_occurrence"), completed.get("next_occurrence"))
    await asyncio.sleep(1)
    report.equal("complete_task again: no second occurrence", len((await a.call("list_tasks", {"q": "plants", "status": "open"}))["items"]), 1)

    done = await a.call("complete_task", {"task_id": ids["dentist"]})
    report.equal("complete_task: a one-off task", (done["task"].get("status"), done["task"].get("version")), ("completed", 2))
    report.equal("complete_task: a one-off task has no next occurrence", done.get("next_occurrence"), None)
    twice = await a.call("complete_task", {"task_id": ids["dentist"]})
    report.equal("complete_task twice: changes nothing", (twice["task"].get("status"), twice["task"].get("version")), ("completed", 2))
    reopened = await a.call("reopen_task", {"task_id": ids["dentist"]})
    report.equal("reopen_task", (reopened.get("status"), reopened.get("version")), ("open", 3))
    await a.refused_like_rest("complete_task: an unknown task", "complete_task", {"task_id": unknown}, not_found)
    await a.refused_like_rest("reopen_task: an unknown task", "reopen_task", {"task_id": unknown}, not_found)

    # --- task_history: the audit trail ---------------------------------------------------------------
    async def trail(name: str, changes: list[str]) -> Any:
        task_id = ids[name]

        async def probe() -> Any:
            history = await a.call("task_history", {"task_id": task_id})
            return history if [e.get("change") for e in history.get("items", [])] == changes else None

        try:
            found = await eventually(f"the audit trail of {task_id} to be {changes}", probe)
            report.check(f"task_history of the {name} task: {changes}", True)
            return found
        except Failed:
            history = await a.call("task_history", {"task_id": task_id})
            report.check(f"task_history of the {name} task: {changes}", False, history)
            return None

    rent_trail = await trail("rent", ["created", "updated"])
    if rent_trail is not None:
        entries = rent_trail["items"]
        report.equal("task_history: versions", [e.get("task_version") for e in entries], [1, 2])
        report.equal("task_history: each entry is the caller's", {e.get("owner") for e in entries}, {a.user})
        report.equal("task_history: the entry holds the task after the change", entries[1]["task"]["title"], "Pay the rent")
    await trail("plants", ["created", "completed"])
    await trail("dentist", ["created", "completed", "reopened"])
    await a.refused_like_rest(
        "task_history: an unknown task", "task_history", {"task_id": unknown}, await a.rest_error("GET", f"/v1/tasks/{unknown}/audit")
    )

    # --- another user ------------------------------------------------------------------------------------
    report.equal("user B lists none of A's tasks", await b.list_ids({}), [])
    for tool, extra in [
        ("get_task", {}),
        ("update_task", {"title": "Hijacked"}),
        ("complete_task", {}),
        ("reopen_task", {}),
        ("delete_task", {}),
        ("task_history", {}),
    ]:
        await b.refused(f"user B: {tool} on A's task is 'not found'", tool, {"task_id": ids["rent"], **extra}, "not found")
    bobs = await b.call("add_task", {"title": "Bob's own task", "tags": ["home"]})
    report.equal("user B's task is B's", bobs.get("owner"), b.user)
    report.equal("user B sees only B's task", await b.list_ids({}), [bobs["id"]])
    report.check("user A does not see B's task", bobs["id"] not in await a.list_ids({"tag": ["home"]}), bobs["id"])
    report.equal("A's task is untouched by B", (await a.call("get_task", {"task_id": ids["rent"]})).get("version"), 2)

    # --- delete_task ---------------------------------------------------------------------------------------
    deleted = await a.call("delete_task", {"task_id": ids["milk"]})
    report.equal("delete_task: the result", deleted, {"task_id": ids["milk"], "deleted": True, "series_ended": False})
    await a.refused_like_rest("get_task after delete_task: not found", "get_task", {"task_id": ids["milk"]}, await a.rest_error("GET", f"/v1/tasks/{ids['milk']}"))
    report.check("delete_task: no longer listed", ids["milk"] not in await a.list_ids({}), ids["milk"])
    await a.refused_like_rest("delete_task: an unknown task", "delete_task", {"task_id": unknown}, not_found)
    await a.refused("delete_task twice: not found", "delete_task", {"task_id": ids["milk"]}, "not found")
    # The trail of a deleted task stays readable (as through REST).
    await trail("milk", ["created", "deleted"])

    report.data["kept"] = ids["rent"]
    report.data["deleted"] = ids["milk"]
    report.data["next_occurrence"] = successor["id"]


async def preconditions(report: Report, a: Agent) -> None:
    """If update_task takes the version it expects (REST's If-Match), a stale one is refused with
    REST's message for a stale If-Match (412), and changes nothing. On a task of its own."""
    tools = report.data["tool_objects"]
    for tool in ("update_task", "complete_task", "reopen_task", "delete_task"):
        props = set((tools[tool].input_schema.get("properties") or {}).keys()) if tool in tools else set()
        names = sorted(props & {"if_match", "expected_version", "version", "if_version"})
        report.data.setdefault("preconditions", {})[tool] = names
    names = report.data["preconditions"].get("update_task") or []
    if not names:
        report.check("update_task takes a precondition (the expected version)", False, "no such argument")
        return
    arg = names[0]

    def version(n: int) -> Any:
        return n  # the task's `version`, which the tool sends as the entity tag "n"

    probe = await a.call("add_task", {"title": "Check the precondition"})
    await a.call("update_task", {"task_id": probe["id"], "title": "Checked once"})
    rest = await a.rest_error("PATCH", f"/v1/tasks/{probe['id']}", {"title": "Stale"}, headers={"If-Match": '"1"'})
    await a.refused_like_rest(f"update_task with a stale {arg}", "update_task", {"task_id": probe["id"], "title": "Stale", arg: version(1)}, rest)
    current = await a.call("get_task", {"task_id": probe["id"]})
    report.equal("the stale update changed nothing", (current.get("title"), current.get("version")), ("Checked once", 2))
    fresh = await a.call("update_task", {"task_id": probe["id"], "title": "Checked twice", arg: version(2)})
    report.equal(f"update_task with the current {arg} succeeds", (fresh.get("title"), fresh.get("version")), ("Checked twice", 3))
    await a.call("delete_task", {"task_id": probe["id"]})


async def main() -> int:
    env = {k: os.environ.get(k, "") for k in ("MCP_URL", "API_URL", "USER_A", "TOKEN_A", "USER_B", "TOKEN_B", "MCP_REPORT")}
    missing = [k for k, v in env.items() if not v]
    if missing:
        print(f"conversation.py: set {', '.join(missing)}", file=sys.stderr)
        return 2
    report = Report()
    report.data["sdk"] = {"package": "mcp", "version": getattr(mcp, "__version__", None) or _dist_version()}
    status = 0
    try:
        # A connects as the SDK does by default (the newest revision both sides speak), B with the
        # initialize handshake of the revisions before it: the conversation covers both eras.
        http_a, client_a = connect(env["MCP_URL"], env["TOKEN_A"], "auto")
        http_b, client_b = connect(env["MCP_URL"], env["TOKEN_B"], "legacy")
        rest_a = httpx2.AsyncClient(base_url=env["API_URL"], headers={"Authorization": f"Bearer {env['TOKEN_A']}"}, timeout=30.0)
        async with http_a, http_b, rest_a, client_a, client_b:
            a = Agent(report, "A", env["USER_A"], client_a, rest_a)
            b = Agent(report, "B", env["USER_B"], client_b, rest_a)
            # Caught inside the clients' task groups, which would wrap it in an ExceptionGroup.
            try:
                await conversation(report, a, b)
            except Failed as failed:
                report.check("the conversation went on to the end", False, f"stopped at: {failed}")
    except BaseException as error:  # noqa: BLE001 - the report must say what happened
        report.check("the conversation went on to the end", False, "".join(traceback.format_exception(error)))
        status = 2
    report.data.pop("tool_objects", None)
    out = {"checks": report.checks, "failures": len(report.failures), **report.data}
    with open(env["MCP_REPORT"], "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2, default=str)
    print(f"{len(report.checks)} checks, {len(report.failures)} failed", flush=True)
    return status or (1 if report.failures else 0)


def _dist_version() -> str | None:
    from importlib.metadata import version

    return version("mcp")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
