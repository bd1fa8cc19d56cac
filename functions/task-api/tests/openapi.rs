//! `GET /openapi.json`: public, and describing every route the router really serves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use axum::http::Method;
use common::Harness;
use task_api::routes::paths;

#[tokio::test]
async fn the_document_is_public_and_openapi_3_1() {
    let h = Harness::start().await;
    let answer = h.get("/openapi.json").send().await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.body["openapi"], "3.1.0");
    assert_eq!(answer.body["components"]["securitySchemes"]["bearerAuth"]["bearerFormat"], "JWT");
}

/// The file the server answers with is what the generator makes from the types today: a change
/// to a body type, a bound or an operation that is not regenerated fails here.
/// `make openapi` (`UPDATE_OPENAPI=1`) rewrites the file.
#[test]
fn the_served_file_is_generated_from_the_types() {
    let generated = task_api::routes::openapi::document();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        return;
    }
    let served: serde_json::Value = serde_json::from_str(task_api::routes::openapi::SERVED).unwrap();
    assert!(served == generated, "{} is stale: run `make openapi` and commit it", path.display());
}

/// Every path of the router is in the document with exactly the methods the router serves
/// there. The router's own 405 `Allow` header is the list of methods it serves, so a route
/// added to the router but not to the document (or the other way round) fails here.
#[tokio::test]
async fn every_route_of_the_router_is_documented_with_its_methods() {
    let h = Harness::start().await;
    let doc = h.get("/openapi.json").send().await.body;
    let documented_paths: BTreeSet<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(documented_paths, paths::ALL.into_iter().collect::<BTreeSet<_>>());
    for path in paths::ALL {
        let concrete = path.replace("{id}", "00000000-0000-0000-0000-000000000001");
        let answer = h.call(Method::TRACE, &concrete).user("alice").send().await;
        assert_eq!(answer.status, 405, "{path} answers TRACE with 405 (no route serves TRACE)");
        let served: BTreeSet<String> = answer
            .header("allow")
            .unwrap()
            .split(',')
            .map(str::trim)
            .filter(|m| *m != "HEAD")
            .map(str::to_lowercase)
            .collect();
        let documented: BTreeSet<String> = doc["paths"][path]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| ["get", "post", "patch", "delete", "put"].contains(&k.as_str()))
            .cloned()
            .collect();
        assert_eq!(served, documented, "{path}");
        for method in &documented {
            let operation = &doc["paths"][path][method];
            assert!(operation["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}");
            assert!(operation["operationId"].is_string(), "{method} {path}");
        }
    }
}

/// Every operation that authenticates (documents 401) also documents the rate limit's 429.
#[test]
fn every_authenticated_operation_documents_the_rate_limit() {
    let doc = task_api::routes::openapi::document();
    let mut authenticated = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap().iter().filter(|(_, o)| o.get("responses").is_some()) {
            let responses = operation["responses"].as_object().unwrap();
            if responses.contains_key("401") {
                authenticated += 1;
                assert_eq!(responses["429"]["$ref"], "#/components/responses/TooManyRequests", "{method} {path}");
            }
        }
    }
    assert!(authenticated >= 8, "{authenticated} authenticated operations");
    assert!(doc["components"]["responses"]["TooManyRequests"]["headers"]["RateLimit"].is_object());
}
