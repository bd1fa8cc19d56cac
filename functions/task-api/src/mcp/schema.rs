//! The tools' JSON Schemas.
//!
//! **Inputs** are derived (schemars) from each tool's argument type, whose doc comments are the
//! descriptions an agent reads. **Outputs** are the REST API's own response schemas, taken from
//! the OpenAPI 3.1 document task-api serves (`routes::openapi::SERVED`, generated from the very
//! types the handlers answer with), so a tool's `structuredContent`, which *is* the REST answer,
//! is described by the same schema as the REST answer. OpenAPI 3.1 schemas are JSON Schema
//! 2020-12; only their `$ref`s move from `#/components/schemas/X` to `#/$defs/X`.

use std::sync::{Arc, LazyLock};

use rmcp::handler::server::common::{schema_for_empty_input, schema_for_input};
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde_json::{Map, Value, json};

use crate::routes::openapi::SERVED;

/// The input schema of `T` (an object schema; top-level title and description removed, the
/// tool's description says it). A type that is not an object is a bug a test catches
/// (`every_tool_has_schemas`); it would get an empty object schema rather than a panic.
pub fn input<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    schema_for_input::<T>().unwrap_or_else(|_| schema_for_empty_input())
}

/// Every schema of the OpenAPI document, with refs pointing into `$defs`.
static DEFS: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    let mut document: Value = serde_json::from_str(SERVED).unwrap_or_default();
    let mut schemas = document.pointer_mut("/components/schemas").map(Value::take).unwrap_or_default();
    rewrite_refs(&mut schemas);
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
});

fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, member) in map.iter_mut() {
                match member {
                    Value::String(target) if key == "$ref" => {
                        if let Some(name) = target.strip_prefix("#/components/schemas/") {
                            *target = format!("#/$defs/{name}");
                        }
                    }
                    other => rewrite_refs(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

/// A schema whose root is `root` (an object schema using `#/$defs/...`), with the REST schemas
/// it refers to, directly or not, in `$defs` (only those: a tool list is read by a model, and
/// every byte of it costs context).
pub fn output(root: Value) -> Arc<JsonObject> {
    let mut needed = Vec::new();
    refs(&root, &mut needed);
    let mut defs = Map::new();
    while let Some(name) = needed.pop() {
        if defs.contains_key(&name) {
            continue;
        }
        if let Some(schema) = DEFS.get(&name) {
            refs(schema, &mut needed);
            defs.insert(name, schema.clone());
        }
    }
    let mut object = match root {
        Value::Object(object) => object,
        _ => Map::new(),
    };
    if !defs.is_empty() {
        object.insert("$defs".to_owned(), Value::Object(defs));
    }
    Arc::new(object)
}

/// The names `value` refers to with `#/$defs/<name>`.
fn refs(value: &Value, names: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, member) in map {
                match member {
                    Value::String(target) if key == "$ref" => {
                        if let Some(name) = target.strip_prefix("#/$defs/") {
                            names.push(name.to_owned());
                        }
                    }
                    other => refs(other, names),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, names)),
        _ => {}
    }
}

/// The output schema of a REST response schema, by its OpenAPI name (`Task`, `TaskPage`, ...):
/// that schema itself as the root.
pub fn rest(name: &str) -> Arc<JsonObject> {
    output(DEFS.get(name).cloned().unwrap_or_else(|| json!({"type": "object"})))
}

/// The names of the REST schema `name`'s properties (for tests that keep the tools' arguments in
/// step with the REST API).
pub fn rest_properties(name: &str) -> Vec<String> {
    DEFS.get(name)
        .and_then(|schema| schema.get("properties"))
        .and_then(Value::as_object)
        .map(|properties| properties.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn rest_schemas_come_from_the_served_document_with_local_refs() {
        let task = rest("Task");
        assert_eq!(task["type"], "object");
        assert!(task["properties"]["id"].is_object());
        assert_eq!(task["properties"]["priority"]["$ref"], "#/$defs/Priority");
        assert!(task["$defs"]["Priority"].is_object());
        assert!(task["$defs"]["Rule"].is_null() && task["$defs"].get("AuditEntry").is_none(), "only what it uses");
        let page = rest("TaskPage");
        assert!(page["$defs"]["Task"].is_object() && page["$defs"]["Recurrence"].is_object(), "transitively");
        let text = serde_json::to_string(&*rest("TaskPage")).unwrap();
        assert!(!text.contains("#/components/"), "{text}");
        assert!(rest_properties("NewTask").contains(&"title".to_owned()));
    }
}
