//! The documents of a rendered overlay, from text: what `kubectl kustomize` prints (YAML, one
//! or more documents separated by `---`), or JSON (one value, an array of documents, a `List`,
//! or one value per line). Pure: the caller reads the file.

use serde::Deserialize as _;
use serde_json::Value;

/// Why a text could not be read as documents.
#[derive(Debug, thiserror::Error)]
pub enum DocumentsError {
    #[error("document {index}: not valid YAML: {source}")]
    Yaml { index: usize, source: serde_norway::Error },
}

fn flatten(value: Value, out: &mut Vec<Value>) {
    match value {
        Value::Null => {}
        Value::Array(items) => items.into_iter().for_each(|v| flatten(v, out)),
        v if v.get("kind").and_then(Value::as_str) == Some("List") => {
            if let Some(Value::Array(items)) = v.get("items").cloned() {
                items.into_iter().for_each(|i| flatten(i, out));
            }
        }
        v => out.push(v),
    }
}

/// Every document of `text`: JSON if it parses as a sequence of JSON values, else YAML.
pub fn parse(text: &str) -> Result<Vec<Value>, DocumentsError> {
    let mut out = vec![];
    let json: Result<Vec<Value>, _> = serde_json::Deserializer::from_str(text).into_iter::<Value>().collect();
    if let Ok(values) = json {
        values.into_iter().for_each(|v| flatten(v, &mut out));
        return Ok(out);
    }
    for (index, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).map_err(|source| DocumentsError::Yaml { index, source })?;
        flatten(value, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_as_kustomize_prints_it() -> Result<(), DocumentsError> {
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n---\nkind: ScaledObject\nspec:\n  \
                    pollingInterval: 15\n  triggers:\n  - metadata:\n      lagThreshold: \"50\"\n---\n";
        let docs = parse(text)?;
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["spec"]["pollingInterval"], 15);
        assert_eq!(docs[1]["spec"]["triggers"][0]["metadata"]["lagThreshold"], "50");
        Ok(())
    }

    #[test]
    fn json_arrays_lists_and_lines() -> Result<(), DocumentsError> {
        assert_eq!(parse(r#"[{"kind":"A"},{"kind":"B"}]"#)?.len(), 2);
        assert_eq!(parse(r#"{"kind":"List","items":[{"kind":"A"}]}"#)?.len(), 1);
        assert_eq!(parse("{\"kind\":\"A\"}\n{\"kind\":\"B\"}\n")?.len(), 2);
        assert!(matches!(parse("a: [unclosed"), Err(DocumentsError::Yaml { index: 0, .. })));
        Ok(())
    }
}
