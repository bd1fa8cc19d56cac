//! `cost FILE.json…`: the cost table for the shipped settings. Each file holds one document, an
//! array of documents, or a `List` (`items`): the ScaledObjects and Deployments an overlay
//! renders, for example
//! `kubectl kustomize manifests/overlays/minikube | yq -o json -I0 > rendered.json` (mikefarah's
//! yq), or any YAML-to-JSON conversion that keeps one JSON value per document
//! (one document per line is read too). Prices are the library's defaults (assumptions to check:
//! see `cost::price`).

use std::process::ExitCode;

use cost::price::Prices;
use cost::report::{markdown, rows};
use cost::settings::functions_from_documents;
use cost::traffic::Profile;
use serde_json::Value;

fn documents(text: &str) -> Result<Vec<Value>, serde_json::Error> {
    let mut out = vec![];
    for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        match value? {
            Value::Array(items) => out.extend(items),
            v if v.get("kind").and_then(Value::as_str) == Some("List") => {
                out.extend(v.get("items").and_then(Value::as_array).cloned().unwrap_or_default())
            }
            v => out.push(v),
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let mut docs = vec![];
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: cost RENDERED.json… (see the doc comment of cost/src/main.rs)");
        return ExitCode::from(2);
    }
    for path in paths {
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| documents(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(d) => docs.extend(d),
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    match functions_from_documents(&docs) {
        Ok(functions) if functions.is_empty() => {
            eprintln!("no ScaledObject in the documents given");
            ExitCode::FAILURE
        }
        Ok(functions) => {
            print!("{}", markdown(&rows(&functions, &Profile::ALL, &Prices::default())));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
