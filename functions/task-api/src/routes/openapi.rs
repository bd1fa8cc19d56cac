//! `GET /openapi.json` (no auth): the OpenAPI 3.1 description of this API.
//!
//! Written by hand as JSON rather than derived from the types: the domain types live in
//! `shared` and carry no OpenAPI annotations, and a hand-written document can say what derived
//! schemas cannot (which errors each endpoint answers, what `If-Match` means). A test checks
//! that every route of the router is documented with the methods it really serves.

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use shared::domain::validate::{
    MAX_DESCRIPTION_CHARS, MAX_REMINDER_LEAD_SECONDS, MAX_TAG_CHARS, MAX_TAGS, MAX_TITLE_CHARS,
};

use crate::cursor::MAX_CURSOR_CHARS;
use crate::params::{DEFAULT_LIMIT, MAX_LIMIT, MAX_Q_CHARS};
use crate::routes::create::MAX_IDEMPOTENCY_KEY_CHARS;
use crate::routes::paths;
use crate::sort::SortBy;

pub async fn handler() -> Response {
    axum::Json(document()).into_response()
}

fn error_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/responses/{name}")})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

/// A response carrying one task and its `ETag`.
fn task_answer(description: &str) -> Value {
    json!({
        "description": description,
        "headers": {"ETag": {"$ref": "#/components/headers/ETag"}},
        "content": json_content(schema_ref("Task")),
    })
}

/// The complete document.
pub fn document() -> Value {
    let mut document = base_document();
    // Every operation that authenticates its caller also counts it against the rate limit.
    if let Some(paths) = document["paths"].as_object_mut() {
        let operations = paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|item| item.values_mut())
            .filter_map(Value::as_object_mut);
        for operation in operations {
            if let Some(responses) =
                operation.get_mut("responses").and_then(Value::as_object_mut).filter(|r| r.contains_key("401"))
            {
                responses.insert("429".to_owned(), error_ref("TooManyRequests"));
            }
        }
    }
    document
}

/// The document before the rate limit's answers are added to every authenticated operation.
fn base_document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "todo-functions task API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Create, read, change, complete, delete, list and audit your own tasks. \
                Every endpoint except this document requires `Authorization: Bearer <JWT>` (HS256); \
                the token's `sub` is your user id and you only ever see your own tasks: another \
                user's task answers 404, exactly like a missing one. Every error is \
                `{\"error\": ..., \"field\": ...}`."
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": "tasks"}, {"name": "meta"}],
        "paths": paths_object(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "HS256 JWT; `sub` = user id (required), `exp` required, `iss`/`aud` checked when the deployment configures them."
                }
            },
            "parameters": parameters(),
            "headers": headers(),
            "responses": responses(),
            "schemas": schemas(),
        }
    })
}

fn paths_object() -> Value {
    let mut paths = serde_json::Map::new();
    paths.insert(paths::TASKS.to_owned(), json!({
        "post": {
            "operationId": "createTask",
            "tags": ["tasks"],
            "summary": "Create a task",
            "description": "With `Idempotency-Key`, the task id is derived from your user id and the key: repeating the request returns the existing task with 200 instead of creating another; the same key with a different body is 422. A reminder that would fire in the past is 422 (a due time in the past is fine). See docs/request-semantics.md.",
            "parameters": [{"$ref": "#/components/parameters/IdempotencyKey"}],
            "requestBody": {"required": true, "content": json_content(schema_ref("NewTask"))},
            "responses": {
                "201": {
                    "description": "Created.",
                    "headers": {"ETag": {"$ref": "#/components/headers/ETag"}, "Location": {"$ref": "#/components/headers/Location"}},
                    "content": json_content(schema_ref("Task")),
                },
                "200": {
                    "description": "Idempotent replay: the task this Idempotency-Key already created.",
                    "headers": {"ETag": {"$ref": "#/components/headers/ETag"}, "Location": {"$ref": "#/components/headers/Location"}},
                    "content": json_content(schema_ref("Task")),
                },
                "400": error_ref("BadRequest"),
                "401": error_ref("Unauthorized"),
                "409": error_ref("Conflict"),
                "413": error_ref("PayloadTooLarge"),
                "422": error_ref("Unprocessable"),
                "415": error_ref("UnsupportedMediaType"),
                "500": error_ref("Internal"),
                "503": error_ref("Unavailable"),
            }
        },
        "get": {
            "operationId": "listTasks",
            "tags": ["tasks"],
            "summary": "List, search, filter and sort your tasks",
            "description": "Keyset pagination: pass `next_cursor` back as `cursor` with the same filters and `sort` (a cursor is bound to its query: other filters or another sort are 400) to get the next page; tasks created or deleted in between neither repeat nor go missing. Deleted tasks are never listed.",
            "parameters": [
                {"$ref": "#/components/parameters/q"},
                {"$ref": "#/components/parameters/status"},
                {"$ref": "#/components/parameters/priority"},
                {"$ref": "#/components/parameters/tag"},
                {"$ref": "#/components/parameters/due_before"},
                {"$ref": "#/components/parameters/due_after"},
                {"$ref": "#/components/parameters/sort"},
                {"$ref": "#/components/parameters/limit"},
                {"$ref": "#/components/parameters/cursor"},
            ],
            "responses": {
                "200": {
                    "description": "One page.",
                    "headers": {"X-Scan-Truncated": {
                        "description": "`true` when you have more matching tasks than one request scans (LIST_SCAN_LIMIT): narrow the filter.",
                        "schema": {"type": "string", "enum": ["true"]}
                    }},
                    "content": json_content(schema_ref("TaskPage")),
                },
                "400": error_ref("BadRequest"),
                "401": error_ref("Unauthorized"),
                "500": error_ref("Internal"),
                "503": error_ref("Unavailable"),
            }
        }
    }));
    paths.insert(paths::TASK.to_owned(), json!({
        "parameters": [{"$ref": "#/components/parameters/TaskId"}],
        "get": {
            "operationId": "getTask",
            "tags": ["tasks"],
            "summary": "Read a task",
            "parameters": [{"$ref": "#/components/parameters/IfNoneMatch"}],
            "responses": {
                "200": task_answer("The task."),
                "304": {"description": "`If-None-Match` names the current version: your copy is current (no body).", "headers": {"ETag": {"$ref": "#/components/headers/ETag"}}},
                "400": error_ref("BadRequest"),
                "401": error_ref("Unauthorized"),
                "404": error_ref("NotFound"),
                "500": error_ref("Internal"),
                "503": error_ref("Unavailable"),
            }
        },
        "patch": {
            "operationId": "updateTask",
            "tags": ["tasks"],
            "summary": "Change a task (JSON merge patch)",
            "description": "RFC 7396: an absent field is unchanged, `null` clears it, objects (`reminder`, `recurrence`) merge member by member, arrays are replaced whole. A patch whose merged result is not a valid task is 422 naming the field. A patch that changes nothing answers 200 and writes nothing. Without `If-Match`, a concurrent change is merged by re-applying the patch.",
            "parameters": [{"$ref": "#/components/parameters/IfMatch"}],
            "requestBody": {"required": true, "content": {
                "application/merge-patch+json": {"schema": schema_ref("TaskPatch")},
                "application/json": {"schema": schema_ref("TaskPatch")},
            }},
            "responses": {
                "200": task_answer("The task after the change."),
                "400": error_ref("BadRequest"),
                "401": error_ref("Unauthorized"),
                "404": error_ref("NotFound"),
                "409": error_ref("Conflict"),
                "412": error_ref("PreconditionFailed"),
                "413": error_ref("PayloadTooLarge"),
                "415": error_ref("UnsupportedMediaType"),
                "422": error_ref("Unprocessable"),
                "500": error_ref("Internal"),
                "503": error_ref("Unavailable"),
            }
        },
        "delete": {
            "operationId": "deleteTask",
            "tags": ["tasks"],
            "summary": "Delete a task",
            "description": "Soft delete: the task disappears from reads and lists, its audit trail stays readable. A second delete answers 404. Deleting an open occurrence of a recurring task skips it and the series goes on (the next occurrence appears); `series=end` ends the series too.",
            "parameters": [
                {"$ref": "#/components/parameters/IfMatch"},
                {"name": "series", "in": "query", "required": false, "schema": {"type": "string", "enum": ["continue", "end"], "default": "continue"}, "description": "`end`: no further occurrence follows this one."}
            ],
            "responses": {
                "204": {"description": "Deleted."},
                "400": error_ref("BadRequest"),
                "401": error_ref("Unauthorized"),
                "404": error_ref("NotFound"),
                "409": error_ref("Conflict"),
                "412": error_ref("PreconditionFailed"),
                "500": error_ref("Internal"),
                "503": error_ref("Unavailable"),
            }
        }
    }));
    paths.insert(paths::COMPLETE.to_owned(), json!({
        "parameters": [{"$ref": "#/components/parameters/TaskId"}],
        "post": {
            "operationId": "completeTask",
            "tags": ["tasks"],
            "summary": "Complete a task",
            "description": "Completing a completed task answers 200 and changes nothing. For a recurring task, the next occurrence is created asynchronously. No request body is needed.",
            "parameters": [{"$ref": "#/components/parameters/IfMatch"}],
            "responses": {
                "200": task_answer("The completed task."),
                "400": error_ref("BadRequest"),
                "401": error_ref("Unauthorized"),
                "404": error_ref("NotFound"),
                "409": error_ref("Conflict"),
                "412": error_ref("PreconditionFailed"),
                "500": error_ref("Internal"),
                "503": error_ref("Unavailable"),
            }
        }
    }));
    paths.insert(paths::REOPEN.to_owned(), json!({
        "parameters": [{"$ref": "#/components/parameters/TaskId"}],
        "post": {
            "operationId": "reopenTask",
            "tags": ["tasks"],
            "summary": "Reopen a completed task",
            "description": "Makes a completed task open again. Reopening an open task answers 200 and changes nothing. An occurrence of a recurring task keeps its place in the series: completing it again never creates a second next occurrence. No request body is needed.",
            "parameters": [{"$ref": "#/components/parameters/IfMatch"}],
            "responses": {
                "200": task_answer("The reopened task."),
                "400": error_ref("BadRequest"),
                "401": error_ref("Unauthorized"),
                "404": error_ref("NotFound"),
                "409": error_ref("Conflict"),
                "412": error_ref("PreconditionFailed"),
                "500": error_ref("Internal"),
                "503": error_ref("Unavailable"),
            }
        }
    }));
    paths.insert(paths::AUDIT.to_owned(), json!({
        "parameters": [{"$ref": "#/components/parameters/TaskId"}],
        "get": {
            "operationId": "getTaskAudit",
            "tags": ["tasks"],
            "summary": "A task's audit trail",
            "description": "One entry per change, ordered by task version. Readable after the task was deleted. Entries are written asynchronously, so the newest change may appear a moment later.",
            "responses": {
                "200": {"description": "The trail.", "content": json_content(schema_ref("AuditTrail"))},
                "401": error_ref("Unauthorized"),
                "404": error_ref("NotFound"),
                "500": error_ref("Internal"),
                "503": error_ref("Unavailable"),
            }
        }
    }));
    paths.insert(paths::REMINDER.to_owned(), json!({
        "parameters": [{"$ref": "#/components/parameters/TaskId"}],
        "get": {
            "operationId": "getTaskReminder",
            "tags": ["tasks"],
            "summary": "Where the task's reminder stands",
            "description": "`pending` until the reminder service has handled the task's latest change, then `scheduled`, `fired` (with `fired_at` and how late it was), `missed` (later than the lateness horizon, e.g. after a long outage) or `cancelled`. 404 if the task never had a reminder.",
            "responses": {
                "200": {"description": "The reminder.", "content": json_content(schema_ref("Reminder"))},
                "401": error_ref("Unauthorized"),
                "404": error_ref("NotFound"),
                "500": error_ref("Internal"),
                "503": error_ref("Unavailable"),
            }
        }
    }));
    paths.insert(paths::OPENAPI.to_owned(), json!({
        "get": {
            "operationId": "getOpenApi",
            "tags": ["meta"],
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "The OpenAPI 3.1 document.", "content": {"application/json": {"schema": {"type": "object"}}}}}
        }
    }));
    Value::Object(paths)
}

fn parameters() -> Value {
    json!({
        "TaskId": {"name": "id", "in": "path", "required": true, "description": "The task id. An id that is not a UUID answers 404.", "schema": {"type": "string", "format": "uuid"}},
        "IfMatch": {
            "name": "If-Match", "in": "header", "required": false,
            "description": "Make the change conditional: `\"<version>\"` (the task's ETag), a comma-separated list of them, or `*`. A version that is no longer current answers 412 and writes nothing.",
            "schema": {"type": "string", "examples": ["\"3\""]}
        },
        "IfNoneMatch": {
            "name": "If-None-Match", "in": "header", "required": false,
            "description": "`\"<version>\"` (the task's ETag, weak or strong), a comma-separated list of them, or `*`: answers 304 without a body while the task is still at that version.",
            "schema": {"type": "string", "examples": ["\"3\""]}
        },
        "IdempotencyKey": {
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Makes the create idempotent: the same key returns the same task.",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_CHARS, "pattern": "^[!-~]+$"}
        },
        "q": {"name": "q", "in": "query", "description": "Case-insensitive substring of the title or the description.", "schema": {"type": "string", "maxLength": MAX_Q_CHARS}},
        "status": {"name": "status", "in": "query", "schema": schema_ref("Status")},
        "priority": {"name": "priority", "in": "query", "description": "Any of these (repeat the parameter, or separate with commas).", "style": "form", "explode": true, "schema": {"type": "array", "items": schema_ref("Priority")}},
        "tag": {"name": "tag", "in": "query", "description": "All of these tags (repeat the parameter).", "style": "form", "explode": true, "schema": {"type": "array", "maxItems": MAX_TAGS, "items": {"type": "string", "minLength": 1, "maxLength": MAX_TAG_CHARS}}},
        "due_before": {"name": "due_before", "in": "query", "description": "Only tasks due strictly before this instant (tasks without a due time are excluded). Encode `+` as `%2B`.", "schema": {"type": "string", "format": "date-time"}},
        "due_after": {"name": "due_after", "in": "query", "description": "Only tasks due strictly after this instant (tasks without a due time are excluded).", "schema": {"type": "string", "format": "date-time"}},
        "sort": {"name": "sort", "in": "query", "description": "Sort key; `-` for descending. Ties are ordered by id. Tasks without a due time come last for both `due` and `-due`. Titles sort case-insensitively.", "schema": {"type": "string", "enum": SortBy::all_names(), "default": SortBy::default().name()}},
        "limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
        "cursor": {"name": "cursor", "in": "query", "description": "`next_cursor` of the previous page. Bound to the query that produced it: only valid with the same filters and `sort` (`limit` may change).", "schema": {"type": "string", "maxLength": MAX_CURSOR_CHARS}},
    })
}

fn headers() -> Value {
    json!({
        "ETag": {"description": "The task's version, quoted: send it back in `If-Match` (conditional change) or `If-None-Match` (conditional read).", "schema": {"type": "string", "examples": ["\"1\""]}},
        "Location": {"description": "The task's URL.", "schema": {"type": "string", "examples": ["/v1/tasks/0b6a3c52-5f0e-4f59-9a8e-4f1f8d8e2b11"]}},
        "RetryAfter": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
        "WWWAuthenticate": {"description": "The Bearer challenge (RFC 6750).", "schema": {"type": "string"}},
        "RateLimitPolicy": {"description": "The per-user quota (IETF draft-ietf-httpapi-ratelimit-headers), e.g. `\"per-user\";q=600;w=60`: 600 requests per 60 s on one replica.", "schema": {"type": "string"}},
        "RateLimit": {"description": "What is left of the quota, e.g. `\"per-user\";r=12;t=59`: 12 requests now, full again in 59 s.", "schema": {"type": "string"}},
    })
}

fn responses() -> Value {
    let error = |description: &str| json!({"description": description, "content": json_content(schema_ref("Error"))});
    json!({
        "BadRequest": error("Invalid input; `field` names the body field (a JSON path), query parameter or header."),
        "Unauthorized": {
            "description": "Missing, malformed, expired or wrongly signed bearer token.",
            "headers": {"WWW-Authenticate": {"$ref": "#/components/headers/WWWAuthenticate"}},
            "content": json_content(schema_ref("Error")),
        },
        "NotFound": error("No such task for you (missing, deleted, or not yours)."),
        "Conflict": error("The task kept changing concurrently (retry), or the Idempotency-Key belongs to a deleted task."),
        "Unprocessable": error("Well-formed but cannot be applied: the merged task breaks a rule, a reminder would fire in the past, or the Idempotency-Key was used with another body; `field` names what."),
        "PreconditionFailed": error("`If-Match` names a version that is no longer current; read the task again."),
        "PayloadTooLarge": error("The body exceeds the server's limit (MAX_BODY_BYTES)."),
        "UnsupportedMediaType": error("The body must be `application/json` (or `application/merge-patch+json` for PATCH)."),
        "Internal": error("An unexpected error; details are in the server's logs."),
        "TooManyRequests": {
            "description": "You used up your rate limit (per user, per replica); retry after `Retry-After` seconds.",
            "headers": {
                "Retry-After": {"$ref": "#/components/headers/RetryAfter"},
                "RateLimit-Policy": {"$ref": "#/components/headers/RateLimitPolicy"},
                "RateLimit": {"$ref": "#/components/headers/RateLimit"},
            },
            "content": json_content(schema_ref("Error")),
        },
        "Unavailable": {
            "description": "The task store is temporarily unavailable; retry after `Retry-After` seconds.",
            "headers": {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}},
            "content": json_content(schema_ref("Error")),
        },
    })
}

fn schemas() -> Value {
    let date_time = json!({"type": "string", "format": "date-time"});
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string", "description": "What went wrong, for people."},
                "field": {"type": "string", "description": "The offending body field (JSON path such as `reminder.before_due_seconds`), query parameter or header."}
            }
        },
        "Priority": {"type": "string", "enum": ["low", "medium", "high", "urgent"]},
        "Status": {"type": "string", "enum": ["open", "completed"]},
        "Reminder": {
            "description": "At an absolute instant, or a fixed time before the due time.",
            "oneOf": [
                {"type": "object", "required": ["at"], "additionalProperties": false, "properties": {"at": date_time}},
                {"type": "object", "required": ["before_due_seconds"], "additionalProperties": false, "properties": {"before_due_seconds": {"type": "integer", "minimum": 0, "maximum": MAX_REMINDER_LEAD_SECONDS}}}
            ]
        },
        "Recurrence": {
            "type": "object",
            "required": ["rule"],
            "additionalProperties": false,
            "properties": {
                "rule": {"type": "string", "description": "An RFC 5545 RRULE (FREQ, INTERVAL, BYDAY, BYMONTHDAY, BYMONTH, BYSETPOS, WKST, COUNT, UNTIL), evaluated in the task's time zone.", "examples": ["FREQ=MONTHLY;BYMONTHDAY=31"]},
                "mode": {"type": "string", "enum": ["strict", "after_completion"], "default": "strict"},
                "exdates": {
                    "type": "array",
                    "maxItems": 366,
                    "items": date_time,
                    "description": "Occurrences to skip (RFC 5545 EXDATE), as the instants they fall on; each must be an occurrence of the series. Strict mode only. The series goes on past them.",
                    "examples": [["2026-12-31T09:00:00+01:00"]]
                }
            }
        },
        "Series": {
            "type": "object",
            "description": "Where a recurring task's instance sits in its series. Maintained by the system.",
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "index": {"type": "integer", "minimum": 0},
                "anchor": date_time,
                "anchor_index": {"type": "integer", "minimum": 0}
            }
        },
        "NewTask": {
            "type": "object",
            "required": ["title"],
            "additionalProperties": false,
            "properties": {
                "title": {"type": "string", "minLength": 1, "maxLength": MAX_TITLE_CHARS, "description": "One line; surrounding whitespace is trimmed."},
                "description": {"type": "string", "maxLength": MAX_DESCRIPTION_CHARS, "default": ""},
                "priority": {"allOf": [schema_ref("Priority")], "default": "medium"},
                "tags": {"type": "array", "maxItems": MAX_TAGS, "uniqueItems": true, "items": {"type": "string", "minLength": 1, "maxLength": MAX_TAG_CHARS, "pattern": "^\\S+$"}},
                "due": {"type": "string", "format": "date-time", "description": "RFC 3339 with offset."},
                "time_zone": {"type": "string", "description": "IANA zone recurrence is evaluated in.", "default": "UTC", "examples": ["Europe/Berlin"]},
                "reminder": schema_ref("Reminder"),
                "recurrence": {"allOf": [schema_ref("Recurrence")], "description": "Requires `due`."}
            }
        },
        "TaskPatch": {
            "type": "object",
            "additionalProperties": false,
            "description": "JSON merge patch: absent fields are unchanged, `null` clears (description, tags, due, reminder, recurrence).",
            "properties": {
                "title": {"type": "string", "minLength": 1, "maxLength": MAX_TITLE_CHARS},
                "description": {"type": ["string", "null"], "maxLength": MAX_DESCRIPTION_CHARS},
                "priority": schema_ref("Priority"),
                "tags": {"type": ["array", "null"], "maxItems": MAX_TAGS, "items": {"type": "string", "minLength": 1, "maxLength": MAX_TAG_CHARS}},
                "due": {"type": ["string", "null"], "format": "date-time"},
                "time_zone": {"type": "string"},
                "reminder": {"oneOf": [schema_ref("ReminderPatch"), {"type": "null"}]},
                "recurrence": {"oneOf": [schema_ref("RecurrencePatch"), {"type": "null"}]}
            }
        },
        "ReminderPatch": {
            "type": "object",
            "additionalProperties": false,
            "description": "Merged into the current reminder. The result must have exactly one member: to switch kinds send the other as null.",
            "properties": {
                "at": {"type": ["string", "null"], "format": "date-time"},
                "before_due_seconds": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_REMINDER_LEAD_SECONDS}
            }
        },
        "RecurrencePatch": {
            "type": "object",
            "additionalProperties": false,
            "description": "Merged into the current recurrence (a task without one needs `rule`). `exdates` is replaced whole; `mode: null` is strict.",
            "properties": {
                "rule": {"type": "string"},
                "mode": {"type": ["string", "null"], "enum": ["strict", "after_completion", null]},
                "exdates": {"type": ["array", "null"], "maxItems": 366, "items": {"type": "string", "format": "date-time"}}
            }
        },
        "Task": {
            "type": "object",
            "required": ["id", "owner", "title", "description", "priority", "tags", "status", "time_zone", "created_at", "updated_at", "version"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "owner": {"type": "string", "description": "Your user id (the token's `sub`)."},
                "title": {"type": "string"},
                "description": {"type": "string"},
                "priority": schema_ref("Priority"),
                "tags": {"type": "array", "items": {"type": "string"}},
                "status": schema_ref("Status"),
                "due": {"type": ["string", "null"], "format": "date-time"},
                "time_zone": {"type": "string"},
                "reminder": {"oneOf": [schema_ref("Reminder"), {"type": "null"}]},
                "recurrence": {"oneOf": [schema_ref("Recurrence"), {"type": "null"}]},
                "series": {"oneOf": [schema_ref("Series"), {"type": "null"}]},
                "created_at": date_time,
                "updated_at": date_time,
                "completed_at": {"type": ["string", "null"], "format": "date-time"},
                "deleted_at": {"type": ["string", "null"], "format": "date-time", "description": "Set on deleted tasks (seen only in audit snapshots)."},
                "version": {"type": "integer", "minimum": 1, "description": "Grows by one with every change; the ETag."},
                "request_digest": {"type": "string", "description": "Set on tasks created with an Idempotency-Key: SHA-256 of the normalised create request, compared when the key is used again."}
            }
        },
        "TaskPage": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": schema_ref("Task")},
                "next_cursor": {"type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last page."}
            }
        },
        "Reminder": {
            "type": "object",
            "required": ["task_id", "status", "remind_at", "fired_at", "late_by_ms"],
            "properties": {
                "task_id": {"type": "string", "format": "uuid"},
                "status": {"type": "string", "enum": ["pending", "scheduled", "fired", "missed", "cancelled"]},
                "remind_at": {"type": ["string", "null"], "format": "date-time"},
                "fired_at": {"type": ["string", "null"], "format": "date-time"},
                "late_by_ms": {"type": ["integer", "null"], "minimum": 0, "description": "How late the reminder fired, in milliseconds."}
            }
        },
        "AuditEntry": {
            "type": "object",
            "required": ["task_id", "owner", "event_id", "change", "task_version", "occurred_at", "recorded_at", "task"],
            "properties": {
                "task_id": {"type": "string", "format": "uuid"},
                "owner": {"type": "string"},
                "event_id": {"type": "string"},
                "change": {"type": "string", "enum": ["created", "updated", "completed", "deleted", "reopened"]},
                "task_version": {"type": "integer"},
                "occurred_at": date_time,
                "recorded_at": date_time,
                "task": schema_ref("Task")
            }
        },
        "AuditTrail": {
            "type": "object",
            "required": ["items"],
            "properties": {"items": {"type": "array", "items": schema_ref("AuditEntry")}}
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Every `$ref` points at something the document defines.
    #[test]
    fn every_reference_resolves() {
        fn walk(value: &Value, doc: &Value, refs: &mut usize) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        let pointer = target.strip_prefix('#').unwrap();
                        assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
                        *refs += 1;
                    }
                    map.values().for_each(|v| walk(v, doc, refs));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, doc, refs)),
                _ => {}
            }
        }
        let doc = document();
        let mut refs = 0;
        walk(&doc, &doc, &mut refs);
        assert!(refs > 50, "only {refs} references: the walk is not looking");
    }

    #[test]
    fn documents_exactly_the_router_paths() {
        let doc = document();
        let documented: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
        let mut expected: Vec<&str> = paths::ALL.to_vec();
        expected.sort_unstable();
        let mut documented: Vec<&str> = documented.iter().map(|s| s.as_str()).collect();
        documented.sort_unstable();
        assert_eq!(documented, expected);
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
    }

    #[test]
    fn list_parameters_match_the_parser() {
        let doc = document();
        let params = doc["components"]["parameters"].as_object().unwrap();
        for name in crate::params::NAMES.iter().filter(|n| **n != "owner") {
            assert_eq!(params[*name]["in"], "query", "{name}");
        }
    }
}
