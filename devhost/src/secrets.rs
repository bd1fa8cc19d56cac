//! Secret stores: `secretstores.local.env` v1 and `secretstores.local.file` v1, as
//! components-contrib v1.18.3 reads them (`secretstores/local/env/envstore.go`,
//! `secretstores/local/file/filestore.go`). The Secrets API over them is `sidecar/secrets.rs`;
//! [`crate::resources`] resolves a `secretKeyRef` of another component through them.
//!
//! - **env**: a secret is the environment variable `<prefix><name>` of the sidecar (under
//!   devhost: of devhost itself, which every sidecar shares, as every `daprd` of a `dapr run`
//!   inherits the CLI's environment; an app's `env` in the run file is the app's only, as the
//!   CLI gives it to the app's command alone, dapr/cli `pkg/standalone/run.go`). A variable that is not set, or that the store refuses
//!   (`APP_API_TOKEN` and `DAPR_*`, compared upper-cased: `isKeyAllowed`), is the secret
//!   `{name: ""}`, never an error (`envstore.go:59-72`). Bulk: every allowed variable that
//!   starts with the prefix (and is longer than it), named without it (`envstore.go:75-111`).
//! - **file**: a JSON file read once, at load (`filestore.go:60-104`). Without `multiValued`
//!   every leaf is a secret of its own, named by its path joined with `nestedSeparator`
//!   (default `:`; array items by index) with the value `{name: value}`; with it, a top-level
//!   string is such a secret and a top-level object one secret whose keys are its flattened
//!   leaves, and any other top-level value is dropped. Leaves are formatted by Go's
//!   `fmt.Sprintf("%s", v)` (`visitPrimitive`): a string as it is, anything else as Go's bad-verb
//!   text (`%!s(float64=42)`, `%!s(bool=true)`, `%!s(<nil>)`). A missing secret is an error
//!   (`secret <name> not found`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use serde_json::Value;

/// One secret: its keys and values (a single-valued secret has one key, its own name).
pub type Secret = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretStore {
    /// `secretstores.local.env`: `prefix` added to every name.
    Env { prefix: String },
    /// `secretstores.local.file`: every secret, read at load; `multi_valued` gives it the
    /// feature `MULTIPLE_KEY_VALUES_PER_SECRET`.
    File { secrets: BTreeMap<String, Secret>, multi_valued: bool },
}

impl SecretStore {
    /// `GetSecret`: `Err` carries the store's own error text (daprd wraps it in `ERR_SECRET_GET`).
    pub fn get(&self, name: &str) -> Result<Secret, String> {
        match self {
            Self::Env { prefix } => {
                let var = format!("{prefix}{name}");
                let value = if env_key_allowed(&var) { std::env::var(&var).unwrap_or_default() } else { String::new() };
                Ok(BTreeMap::from([(name.to_owned(), value)]))
            }
            Self::File { secrets, .. } => secrets.get(name).cloned().ok_or_else(|| format!("secret {name} not found")),
        }
    }

    /// `BulkGetSecret`: every secret.
    pub fn bulk(&self) -> BTreeMap<String, Secret> {
        match self {
            Self::Env { prefix } => std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .filter(|(k, _)| prefix.is_empty() || (k.len() > prefix.len() && k.starts_with(prefix.as_str())))
                .filter(|(k, _)| env_key_allowed(k))
                .map(|(k, v)| {
                    let name = k[prefix.len()..].to_owned();
                    (name.clone(), BTreeMap::from([(name, v)]))
                })
                .collect(),
            Self::File { secrets, .. } => secrets.clone(),
        }
    }
}

/// `isKeyAllowed` of the env store: not `APP_API_TOKEN`, nothing starting with `DAPR_`.
fn env_key_allowed(key: &str) -> bool {
    let key = key.to_ascii_uppercase();
    key != "APP_API_TOKEN" && !key.starts_with("DAPR_")
}

/// `secretstores.local.file`'s metadata.
#[derive(Debug, Clone, Default)]
pub struct FileOptions {
    pub secrets_file: String,
    pub nested_separator: Option<String>,
    pub multi_valued: bool,
}

/// Reads a `secretstores.local.file` store. A relative `secretsFile` is relative to devhost's
/// working directory (daprd's: its own). Two leaves with the same flattened name are an error
/// (daprd keeps loading the file with an arbitrary part of it missing: `visitPrimitive`'s
/// `duplicate key` stops the walk and is ignored).
pub fn load_file(options: &FileOptions) -> anyhow::Result<SecretStore> {
    if options.secrets_file.is_empty() {
        bail!("missing local secrets file in metadata (`secretsFile`)");
    }
    let path = Path::new(&options.secrets_file);
    let text = std::fs::read(path).with_context(|| format!("reading the secrets file {}", path.display()))?;
    let json: Value =
        serde_json::from_slice(&text).with_context(|| format!("the secrets file {} is not JSON", path.display()))?;
    let Value::Object(top) = json else {
        bail!("the secrets file {} must hold a JSON object", path.display());
    };
    let separator = options.nested_separator.as_deref().filter(|s| !s.is_empty()).unwrap_or(":");
    let mut secrets = BTreeMap::new();
    if options.multi_valued {
        for (key, value) in top {
            match value {
                Value::String(s) => {
                    secrets.insert(key.clone(), BTreeMap::from([(key, s)]));
                }
                Value::Object(inner) => {
                    let mut flat = BTreeMap::new();
                    flatten(&Value::Object(inner), "", separator, &mut flat)?;
                    secrets.insert(key, flat);
                }
                // `filestore.go:81-91`: other top-level values are not secrets.
                _ => {}
            }
        }
    } else {
        let mut flat = BTreeMap::new();
        flatten(&Value::Object(top), "", separator, &mut flat)?;
        secrets = flat.into_iter().map(|(k, v)| (k.clone(), BTreeMap::from([(k, v)]))).collect();
    }
    Ok(SecretStore::File { secrets, multi_valued: options.multi_valued })
}

fn flatten(value: &Value, path: &str, separator: &str, out: &mut BTreeMap<String, String>) -> anyhow::Result<()> {
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}{separator}{key}") };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(v, &join(k), separator, out)?;
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(v, &join(&i.to_string()), separator, out)?;
            }
        }
        leaf => {
            if out.insert(path.to_owned(), go_percent_s(leaf)).is_some() {
                return Err(anyhow!("the secret {path:?} is defined twice in the secrets file"));
            }
        }
    }
    Ok(())
}

/// Go's `fmt.Sprintf("%s", v)` of a decoded JSON leaf.
fn go_percent_s(leaf: &Value) -> String {
    match leaf {
        Value::String(s) => s.clone(),
        Value::Bool(b) => format!("%!s(bool={b})"),
        Value::Null => "%!s(<nil>)".to_owned(),
        Value::Number(n) => format!("%!s(float64={})", go_float_v(n.as_f64().unwrap_or_default())),
        other => other.to_string(),
    }
}

/// Go's `%v` of a float64: `strconv.FormatFloat(f, 'g', -1, 64)`, the shortest digits that
/// round-trip, in `%e` form when the exponent is < -4 or >= 6 (`strconv/ftoa.go`).
fn go_float_v(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".to_owned() } else { "-Inf".to_owned() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".to_owned() } else { "0".to_owned() };
    }
    // Rust's `{:e}` is the shortest round-trip digits: `d.ddde±x`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    // `%e` is used if the exponent is less than -4 or greater than or equal to the precision,
    // 6 when the precision is the shortest (`ftoa.go` `case 'g'`).
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{rest}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1;
    let text = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(usize::try_from(-point).unwrap_or(0)))
    } else {
        let point = usize::try_from(point).unwrap_or(0);
        if digits.len() <= point {
            format!("{digits}{}", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    };
    format!("{sign}{text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go_does() {
        for (f, go) in [
            (42.0, "42"),
            (1.5, "1.5"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.25, "-2.25"),
            (1e21, "1e+21"),
        ] {
            assert_eq!(go_float_v(f), go, "{f}");
        }
    }

    #[test]
    fn file_stores_flatten_as_components_contrib_does() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("secrets.json");
        std::fs::write(
            &file,
            r#"{"a": "x", "db": {"user": "u", "port": 5432, "tls": true, "ca": null}, "list": ["p", "q"]}"#,
        )?;
        let single = load_file(&FileOptions { secrets_file: file.display().to_string(), ..FileOptions::default() })?;
        assert_eq!(single.get("db:port"), Ok(BTreeMap::from([("db:port".into(), "%!s(float64=5432)".into())])));
        assert_eq!(single.get("db:tls").map(|s| s["db:tls"].clone()), Ok("%!s(bool=true)".into()));
        assert_eq!(single.get("db:ca").map(|s| s["db:ca"].clone()), Ok("%!s(<nil>)".into()));
        assert_eq!(single.get("list:1").map(|s| s["list:1"].clone()), Ok("q".into()));
        assert_eq!(single.get("db"), Err("secret db not found".into()));
        assert_eq!(single.bulk().len(), 7);
        let multi = load_file(&FileOptions {
            secrets_file: file.display().to_string(),
            nested_separator: Some(".".into()),
            multi_valued: true,
        })?;
        let db = multi.get("db").map_err(|e| anyhow!(e))?;
        assert_eq!(db.get("user").map(String::as_str), Some("u"));
        assert_eq!(db.len(), 4);
        assert!(multi.get("list").is_err(), "a top-level array is no secret of a multi-valued store");
        std::fs::write(&file, r#"{"a:b": "1", "a": {"b": "2"}}"#)?;
        let twice = load_file(&FileOptions { secrets_file: file.display().to_string(), ..FileOptions::default() });
        assert!(twice.is_err());
        Ok(())
    }

    #[test]
    fn env_stores_refuse_daprs_own_variables() {
        let store = SecretStore::Env { prefix: String::new() };
        assert_eq!(store.get("APP_API_TOKEN"), Ok(BTreeMap::from([("APP_API_TOKEN".into(), String::new())])));
        assert_eq!(
            store.get("DEVHOST_SURELY_UNSET_VAR"),
            Ok(BTreeMap::from([("DEVHOST_SURELY_UNSET_VAR".into(), String::new())]))
        );
        assert!(store.bulk().keys().all(|k| !k.to_ascii_uppercase().starts_with("DAPR_")));
    }
}
