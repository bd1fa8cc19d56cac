//! Input to tasks: parsing with the failing field named, and the invariants every stored task
//! satisfies. task-api answers a violation with 400 and `{"error", "field"}`; create-task DROPs
//! the request to its dead-letter topic. Either way nothing partial is written.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, FixedOffset, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::recurrence::{Mode, Rule, first_non_occurrence};
use super::reminder::fire_time;
use super::task::{Priority, Recurrence, Reminder, Series, Status, Task};

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 32;
pub const MAX_OWNER_CHARS: usize = 128;
pub const MAX_REMINDER_LEAD_SECONDS: u32 = 366 * 24 * 3600;
/// Most skipped occurrences a series may list (a year of daily skips).
pub const MAX_EXDATES: usize = 366;

/// A rejected input, naming the field (a JSON path such as `reminder.before_due_seconds`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self { field: field.to_owned(), message: message.into() }
    }
}

/// The fields a client may set when creating a task (`POST /v1/tasks`, `todo.task.create`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// One line; surrounding whitespace is trimmed.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub title: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 10_000))]
    pub description: String,
    #[serde(default)]
    pub priority: Priority,
    /// Distinct, without whitespace.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 20, value_type = Vec<TagSchema>))]
    pub tags: Vec<String>,
    /// RFC 3339 with an offset, like `2026-12-31T09:00:00+01:00`. May be in the past.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub due: Option<DateTime<FixedOffset>>,
    /// The IANA time zone recurrence is evaluated in (default `UTC`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "Europe/Berlin"))]
    pub time_zone: Option<Tz>,
    #[serde(default)]
    pub reminder: Option<Reminder>,
    /// Requires `due`.
    #[serde(default)]
    pub recurrence: Option<Recurrence>,
}

/// A tag, as the schema of one item of `tags`.
#[cfg(feature = "openapi")]
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = Tag, min_length = 1, max_length = 32, pattern = r"^\S+$")]
pub struct TagSchema(pub String);

/// A JSON merge patch (RFC 7396) of a task: an absent member is unchanged, `null` removes it,
/// and an object merges into the object it patches, member by member, recursively. So
/// `{"recurrence": {"mode": "after_completion"}}` changes only the mode and keeps the rule and
/// the skipped dates, and an array (`exdates`) is replaced whole, as RFC 7396 does with every
/// non-object value. Parsing checks the shape (unknown members, types: 400); [`apply_patch`]
/// merges and then checks the result as a whole, refusing one that is not a valid task (422).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(
        description = "A JSON merge patch (RFC 7396): an absent member is unchanged, `null` removes it (description, tags, due, reminder, recurrence), objects (`reminder`, `recurrence`) merge member by member and arrays are replaced whole. A patch whose merged result is not a valid task is 422."
    )
)]
#[serde(deny_unknown_fields)]
pub struct TaskPatch {
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1, max_length = 200))]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 10_000))]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Priority))]
    pub priority: Option<Priority>,
    /// Replaces the tags whole.
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<TagSchema>>, max_items = 20))]
    pub tags: Option<Option<Vec<String>>>,
    /// RFC 3339 with an offset.
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub due: Option<Option<DateTime<FixedOffset>>>,
    /// An IANA time zone.
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "Europe/Berlin"))]
    pub time_zone: Option<Tz>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ReminderPatch>))]
    pub reminder: Option<Option<ReminderPatch>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<RecurrencePatch>))]
    pub recurrence: Option<Option<RecurrencePatch>>,
}

/// The members of a merge patch of `reminder` (RFC 7396: merged into the current reminder).
///
/// A reminder is `{"at": ...}` or `{"before_due_seconds": ...}`, one member. Merging is the
/// RFC's, member by member, so `{"at": X}` onto `{"before_due_seconds": N}` gives an object with
/// both, which is not a reminder: that is refused (422) rather than guessed, and the message
/// says to switch with `{"at": X, "before_due_seconds": null}` (or to send `"reminder": null`
/// to remove it). Setting the member the reminder already has just changes it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReminderPatch {
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub at: Option<Option<DateTime<FixedOffset>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>, maximum = 31_622_400))]
    pub before_due_seconds: Option<Option<u32>>,
}

/// The members of a merge patch of `recurrence` (RFC 7396: merged into the current recurrence).
/// `mode: null` restores the default (`strict`), `exdates: null` skips nothing; `rule: null`
/// would leave a recurrence without a rule, which is refused (send `"recurrence": null` to end
/// the series). Onto a task without recurrence the patch must bring a rule.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecurrencePatch {
    /// An RFC 5545 RRULE. `null` is refused: send `"recurrence": null` to end the series.
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub rule: Option<Option<Rule>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Mode>))]
    pub mode: Option<Option<Mode>>,
    /// Replaces the skipped occurrences whole.
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<DateTime<FixedOffset>>>, max_items = 366))]
    pub exdates: Option<Option<Vec<DateTime<FixedOffset>>>>,
}

/// Tells "absent" (outer `None`, via `#[serde(default)]`) from "null" (`Some(None)`).
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// May be absent (`#[serde(default)]`), must not be `null`: these fields cannot be removed.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Parses a JSON object body, naming the first offending field. Anything but an object is
/// refused up front: derived structs would also accept an array of their fields in declaration
/// order, which no client means.
///
/// Messages are written for the person reading the response, not for the parser's author:
/// serde's own texts ("premature end of input", "invalid type: integer `1`, expected ...",
/// "at line 1 column 39") are replaced by what the field must be, with an example to copy
/// ([`field_hint`]), and a body that is not JSON at all is said to be so, pointing at the spot
/// with the text around it rather than a line and column.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ValidationError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ValidationError::new("", format!("the body is empty: send a JSON object, like {EXAMPLE_BODY}")));
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ValidationError::new("", format!("the body must be a JSON object, like {EXAMPLE_BODY}")));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        describe(body, if path == "." { "" } else { &path }, &e.into_inner())
    })?;
    de.end().map_err(|e| describe(body, "", &e))?;
    Ok(value)
}

/// Deserializes an already parsed JSON value found at `field` (a JSON path, `""` for the whole
/// body) with the same messages as [`parse_json`]: for input that is merged as a
/// [`serde_json::Value`] before it is typed, such as a merge patch's nested objects.
pub fn parse_value<T: DeserializeOwned>(field: &str, value: serde_json::Value) -> Result<T, ValidationError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let path = match (field, path.as_str()) {
            (_, ".") => field.to_owned(),
            ("", inner) => inner.to_owned(),
            (outer, inner) if inner.starts_with('[') => format!("{outer}{inner}"),
            (outer, inner) => format!("{outer}.{inner}"),
        };
        describe(&[], &path, &e.into_inner())
    })
}

/// A body to copy when the body is not an object at all.
const EXAMPLE_BODY: &str = r#"{"title": "Buy milk", "due": "2026-12-31T09:00:00+01:00"}"#;

/// The [`ValidationError`] for a serde failure at `path` (a JSON path, `""` for the body itself).
fn describe(body: &[u8], path: &str, error: &serde_json::Error) -> ValidationError {
    use serde_json::error::Category;
    let detail = without_position(error);
    match error.classify() {
        // The path names the value that is cut off, when the parser was inside one.
        Category::Eof => ValidationError::new(
            path,
            "the body is not valid JSON: it ends before the object is complete (a closing quote, ] or } is missing)",
        ),
        // serde_json also reports a well-formed value of the wrong kind for an enum (`3` for a
        // priority) as a syntax error ("expected value"): a body that parses is about content.
        Category::Syntax if body.is_empty() => data_error(path, &detail),
        Category::Syntax if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) => {
            let null = value_at(&value, path).is_some_and(serde_json::Value::is_null);
            data_error(path, if null { "invalid type: null" } else { &detail })
        }
        Category::Syntax | Category::Io => {
            let near = near(body, error.line(), error.column());
            let what = if detail.starts_with("trailing characters") {
                "the body is not valid JSON: something follows the object"
            } else {
                "the body is not valid JSON"
            };
            // The path is where the parser was, so it names the field whose value is broken.
            ValidationError::new(path, format!("{what}{near}"))
        }
        Category::Data => data_error(path, &detail),
    }
}

/// A well-formed body whose content does not fit: name the field and say what it must be.
fn data_error(path: &str, detail: &str) -> ValidationError {
    // serde_path_to_error ends the path with an unknown field's own name, but stops at the
    // object for a missing one.
    let join = |name: &str| match path {
        "" => name.to_owned(),
        _ if path == name || path.ends_with(&format!(".{name}")) => path.to_owned(),
        _ => format!("{path}.{name}"),
    };
    if let Some(name) = quoted_after(detail, "unknown field `") {
        let field = join(&name);
        let known = backticked(detail.split_once("expected").map_or("", |(_, list)| list));
        let message = if known.is_empty() {
            "is not a known field: this object takes no fields".to_owned()
        } else {
            format!("is not a known field; the fields here are {}", known.join(", "))
        };
        return ValidationError { field, message };
    }
    if let Some(name) = quoted_after(detail, "missing field `") {
        let field = join(&name);
        let message = format!("is required: it {}", field_hint(&field));
        return ValidationError { field, message };
    }
    if let Some(name) = quoted_after(detail, "duplicate field `") {
        return ValidationError { field: join(&name), message: "is given twice; send it once".to_owned() };
    }
    let hint = field_hint(path);
    let message = if detail.starts_with("invalid type: null") {
        format!("cannot be null (it cannot be removed, only changed): it {hint}")
    } else if path == "recurrence.rule" && !is_serde_jargon(detail) {
        // The rule parser's own message names the RRULE part at fault; keep it.
        format!("{detail}; the rule {hint}")
    } else {
        hint.to_owned()
    };
    ValidationError { field: path.to_owned(), message }
}

/// What the value at `path` must be, with an example: the tail of "<field> must be ...".
pub fn field_hint(path: &str) -> &'static str {
    // `tags[3]` and `recurrence.exdates[0]` take the hint of their list's items.
    let (list, item) = match path.split_once('[') {
        Some((list, _)) => (list, true),
        None => (path, false),
    };
    match (list, item) {
        ("title", _) => r#"must be a text of 1 to 200 characters on one line, like "Buy milk""#,
        ("description", _) => r#"must be a text of at most 10000 characters, like "Semi-skimmed, 2 litres""#,
        ("priority", _) => "must be one of low, medium, high or urgent",
        ("tags", false) => r#"must be a list of short words without spaces, like ["home", "errands"]"#,
        ("tags", true) => r#"must be a word of 1 to 32 characters without spaces, like "errands""#,
        ("due", _) => "must be RFC 3339 with an offset, like 2026-12-31T09:00:00+01:00",
        ("time_zone", _) => "must be an IANA time zone, like Europe/Berlin",
        ("reminder", _) => {
            r#"must be {"at": <time>} or {"before_due_seconds": <seconds>}, like {"before_due_seconds": 900}"#
        }
        ("reminder.at", _) => "must be RFC 3339 with an offset, like 2026-12-31T08:45:00+01:00",
        ("reminder.before_due_seconds", _) => "must be a whole number of seconds (0 or more), like 900",
        ("recurrence", _) => {
            r#"must be an object with a rule, like {"rule": "FREQ=WEEKLY;BYDAY=MO", "mode": "strict"}"#
        }
        ("recurrence.rule", _) => "must be an RFC 5545 RRULE, like FREQ=WEEKLY;BYDAY=MO",
        ("recurrence.mode", _) => "must be strict or after_completion",
        ("recurrence.exdates", false) => {
            r#"must be a list of RFC 3339 times with an offset, like ["2026-12-31T09:00:00+01:00"]"#
        }
        ("recurrence.exdates", true) => "must be RFC 3339 with an offset, like 2026-12-31T09:00:00+01:00",
        _ => "has a value of the wrong kind",
    }
}

/// The fragments of serde's and its parsers' messages that mean nothing to a client.
fn is_serde_jargon(message: &str) -> bool {
    ["invalid type", "invalid value", "invalid length", "expected", "premature end", "input contains"]
        .iter()
        .any(|fragment| message.contains(fragment))
}

/// serde_json's message without the " at line L column C" it appends.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    text.strip_suffix(&suffix).map(str::to_owned).unwrap_or(text)
}

/// `", near `…`"`: the text around a line/column position, so that a person can find it.
fn near(body: &[u8], line: usize, column: usize) -> String {
    if line == 0 || body.is_empty() {
        return String::new();
    }
    let line_start: usize = body.split(|b| *b == b'\n').take(line - 1).map(|l| l.len() + 1).sum();
    let at = (line_start + column.saturating_sub(1)).min(body.len());
    let from = at.saturating_sub(20);
    let to = (at + 10).min(body.len());
    let text: String =
        String::from_utf8_lossy(&body[from..to]).chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.trim().is_empty() { String::new() } else { format!(", near `{text}`") }
}

/// The value at a serde_path_to_error path such as `recurrence.exdates[0]`.
fn value_at<'v>(value: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    path.split('.').filter(|s| !s.is_empty()).try_fold(value, |value, segment| {
        let (key, indexes) = segment.split_once('[').map_or((segment, ""), |(k, rest)| (k, rest));
        let value = value.get(key)?;
        indexes
            .split('[')
            .filter(|i| !i.is_empty())
            .try_fold(value, |value, index| value.get(index.trim_end_matches(']').parse::<usize>().ok()?))
    })
}

/// The name in `"<prefix>name`..."`.
fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    Some(message.strip_prefix(prefix)?.split('`').next()?.to_owned())
}

/// Every `name` quoted in backticks in `text`, in order.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// A new task (version 1) from validated input. A recurring task without a series starts its
/// own: series id = task id, occurrence 0 anchored at its due time.
pub fn new_task(
    id: Uuid,
    owner: &str,
    input: NewTask,
    series: Option<Series>,
    now: DateTime<Utc>,
) -> Result<Task, ValidationError> {
    let series = match (&input.recurrence, series, input.due) {
        (_, Some(series), _) => Some(series),
        (Some(_), None, Some(due)) => Some(Series::start(id, due)),
        _ => None,
    };
    let task = Task {
        id,
        owner: owner.to_owned(),
        title: input.title.trim().to_owned(),
        description: input.description,
        priority: input.priority,
        tags: normalize_tags(input.tags)?,
        status: Status::Open,
        due: input.due,
        time_zone: input.time_zone.unwrap_or(Tz::UTC),
        reminder: input.reminder,
        recurrence: input.recurrence.map(normalize_recurrence),
        series,
        created_at: now,
        updated_at: now,
        completed_at: None,
        deleted_at: None,
        version: 1,
        request_digest: None,
    };
    check(&task)?;
    Ok(task)
}

/// The task after `patch`, or `None` if the patch changes nothing (so no event is emitted).
/// Editing the due time or the rule of a recurring task re-anchors its series at this
/// occurrence: the change applies to the future occurrences, never rewrites the past ones.
///
/// Every error is about the merged result, not the patch's shape (the parse checked that):
/// task-api answers it with 422. A patch that moves the reminder's fire time into the past is
/// one of them ([`check_reminder_not_past`]).
pub fn apply_patch(task: &Task, patch: TaskPatch, now: DateTime<Utc>) -> Result<Option<Task>, ValidationError> {
    let mut next = task.clone();
    if let Some(title) = patch.title {
        next.title = title.trim().to_owned();
    }
    if let Some(description) = patch.description {
        next.description = description.unwrap_or_default();
    }
    if let Some(priority) = patch.priority {
        next.priority = priority;
    }
    if let Some(tags) = patch.tags {
        next.tags = normalize_tags(tags.unwrap_or_default())?;
    }
    if let Some(due) = patch.due {
        next.due = due;
    }
    if let Some(time_zone) = patch.time_zone {
        next.time_zone = time_zone;
    }
    next.reminder = merge_reminder(task.reminder, patch.reminder)?;
    next.recurrence = merge_recurrence(task.recurrence.as_ref(), patch.recurrence)?;
    let recurrence_changed =
        next.due != task.due || next.recurrence != task.recurrence || next.time_zone != task.time_zone;
    if recurrence_changed
        && next.recurrence.is_some()
        && let Some(due) = next.due
    {
        next.series = Some(match next.series {
            Some(series) => Series { anchor: due, anchor_index: series.index, ..series },
            None => Series::start(next.id, due),
        });
    }
    check(&next)?;
    if next == *task {
        return Ok(None);
    }
    check_reminder_not_past(&next, Some(task), now)?;
    next.touch(now);
    Ok(Some(next))
}

/// RFC 7396 on `reminder`: absent keeps it, `null` removes it, an object merges member by
/// member into `{"at": ...}` or `{"before_due_seconds": ...}`; the result must be exactly one.
fn merge_reminder(
    current: Option<Reminder>,
    patch: Option<Option<ReminderPatch>>,
) -> Result<Option<Reminder>, ValidationError> {
    let patch = match patch {
        None => return Ok(current),
        Some(None) => return Ok(None),
        Some(Some(patch)) => patch,
    };
    let (mut at, mut before) = match current {
        Some(Reminder::At(at)) => (Some(at), None),
        Some(Reminder::BeforeDueSeconds(seconds)) => (None, Some(seconds)),
        None => (None, None),
    };
    if let Some(value) = patch.at {
        at = value;
    }
    if let Some(value) = patch.before_due_seconds {
        before = value;
    }
    match (at, before) {
        (Some(at), None) => Ok(Some(Reminder::At(at))),
        (None, Some(seconds)) => Ok(Some(Reminder::BeforeDueSeconds(seconds))),
        (Some(_), Some(_)) => Err(ValidationError::new(
            "reminder",
            "merged into the current reminder this gives both at and before_due_seconds, but a reminder is one \
             of them: to switch, send the other as null, like {\"reminder\": {\"at\": \"2026-12-31T07:30:00Z\", \
             \"before_due_seconds\": null}}",
        )),
        (None, None) => Err(ValidationError::new(
            "reminder",
            "merged into the current reminder this leaves neither at nor before_due_seconds: to remove the \
             reminder send \"reminder\": null; to set one send {\"reminder\": {\"before_due_seconds\": 900}} \
             or {\"reminder\": {\"at\": \"2026-12-31T07:30:00Z\"}}",
        )),
    }
}

/// RFC 7396 on `recurrence`: absent keeps it, `null` ends it, an object merges member by member
/// (an absent `mode` is `strict`, absent `exdates` skip nothing). The result needs a rule.
fn merge_recurrence(
    current: Option<&Recurrence>,
    patch: Option<Option<RecurrencePatch>>,
) -> Result<Option<Recurrence>, ValidationError> {
    let patch = match patch {
        None => return Ok(current.cloned()),
        Some(None) => return Ok(None),
        Some(Some(patch)) => patch,
    };
    let (mut rule, mut mode, mut exdates) = match current {
        Some(r) => (Some(r.rule.clone()), r.mode, r.exdates.clone()),
        None => (None, Mode::default(), Vec::new()),
    };
    if let Some(value) = patch.rule {
        rule = value;
    }
    if let Some(value) = patch.mode {
        mode = value.unwrap_or_default();
    }
    if let Some(value) = patch.exdates {
        exdates = value.unwrap_or_default();
    }
    let Some(rule) = rule else {
        let message = if current.is_some() {
            "a recurrence cannot lose its rule: to end the series send \"recurrence\": null"
        } else {
            "this task does not recur, so there is no rule to merge mode or exdates into: send the whole \
             recurrence, like {\"recurrence\": {\"rule\": \"FREQ=WEEKLY\", \"mode\": \"after_completion\"}}"
        };
        return Err(ValidationError::new("recurrence.rule", message));
    };
    Ok(Some(normalize_recurrence(Recurrence { rule, mode, exdates })))
}

/// Refuses a reminder that would fire before `now`, when the request sets it: a reminder in the
/// past would never fire (fire-reminder records it as missed), which the owner would only
/// notice when it stayed silent. `before` is the task before a patch: a reminder the patch
/// leaves at the same instant is not the client's doing (it may have fired already) and passes.
///
/// Deliberately allowed: a due time in the past (overdue tasks are normal: recording what is
/// late is the point of a to-do list), and an absolute reminder after the due time ("chase this
/// up the day after the deadline"; `before_due_seconds` cannot express that, `at` can).
/// Tasks created from a topic (the next occurrence of a series after a late completion) do not
/// pass here: the system, not a client, chose their reminder.
pub fn check_reminder_not_past(task: &Task, before: Option<&Task>, now: DateTime<Utc>) -> Result<(), ValidationError> {
    let Some(fires) = fire_time(task) else {
        return Ok(());
    };
    if before.and_then(fire_time) == Some(fires) || fires >= now {
        return Ok(());
    }
    let how = match task.reminder {
        Some(Reminder::BeforeDueSeconds(seconds)) => format!(" ({seconds} s before the due time)"),
        _ => String::new(),
    };
    Err(ValidationError::new(
        "reminder",
        format!(
            "fires at {}{how}, which is in the past (now is {}); choose a later time or send \"reminder\": null",
            fires.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::Secs, true),
            now.to_rfc3339_opts(SecondsFormat::Secs, true),
        ),
    ))
}

/// Skipped occurrences in order, each once (compared as instants).
fn normalize_recurrence(mut recurrence: Recurrence) -> Recurrence {
    recurrence.exdates.sort_unstable();
    recurrence.exdates.dedup();
    recurrence
}

fn normalize_tags(tags: Vec<String>) -> Result<BTreeSet<String>, ValidationError> {
    let set: BTreeSet<String> = tags.into_iter().map(|t| t.trim().to_owned()).collect();
    if set.len() > MAX_TAGS {
        return Err(ValidationError::new("tags", format!("at most {MAX_TAGS} tags")));
    }
    Ok(set)
}

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

/// The invariants of every stored task.
pub fn check(task: &Task) -> Result<(), ValidationError> {
    if task.owner.trim().is_empty() || task.owner.chars().count() > MAX_OWNER_CHARS || has_control(&task.owner) {
        return Err(ValidationError::new("owner", format!("must be 1 to {MAX_OWNER_CHARS} printable characters")));
    }
    let title_chars = task.title.chars().count();
    if title_chars == 0 {
        return Err(ValidationError::new("title", "must not be empty"));
    }
    if title_chars > MAX_TITLE_CHARS {
        return Err(ValidationError::new(
            "title",
            format!("must be at most {MAX_TITLE_CHARS} characters, got {title_chars}"),
        ));
    }
    if task.title.contains(['\n', '\r']) || has_control(&task.title) {
        return Err(ValidationError::new("title", "must be a single line without control characters"));
    }
    if task.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ValidationError::new("description", format!("must be at most {MAX_DESCRIPTION_CHARS} characters")));
    }
    if has_control(&task.description) {
        return Err(ValidationError::new("description", "must not contain control characters"));
    }
    for tag in &task.tags {
        let chars = tag.chars().count();
        if chars == 0 || chars > MAX_TAG_CHARS || tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ValidationError::new(
                "tags",
                format!("each tag must be 1 to {MAX_TAG_CHARS} characters without spaces, got {tag:?}"),
            ));
        }
    }
    for (field, time) in [("due", task.due.map(|d| d.year())), ("reminder.at", reminder_year(task))] {
        if let Some(year) = time
            && !(1970..=9999).contains(&year)
        {
            return Err(ValidationError::new(field, "must be between the years 1970 and 9999"));
        }
    }
    match (task.reminder, task.due) {
        (Some(Reminder::BeforeDueSeconds(_)), None) => {
            return Err(ValidationError::new("reminder.before_due_seconds", "needs a due time"));
        }
        (Some(Reminder::BeforeDueSeconds(s)), Some(_)) if s > MAX_REMINDER_LEAD_SECONDS => {
            return Err(ValidationError::new("reminder.before_due_seconds", "must be at most 366 days"));
        }
        _ => {}
    }
    if task.recurrence.is_some() && task.due.is_none() {
        return Err(ValidationError::new("due", "a recurring task needs a due time"));
    }
    if let Some(recurrence) = &task.recurrence {
        check_exdates(task, recurrence)?;
    }
    Ok(())
}

/// Every skipped occurrence must be one: a date that matches nothing would silently skip
/// nothing, which the owner would only find out when the reminder fires anyway.
fn check_exdates(task: &Task, recurrence: &Recurrence) -> Result<(), ValidationError> {
    const FIELD: &str = "recurrence.exdates";
    if recurrence.exdates.is_empty() {
        return Ok(());
    }
    if recurrence.mode == Mode::AfterCompletion {
        return Err(ValidationError::new(
            FIELD,
            "only a strict series can skip occurrences: after_completion occurrences are not known before the completion",
        ));
    }
    if recurrence.exdates.len() > MAX_EXDATES {
        return Err(ValidationError::new(FIELD, format!("at most {MAX_EXDATES} skipped occurrences")));
    }
    if recurrence.exdates.iter().any(|at| !(1970..=9999).contains(&at.year())) {
        return Err(ValidationError::new(FIELD, "must be between the years 1970 and 9999"));
    }
    let Some(series) = task.series.or_else(|| task.due.map(|due| Series::start(task.id, due))) else {
        return Ok(());
    };
    match first_non_occurrence(
        &recurrence.rule,
        task.time_zone,
        series.anchor,
        series.anchor_index,
        &recurrence.exdates,
    ) {
        Ok(None) => Ok(()),
        Ok(Some(at)) => Err(ValidationError::new(
            FIELD,
            format!(
                "{} is not an occurrence of {} from {} in {}",
                at.to_rfc3339(),
                recurrence.rule,
                series.anchor.to_rfc3339(),
                task.time_zone
            ),
        )),
        Err(e) => Err(ValidationError::new(FIELD, e.to_string())),
    }
}

fn reminder_year(task: &Task) -> Option<i32> {
    match task.reminder {
        Some(Reminder::At(at)) => Some(at.year()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn input(value: serde_json::Value) -> Result<NewTask, ValidationError> {
        parse_json(&serde_json::to_vec(&value).unwrap())
    }

    fn create(value: serde_json::Value) -> Result<Task, ValidationError> {
        new_task(Uuid::nil(), "alice", input(value)?, None, now())
    }

    #[test]
    fn a_minimal_task_gets_defaults() {
        let task = create(json!({"title": "  Buy milk "})).unwrap();
        assert_eq!(task.title, "Buy milk");
        assert_eq!((task.priority, task.status, task.version), (Priority::Medium, Status::Open, 1));
        assert_eq!(task.time_zone, Tz::UTC);
        assert_eq!(task.series, None);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({}), "title"),
            (json!({"title": ""}), "title"),
            (json!({"title": "   "}), "title"),
            (json!({"title": "x".repeat(201)}), "title"),
            (json!({"title": "a\nb"}), "title"),
            (json!({"title": "x", "priority": "whenever"}), "priority"),
            (json!({"title": "x", "due": "tomorrow"}), "due"),
            (json!({"title": "x", "due": "2026-12-01T09:00:00"}), "due"),
            (json!({"title": "x", "time_zone": "Mars/Olympus"}), "time_zone"),
            (json!({"title": "x", "tags": ["has space"]}), "tags"),
            (json!({"title": "x", "tags": ["x".repeat(33)]}), "tags"),
            (json!({"title": "x", "reminder": {"before_due_seconds": 60}}), "reminder.before_due_seconds"),
            (json!({"title": "x", "reminder": {"in": 60}}), "reminder"),
            (json!({"title": "x", "recurrence": {"rule": "FREQ=DAILY"}}), "due"),
            (json!({"title": "x", "colour": "red"}), "colour"),
            (json!({"title": "x", "due": "1900-01-01T00:00:00Z"}), "due"),
        ];
        for (body, field) in cases {
            let err = create(body.clone()).unwrap_err();
            assert!(err.field.starts_with(field), "{body} gave {err:?}, expected field {field}");
        }
    }

    #[test]
    fn tags_are_a_set() {
        let task = create(json!({"title": "x", "tags": ["b", "a", " b "]})).unwrap();
        assert_eq!(task.tags.into_iter().collect::<Vec<_>>(), vec!["a", "b"]);
        let too_many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert_eq!(create(json!({"title": "x", "tags": too_many})).unwrap_err().field, "tags");
    }

    #[test]
    fn a_recurring_task_starts_its_own_series() {
        let task = create(json!({
            "title": "Rent", "due": "2026-12-01T09:00:00+01:00", "time_zone": "Europe/Berlin",
            "recurrence": {"rule": "FREQ=MONTHLY"}
        }))
        .unwrap();
        let series = task.series.unwrap();
        assert_eq!((series.id, series.index, series.anchor_index), (task.id, 0, 0));
        assert_eq!(Some(series.anchor), task.due);
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        assert!(parse_json::<NewTask>(br#"{"title":"x"} {"#).is_err());
    }

    #[test]
    fn patch_distinguishes_absent_from_null() {
        let task = create(json!({"title": "x", "due": "2026-12-01T09:00:00Z", "reminder": {"before_due_seconds": 60}}))
            .unwrap();
        let patch: TaskPatch = parse_json(br#"{"title":"y"}"#).unwrap();
        let patched = apply_patch(&task, patch, now()).unwrap().unwrap();
        assert_eq!((patched.title.as_str(), patched.due, patched.version), ("y", task.due, 2));

        // Clearing the due time while a relative reminder needs it is refused as a whole.
        let patch: TaskPatch = parse_json(br#"{"due":null}"#).unwrap();
        assert_eq!(apply_patch(&task, patch, now()).unwrap_err().field, "reminder.before_due_seconds");

        let patch: TaskPatch = parse_json(br#"{"due":null,"reminder":null}"#).unwrap();
        let patched = apply_patch(&task, patch, now()).unwrap().unwrap();
        assert_eq!((patched.due, patched.reminder), (None, None));
    }

    #[test]
    fn a_patch_that_changes_nothing_is_no_change() {
        let task = create(json!({"title": "x", "priority": "high"})).unwrap();
        let patch: TaskPatch = parse_json(br#"{"title":" x ","priority":"high"}"#).unwrap();
        assert_eq!(apply_patch(&task, patch, now()).unwrap(), None);
    }

    #[test]
    fn only_objects_are_accepted() {
        let err = parse_json::<NewTask>(br#"["Buy milk", "", "high"]"#).unwrap_err();
        assert!(err.message.starts_with("the body must be a JSON object, like {"), "{err}");
        let err = parse_json::<NewTask>(b"  ").unwrap_err();
        assert!(err.message.starts_with("the body is empty"), "{err}");
    }

    #[test]
    fn required_fields_cannot_be_patched_to_null() {
        for field in ["title", "priority", "time_zone"] {
            let body = format!("{{\"{field}\": null}}");
            assert_eq!(parse_json::<TaskPatch>(body.as_bytes()).unwrap_err().field, field);
        }
    }

    #[test]
    fn patch_rejects_unknown_and_system_fields() {
        assert_eq!(parse_json::<TaskPatch>(br#"{"version":7}"#).unwrap_err().field, "version");
        assert_eq!(parse_json::<TaskPatch>(br#"{"owner":"bob"}"#).unwrap_err().field, "owner");
    }

    #[test]
    fn moving_the_due_of_a_recurring_task_reanchors_its_series() {
        let mut task = create(json!({
            "title": "Rent", "due": "2026-12-01T09:00:00Z", "recurrence": {"rule": "FREQ=MONTHLY"}
        }))
        .unwrap();
        task.series = Some(Series { index: 3, ..task.series.unwrap() });
        let patch: TaskPatch = parse_json(br#"{"due":"2026-12-05T09:00:00Z"}"#).unwrap();
        let patched = apply_patch(&task, patch, now()).unwrap().unwrap();
        let series = patched.series.unwrap();
        assert_eq!((series.index, series.anchor_index), (3, 3));
        assert_eq!(Some(series.anchor), patched.due);
        assert_eq!(series.id, task.id);
    }

    fn rent(exdates: serde_json::Value, mode: &str) -> Result<Task, ValidationError> {
        create(json!({
            "title": "Rent", "due": "2026-03-01T09:00:00+01:00", "time_zone": "Europe/Berlin",
            "recurrence": {"rule": "FREQ=MONTHLY", "mode": mode, "exdates": exdates}
        }))
    }

    #[test]
    fn skipped_occurrences_are_kept_in_order_once_whatever_their_offset() {
        // April 1 09:00 in Berlin is 07:00 UTC (CEST); given twice, in two spellings.
        let task =
            rent(json!(["2026-05-01T09:00:00+02:00", "2026-04-01T07:00:00Z", "2026-04-01T09:00:00+02:00"]), "strict")
                .unwrap();
        let exdates: Vec<String> = task.recurrence.unwrap().exdates.iter().map(|d| d.to_rfc3339()).collect();
        assert_eq!(exdates, ["2026-04-01T07:00:00+00:00", "2026-05-01T09:00:00+02:00"]);
    }

    #[test]
    fn a_skipped_date_must_be_an_occurrence() {
        // 09:00 in Berlin on April 1 is 09:00+02:00, not 09:00+01:00.
        let err = rent(json!(["2026-04-01T09:00:00+01:00"]), "strict").unwrap_err();
        assert_eq!(err.field, "recurrence.exdates");
        assert!(err.message.contains("2026-04-01T09:00:00+01:00 is not an occurrence of FREQ=MONTHLY"), "{err}");
        let err = rent(json!(["2026-04-02T09:00:00+02:00"]), "strict").unwrap_err();
        assert_eq!(err.field, "recurrence.exdates");
    }

    #[test]
    fn skipping_needs_a_strict_series_and_is_bounded() {
        let err = rent(json!(["2026-04-01T09:00:00+02:00"]), "after_completion").unwrap_err();
        assert_eq!(err.field, "recurrence.exdates");
        assert!(err.message.contains("strict"), "{err}");
        let many: Vec<String> = (0..=MAX_EXDATES as u32)
            .map(|n| {
                (DateTime::parse_from_rfc3339("2026-04-01T09:00:00Z").unwrap() + chrono::Duration::days(n.into()))
                    .to_rfc3339()
            })
            .collect();
        let err = create(json!({
            "title": "Walk", "due": "2026-03-01T09:00:00Z", "recurrence": {"rule": "FREQ=DAILY", "exdates": many}
        }))
        .unwrap_err();
        assert!(err.message.contains(&format!("at most {MAX_EXDATES}")), "{err}");
    }

    #[test]
    fn skipped_dates_before_a_new_anchor_are_no_longer_checked() {
        let mut task = rent(json!(["2026-04-01T09:00:00+02:00"]), "strict").unwrap();
        task.series = Some(Series { index: 2, ..task.series.unwrap() });
        // Moving this (May) occurrence to the 2nd re-anchors the series there; April is past.
        let patch: TaskPatch = parse_json(br#"{"due":"2026-05-02T09:00:00+02:00"}"#).unwrap();
        let patched = apply_patch(&task, patch, now()).unwrap().unwrap();
        assert_eq!(patched.series.unwrap().anchor_index, 2);
        // A future skip that the new anchor no longer produces is refused, naming it.
        let patch: TaskPatch =
            parse_json(br#"{"recurrence":{"rule":"FREQ=MONTHLY","exdates":["2026-06-01T09:00:00+02:00"]}}"#).unwrap();
        let err = apply_patch(&patched, patch, now()).unwrap_err();
        assert!(err.message.contains("2026-06-01T09:00:00+02:00"), "{err}");
    }

    fn patched(task: &Task, patch: serde_json::Value) -> Result<Option<Task>, ValidationError> {
        apply_patch(task, parse_json(&serde_json::to_vec(&patch).unwrap()).unwrap(), now())
    }

    fn weekly_with_skips() -> Task {
        // Mondays at 09:00 in Berlin from 2026-11-23; the 30th is skipped.
        create(json!({
            "title": "Team sync", "due": "2026-11-23T09:00:00+01:00", "time_zone": "Europe/Berlin",
            "recurrence": {"rule": "FREQ=WEEKLY", "mode": "strict", "exdates": ["2026-11-30T09:00:00+01:00"]}
        }))
        .unwrap()
    }

    #[test]
    fn a_recurrence_patch_merges_member_by_member() {
        let task = weekly_with_skips();
        let before = task.recurrence.clone().unwrap();

        // Only the rule: mode and exdates stay.
        let next = patched(&task, json!({"recurrence": {"rule": "FREQ=WEEKLY;INTERVAL=1"}})).unwrap();
        assert_eq!(next, None, "the same rule in another spelling changes nothing");
        let next = patched(&task, json!({"recurrence": {"rule": "FREQ=WEEKLY;COUNT=10"}})).unwrap().unwrap();
        let merged = next.recurrence.unwrap();
        assert_eq!(merged.rule.count(), Some(10));
        assert_eq!((merged.mode, &merged.exdates), (Mode::Strict, &before.exdates));

        // One more skipped date means sending the whole list: an array is replaced whole.
        let next = patched(&task, json!({"recurrence": {"exdates": ["2026-12-07T09:00:00+01:00"]}})).unwrap().unwrap();
        let exdates: Vec<String> = next.recurrence.unwrap().exdates.iter().map(|d| d.to_rfc3339()).collect();
        assert_eq!(exdates, ["2026-12-07T09:00:00+01:00"]);
        let next = patched(
            &task,
            json!({"recurrence": {"exdates": ["2026-11-30T09:00:00+01:00", "2026-12-07T09:00:00+01:00"]}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(next.recurrence.unwrap().exdates.len(), 2);

        // `exdates: null` skips nothing; then only the mode changes.
        let plain = patched(&task, json!({"recurrence": {"exdates": null}})).unwrap().unwrap();
        assert!(plain.recurrence.as_ref().unwrap().exdates.is_empty());
        let next = patched(&plain, json!({"recurrence": {"mode": "after_completion"}})).unwrap().unwrap();
        let merged = next.recurrence.unwrap();
        assert_eq!((merged.mode, merged.rule), (Mode::AfterCompletion, before.rule.clone()));
        // `mode: null` is the default, strict.
        let mut after = plain.clone();
        after.recurrence.as_mut().unwrap().mode = Mode::AfterCompletion;
        let next = patched(&after, json!({"recurrence": {"mode": null}})).unwrap().unwrap();
        assert_eq!(next.recurrence.unwrap().mode, Mode::Strict);

        // `null` ends the series.
        assert_eq!(patched(&task, json!({"recurrence": null})).unwrap().unwrap().recurrence, None);
    }

    #[test]
    fn a_recurrence_patch_that_leaves_an_invalid_recurrence_names_the_field() {
        let task = weekly_with_skips();
        // after_completion cannot skip dates: the kept exdates make the merged result invalid.
        let err = patched(&task, json!({"recurrence": {"mode": "after_completion"}})).unwrap_err();
        assert_eq!(err.field, "recurrence.exdates");
        let err = patched(&task, json!({"recurrence": {"rule": null}})).unwrap_err();
        assert_eq!(err.field, "recurrence.rule");
        assert!(err.message.contains("\"recurrence\": null"), "{err}");

        // A task without recurrence has nothing to merge a mode into.
        let single = create(json!({"title": "x", "due": "2026-12-01T09:00:00Z"})).unwrap();
        for patch in [json!({"recurrence": {"mode": "after_completion"}}), json!({"recurrence": {}})] {
            let err = patched(&single, patch.clone()).unwrap_err();
            assert_eq!(err.field, "recurrence.rule", "{patch}");
            assert!(err.message.contains("does not recur"), "{err}");
        }
        let next = patched(&single, json!({"recurrence": {"rule": "FREQ=DAILY"}})).unwrap().unwrap();
        assert_eq!(next.recurrence.unwrap().mode, Mode::Strict);
    }

    #[test]
    fn a_reminder_patch_merges_and_must_leave_one_kind() {
        let task = create(json!({
            "title": "x", "due": "2026-12-01T09:00:00Z", "reminder": {"before_due_seconds": 600}
        }))
        .unwrap();
        // The same member: changed.
        let next = patched(&task, json!({"reminder": {"before_due_seconds": 900}})).unwrap().unwrap();
        assert_eq!(next.reminder, Some(Reminder::BeforeDueSeconds(900)));
        // The other member merged in gives both: refused, telling how to switch.
        let err = patched(&task, json!({"reminder": {"at": "2026-12-01T08:00:00Z"}})).unwrap_err();
        assert_eq!(err.field, "reminder");
        assert!(err.message.contains("both at and before_due_seconds") && err.message.contains("null"), "{err}");
        // Switching explicitly works.
        let next = patched(&task, json!({"reminder": {"at": "2026-12-01T08:00:00Z", "before_due_seconds": null}}))
            .unwrap()
            .unwrap();
        assert!(matches!(next.reminder, Some(Reminder::At(at)) if at.to_rfc3339() == "2026-12-01T08:00:00+00:00"));
        // Removing its only member leaves no reminder object: refused; `null` removes it.
        let err = patched(&task, json!({"reminder": {"before_due_seconds": null}})).unwrap_err();
        assert_eq!(err.field, "reminder");
        assert!(err.message.contains("\"reminder\": null"), "{err}");
        assert_eq!(patched(&task, json!({"reminder": null})).unwrap().unwrap().reminder, None);
        // An empty object merges nothing.
        assert_eq!(patched(&task, json!({"reminder": {}})).unwrap(), None);
    }

    #[test]
    fn a_reminder_set_in_the_past_is_refused_saying_so() {
        let task = create(json!({"title": "x", "due": "2026-12-01T09:00:00Z"})).unwrap();
        let err = patched(&task, json!({"reminder": {"at": "2026-01-01T08:00:00Z"}})).unwrap_err();
        assert_eq!(err.field, "reminder");
        assert!(err.message.starts_with("fires at 2026-01-01T08:00:00Z, which is in the past"), "{err}");
        // A lead that reaches before now, too (due in 10 days, lead of 11).
        let err = patched(&task, json!({"reminder": {"before_due_seconds": 11 * 86400}})).unwrap_err();
        assert!(err.message.contains("before the due time"), "{err}");
        // Moving the due time so that an existing relative reminder falls in the past.
        let with = patched(&task, json!({"reminder": {"before_due_seconds": 3600}})).unwrap().unwrap();
        let err = patched(&with, json!({"due": "2026-11-22T10:30:00Z"})).unwrap_err();
        assert_eq!(err.field, "reminder");
        // Now exactly is not the past.
        assert!(patched(&task, json!({"reminder": {"at": "2026-11-22T10:00:00Z"}})).is_ok());

        // A reminder already past that the patch leaves alone does not block other edits.
        let mut old = with.clone();
        old.reminder = Some(Reminder::At(DateTime::parse_from_rfc3339("2026-01-01T08:00:00Z").unwrap()));
        assert_eq!(patched(&old, json!({"title": "y"})).unwrap().unwrap().title, "y");

        // A due time in the past is allowed (overdue tasks are normal), and so is an absolute
        // reminder after the due time.
        let overdue = patched(&task, json!({"due": "2026-01-01T09:00:00Z"})).unwrap().unwrap();
        assert!(check_reminder_not_past(&overdue, None, now()).is_ok());
        let after_due = create(json!({
            "title": "x", "due": "2026-12-01T09:00:00Z", "reminder": {"at": "2026-12-02T09:00:00Z"}
        }))
        .unwrap();
        assert!(check_reminder_not_past(&after_due, None, now()).is_ok());

        // A new task: the same check, with nothing before it.
        let past = create(json!({"title": "x", "reminder": {"at": "2026-11-22T09:59:59Z"}})).unwrap();
        assert_eq!(check_reminder_not_past(&past, None, now()).unwrap_err().field, "reminder");
        // A completed task's reminder never fires: nothing to refuse.
        let mut done = past.clone();
        done.complete(now());
        assert!(check_reminder_not_past(&done, None, now()).is_ok());
    }
}

#[cfg(test)]
mod messages {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Parser vocabulary that must never reach a client.
    const JARGON: &[&str] = &[
        "premature end",
        "expected value",
        "at line",
        "column",
        "invalid type",
        "invalid value",
        "unknown variant",
        "input contains",
        "EOF",
        "trailing characters",
    ];

    fn assert_human(err: &ValidationError) {
        for fragment in JARGON {
            assert!(!err.message.contains(fragment), "{fragment:?} in {err:?}");
        }
    }

    #[test]
    fn values_of_the_wrong_kind_name_the_field_and_show_an_example() {
        let cases = [
            (r#"{"title": "x", "due": "tomorrow"}"#, "due", "like 2026-12-31T09:00:00+01:00"),
            (r#"{"title": "x", "due": "2026-12-01T09:00:00"}"#, "due", "RFC 3339 with an offset"),
            (r#"{"title": "x", "time_zone": "Mars/Olympus"}"#, "time_zone", "IANA time zone, like Europe/Berlin"),
            (r#"{"title": "x", "priority": "whenever"}"#, "priority", "low, medium, high or urgent"),
            (r#"{"title": "x", "priority": 3}"#, "priority", "low, medium, high or urgent"),
            (r#"{"title": "x", "recurrence": {"rule": "FREQ=DAILY", "mode": 1}}"#, "recurrence.mode", "strict"),
            (r#"{"title": "x", "colour": "red"}"#, "colour", "the fields here are title, description"),
            (r#"{"title": "x", "reminder": {"in": 60}}"#, "reminder", r#"{"before_due_seconds": 900}"#),
            (r#"{"title": "x", "reminder": {"before_due_seconds": -1}}"#, "reminder.before_due_seconds", "900"),
            (r#"{"title": "x", "recurrence": {"mode": "strict"}}"#, "recurrence.rule", "is required"),
            (r#"{"title": "x", "recurrence": {"rule": "FREQ=DAILY", "x": 1}}"#, "recurrence.x", "rule, mode, exdates"),
            (r#"{"title": "x", "recurrence": {"rule": "FREQ=SOMETIMES"}}"#, "recurrence.rule", "FREQ: unknown"),
            (r#"{"title": "x", "tags": [1]}"#, "tags[0]", r#"like "errands""#),
            (r#"{"title": 1}"#, "title", r#"like "Buy milk""#),
            (r#"{"title": "x", "title": "y"}"#, "title", "given twice"),
        ];
        for (body, field, says) in cases {
            let err = parse_json::<NewTask>(body.as_bytes()).unwrap_err();
            assert_eq!(err.field, field, "{body}");
            assert!(err.message.contains(says), "{body}: {err:?} does not say {says:?}");
            assert_human(&err);
        }
        for field in ["title", "priority", "time_zone"] {
            let err = parse_json::<TaskPatch>(format!(r#"{{"{field}": null}}"#).as_bytes()).unwrap_err();
            assert_eq!(err.field, field);
            assert!(err.message.starts_with("cannot be null"), "{err:?}");
            assert_human(&err);
        }
        let value = serde_json::json!({"a": {"b": [1, {"c": null}]}});
        assert_eq!(value_at(&value, "a.b[1].c"), Some(&serde_json::Value::Null));
        assert_eq!(value_at(&value, "a.b[0]"), Some(&serde_json::json!(1)));
        assert_eq!(value_at(&value, "a.x"), None);
    }

    #[test]
    fn a_body_that_is_not_json_says_so_and_where() {
        let err = parse_json::<NewTask>(br#"{"title": "x", "due": "#).unwrap_err();
        assert!(err.message.starts_with("the body is not valid JSON: it ends before"), "{err:?}");
        assert_eq!(err.field, "due", "the value that is cut off");
        let err = parse_json::<NewTask>(br#"{"title" "Buy milk"}"#).unwrap_err();
        assert!(err.message.starts_with("the body is not valid JSON, near `"), "{err:?}");
        assert!(err.message.contains(r#"{"title" "Buy"#), "{err:?}");
        let err = parse_json::<NewTask>(br#"{"title": "x"} {"#).unwrap_err();
        assert!(err.message.contains("something follows the object"), "{err:?}");
        for body in [&b"{\"title\": \"x\",\n\n  oops}"[..], b"{\x01}", b"{\"title\": tru}"] {
            let err = parse_json::<NewTask>(body).unwrap_err();
            assert!(err.message.starts_with("the body is not valid JSON"), "{err:?}");
            assert!(!err.message.chars().any(char::is_control), "{err:?}");
            assert_human(&err);
        }
    }

    #[test]
    fn parse_value_names_fields_below_its_own() {
        let value = serde_json::json!({"rule": "FREQ=DAILY", "mode": "sometimes"});
        let err = parse_value::<Recurrence>("recurrence", value).unwrap_err();
        assert_eq!(err.field, "recurrence.mode");
        assert_eq!(err.message, "must be strict or after_completion");
        let err = parse_value::<Reminder>("reminder", serde_json::json!({"at": "soon"})).unwrap_err();
        assert_eq!(err.field, "reminder.at");
        assert_human(&err);
        let err =
            parse_value::<Vec<DateTime<FixedOffset>>>("recurrence.exdates", serde_json::json!(["x"])).unwrap_err();
        assert_eq!(err.field, "recurrence.exdates[0]");
    }
}
