//! Strict reading of YAML/JSON objects: every field is either consumed or reported.
//!
//! devhost is a stand-in for Dapr, so a resource field it does not emulate must never be
//! silently ignored (the user would believe it applies). Readers take the fields they know
//! with [`Fields::take`] and friends, then [`Fields::finish`] names whatever is left.

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Map, Value};

/// The fields of one object, with where it came from for error messages.
#[derive(Debug)]
pub(crate) struct Fields {
    map: Map<String, Value>,
    /// `file: path.to.object`, prefixed to every error.
    at: String,
}

impl Fields {
    /// `value` must be an object; `null` (an empty YAML mapping) reads as an empty one.
    pub(crate) fn new(value: Value, at: impl Into<String>) -> anyhow::Result<Self> {
        let at = at.into();
        match value {
            Value::Object(map) => Ok(Self { map, at }),
            Value::Null => Ok(Self { map: Map::new(), at }),
            other => bail!("{at}: expected a mapping, found {}", kind(&other)),
        }
    }

    /// Renames the object in later messages (once its name is known).
    pub(crate) fn set_at(&mut self, at: impl Into<String>) {
        self.at = at.into();
    }

    pub(crate) fn at(&self) -> &str {
        &self.at
    }

    pub(crate) fn child_at(&self, key: &str) -> String {
        format!("{}.{key}", self.at)
    }

    pub(crate) fn keys(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }

    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    /// A scalar as a string: YAML writes `maxRetries: 3` and `value: "3"` alike.
    pub(crate) fn string(&mut self, key: &str) -> anyhow::Result<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some(value) => scalar_string(&value)
                .map(Some)
                .ok_or_else(|| anyhow!("{}: field `{key}` must be a string, found {}", self.at, kind(&value))),
        }
    }

    pub(crate) fn required_string(&mut self, key: &str) -> anyhow::Result<String> {
        self.string(key)?.filter(|s| !s.is_empty()).ok_or_else(|| anyhow!("{}: field `{key}` is required", self.at))
    }

    pub(crate) fn object(&mut self, key: &str) -> anyhow::Result<Option<Fields>> {
        let at = self.child_at(key);
        self.take(key).map(|v| Fields::new(v, at)).transpose()
    }

    pub(crate) fn list(&mut self, key: &str) -> anyhow::Result<Vec<Value>> {
        match self.take(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => bail!("{}: field `{key}` must be a list, found {}", self.at, kind(&other)),
        }
    }

    pub(crate) fn string_list(&mut self, key: &str) -> anyhow::Result<Vec<String>> {
        let at = self.child_at(key);
        self.list(key)?
            .iter()
            .map(|v| scalar_string(v).ok_or_else(|| anyhow!("{at}: items must be strings, found {}", kind(v))))
            .collect()
    }

    /// Drops fields that are accepted but deliberately unused (documented by the caller).
    pub(crate) fn ignore(&mut self, keys: &[&str]) {
        for key in keys {
            self.map.remove(*key);
        }
    }

    /// Fails on the first field nobody took, naming it.
    pub(crate) fn finish(self) -> anyhow::Result<()> {
        if let Some(key) = self.map.keys().next() {
            bail!(
                "{}: field `{key}` is not emulated by devhost (it would be silently ignored, so it is an error)",
                self.at
            );
        }
        Ok(())
    }
}

pub(crate) fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Parses every YAML document of `text` into JSON values (empty documents skipped).
pub(crate) fn yaml_documents(text: &str, file: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value: Value = serde::Deserialize::deserialize(document)
            .with_context(|| format!("{file}: YAML document {} is not valid", index + 1))?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// Go's `strconv.ParseBool`, which Dapr uses for boolean metadata (`kitstrings.IsTruthy` is
/// looser; where Dapr rejects a value we want to reject it too).
pub(crate) fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// dapr/kit `strings.IsTruthy`: `y`, `yes`, `true`, `t`, `on`, `1` (any case) are true.
pub(crate) fn is_truthy(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().as_str(), "y" | "yes" | "true" | "t" | "on" | "1")
}
