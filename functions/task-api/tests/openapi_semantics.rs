//! The OpenAPI document tells what the server does with merge patches, reminders, cursors and
//! reused Idempotency-Keys: the 422s are documented, and a patch of `reminder` or `recurrence`
//! may be partial (it merges), so a client generated from the document can send one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use task_api::routes::{openapi, paths};

#[test]
fn the_422_answers_and_partial_nested_patches_are_documented() {
    let doc = openapi::document();
    for (path, method) in [(paths::TASKS, "post"), (paths::TASK, "patch")] {
        assert_eq!(
            doc["paths"][path][method]["responses"]["422"],
            json!({"$ref": "#/components/responses/Unprocessable"}),
            "{method} {path}"
        );
    }
    assert!(doc["components"]["responses"]["Unprocessable"]["description"].is_string());
    let patch = &doc["components"]["schemas"]["TaskPatch"]["properties"];
    assert_eq!(patch["reminder"]["oneOf"][0], json!({"$ref": "#/components/schemas/ReminderPatch"}));
    assert_eq!(patch["recurrence"]["oneOf"][0], json!({"$ref": "#/components/schemas/RecurrencePatch"}));
    for name in ["ReminderPatch", "RecurrencePatch"] {
        let schema = &doc["components"]["schemas"][name];
        assert_eq!(schema["required"], serde_json::Value::Null, "{name}: every member is optional in a merge");
    }
    let cursor = doc["components"]["parameters"]["cursor"]["description"].as_str().unwrap();
    assert!(cursor.contains("same filters and `sort`"), "{cursor}");
}
