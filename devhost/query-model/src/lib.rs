//! How `state.postgresql` v1 answers a Query API request (`POST /v1.0-alpha1/state/{store}/query`),
//! as a model over JSON values: parsing (components-contrib `state/query/filter.go`), the
//! filters it compiles to SQL (`common/component/postgresql/v1/postgresql_query.go`: text
//! comparison of `value->'a'->>'b'` with parameters bound as Go's `%v`), and its `ORDER BY`.
//!
//! One model, two users: devhost answers apps from it, and the recording stub of
//! `shared::testing` answers the functions' integration tests from it, so a test cannot pass
//! on semantics that daprd does not have. The conformance suite holds it to real daprd.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

/// A parsed `POST /v1.0-alpha1/state/{store}/query` body.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub filter: Option<Filter>,
    /// (dotted path, descending)
    pub sort: Vec<(String, bool)>,
    pub limit: usize,
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare { op: CompareOp, path: String, value: Value },
    In { path: String, values: Vec<Value> },
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// Parses the query body. `Err` is a malformed request (400).
pub fn parse_query(body: &Value) -> Result<Query, String> {
    let Value::Object(map) = body else { return Err("the query must be a JSON object".to_owned()) };
    for key in map.keys() {
        if !matches!(key.as_str(), "filter" | "sort" | "page") {
            return Err(format!("unknown query field {key:?} (filter, sort, page)"));
        }
    }
    let filter = match map.get("filter") {
        None | Some(Value::Null) => None,
        Some(Value::Object(f)) if f.is_empty() => None,
        Some(f) => Some(parse_filter(f)?),
    };
    let mut sort = Vec::new();
    if let Some(items) = map.get("sort").filter(|v| !v.is_null()) {
        let Value::Array(items) = items else { return Err("`sort` must be a list".to_owned()) };
        for item in items {
            let key = item.get("key").and_then(Value::as_str).ok_or("every sort entry needs a `key`")?;
            let desc = match item.get("order").and_then(Value::as_str) {
                None | Some("ASC") | Some("") => false,
                Some("DESC") => true,
                Some(other) => return Err(format!("sort order {other:?} must be ASC or DESC")),
            };
            sort.push((key.to_owned(), desc));
        }
    }
    let (mut limit, mut offset) = (0, 0);
    if let Some(page) = map.get("page").filter(|v| !v.is_null()) {
        if let Some(l) = page.get("limit") {
            limit = l.as_u64().ok_or("page.limit must be a non-negative integer")? as usize;
        }
        if let Some(t) = page.get("token").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            offset = t.parse().map_err(|_| format!("page.token {t:?} is not a token this store issued"))?;
        }
    }
    Ok(Query { filter, sort, limit, offset })
}

pub fn parse_filter(value: &Value) -> Result<Filter, String> {
    let Value::Object(map) = value else { return Err("a filter must be an object".to_owned()) };
    if map.len() != 1 {
        return Err("a filter must have exactly one operator (EQ, NEQ, GT, GTE, LT, LTE, IN, AND, OR)".to_owned());
    }
    let Some((op, arg)) = map.iter().next() else { return Err("empty filter".to_owned()) };
    let single = |arg: &Value| -> Result<(String, Value), String> {
        match arg {
            Value::Object(m) if m.len() == 1 => {
                m.iter().next().map(|(k, v)| (k.clone(), v.clone())).ok_or_else(|| format!("{op} needs one field"))
            }
            _ => Err(format!("{op} takes an object with exactly one field")),
        }
    };
    let compare = |cmp: CompareOp| -> Result<Filter, String> {
        let (path, value) = single(arg)?;
        Ok(Filter::Compare { op: cmp, path, value })
    };
    match op.as_str() {
        "EQ" => compare(CompareOp::Eq),
        "NEQ" => compare(CompareOp::Neq),
        "GT" => compare(CompareOp::Gt),
        "GTE" => compare(CompareOp::Gte),
        "LT" => compare(CompareOp::Lt),
        "LTE" => compare(CompareOp::Lte),
        "IN" => {
            let (path, values) = single(arg)?;
            let Value::Array(values) = values else { return Err("IN takes a list of values".to_owned()) };
            if values.is_empty() {
                return Err(format!("empty IN operator for key {path:?}"));
            }
            Ok(Filter::In { path, values })
        }
        "AND" | "OR" => {
            let Value::Array(items) = arg else { return Err(format!("{op} takes a list of filters")) };
            // components-contrib `state/query/filter.go`, `parseFilters`.
            if items.len() < 2 {
                return Err(format!("{op} filter must contain at least two entries"));
            }
            let filters = items.iter().map(parse_filter).collect::<Result<Vec<_>, _>>()?;
            Ok(if op == "AND" { Filter::And(filters) } else { Filter::Or(filters) })
        }
        other => Err(format!("unsupported filter operator {other:?}")),
    }
}

/// Checks what Postgres v1 refuses when building the SQL (ordering operators on strings).
/// `Err` is a query failure (500).
pub fn check_query(query: &Query) -> Result<(), String> {
    fn walk(f: &Filter) -> Result<(), String> {
        match f {
            Filter::Compare { op, value: Value::String(s), .. } if !matches!(op, CompareOp::Eq | CompareOp::Neq) => {
                Err(format!("unsupported type of value {s}; string type not permitted"))
            }
            Filter::And(items) | Filter::Or(items) => items.iter().try_for_each(walk),
            _ => Ok(()),
        }
    }
    query.filter.as_ref().map_or(Ok(()), walk)
}

/// Postgres `value->'a'->>'b'`: the text of the value at a dotted path, `None` for SQL NULL.
/// Borrowed for strings, which is what filters and sorts look at nearly always.
pub fn text_at<'v>(value: &'v Value, path: &str) -> Option<Cow<'v, str>> {
    let mut v = value;
    for part in path.split('.') {
        v = v.as_object()?.get(part)?;
    }
    match v {
        Value::Null => None,
        Value::String(s) => Some(Cow::Borrowed(s)),
        other => Some(Cow::Owned(other.to_string())),
    }
}

/// Go's `fmt.Sprintf("%v", x)` of a JSON-decoded value: how v1 binds filter parameters.
///
/// daprd decodes the query with `encoding/json`, so every number is a `float64`, and `%v` of a
/// float64 is strconv's shortest `'g'` form: exponent notation when the decimal exponent is
/// below -4 or at least 6. So `1234567` is bound as `1.234567e+06`, and a text comparison
/// with it is not a numeric one (held to daprd by the conformance suite).
pub fn go_format(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) => go_float(f),
            None => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// `strconv.FormatFloat(f, 'g', -1, 64)`.
fn go_float(f: f64) -> String {
    if f == 0.0 {
        return "0".to_owned();
    }
    let sci = format!("{f:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else { return sci };
    let Ok(exp) = exp.parse::<i32>() else { return sci };
    if (-4..6).contains(&exp) {
        format!("{f}")
    } else {
        format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.unsigned_abs())
    }
}

/// SQL three-valued logic collapsed to "row selected or not".
pub fn matches(filter: &Filter, value: &Value) -> bool {
    match filter {
        Filter::Compare { op, path, value: wanted } => {
            let Some(actual) = text_at(value, path) else { return false };
            let wanted = go_format(wanted);
            let ord = actual.as_ref().cmp(wanted.as_str());
            match op {
                CompareOp::Eq => ord == Ordering::Equal,
                CompareOp::Neq => ord != Ordering::Equal,
                CompareOp::Gt => ord == Ordering::Greater,
                CompareOp::Gte => ord != Ordering::Less,
                CompareOp::Lt => ord == Ordering::Less,
                CompareOp::Lte => ord != Ordering::Greater,
            }
        }
        Filter::In { path, values } => {
            let Some(actual) = text_at(value, path) else { return false };
            values.iter().any(|v| go_format(v) == actual.as_ref())
        }
        Filter::And(items) => items.iter().all(|f| matches(f, value)),
        Filter::Or(items) => items.iter().any(|f| matches(f, value)),
    }
}

/// Postgres puts NULLs last in ASC order and first in DESC order.
pub fn compare(a: &[Option<Cow<'_, str>>], b: &[Option<Cow<'_, str>>], sort: &[(String, bool)]) -> Ordering {
    for ((x, y), (_, desc)) in a.iter().zip(b).zip(sort) {
        let ord = match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => x.cmp(y),
        };
        let ord = if *desc { ord.reverse() } else { ord };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// The rows of `rows` (key, value) that `query` selects, in its order (ties by key, as devhost
/// keeps pages stable), before paging.
pub fn select<'a, K: Ord + ?Sized>(
    rows: impl IntoIterator<Item = (&'a K, &'a Value)>,
    query: &Query,
) -> Vec<(&'a K, &'a Value)> {
    let mut hits: Vec<_> = rows
        .into_iter()
        .filter(|(_, value)| query.filter.as_ref().is_none_or(|f| matches(f, value)))
        .map(|(key, value)| (query.sort.iter().map(|(path, _)| text_at(value, path)).collect::<Vec<_>>(), key, value))
        .collect();
    hits.sort_by(|(a, ka, _), (b, kb, _)| compare(a, b, &query.sort).then_with(|| ka.cmp(kb)));
    hits.into_iter().map(|(_, key, value)| (key, value)).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn filters_compare_text_like_postgres_v1() {
        let v = json!({"n": 10, "s": "open", "b": true, "o": {"x": "y"}});
        let q = |f: Value| matches(&parse_filter(&f).unwrap(), &v);
        assert!(q(json!({"EQ": {"n": 10}})));
        assert!(q(json!({"EQ": {"n": "10"}})));
        assert!(q(json!({"EQ": {"b": true}})));
        assert!(q(json!({"EQ": {"o.x": "y"}})));
        assert!(!q(json!({"EQ": {"missing": "y"}})));
        assert!(!q(json!({"NEQ": {"missing": "y"}})));
        assert!(q(json!({"IN": {"s": ["closed", "open"]}})));
        assert!(q(json!({"AND": [{"EQ": {"s": "open"}}, {"OR": [{"EQ": {"n": 1}}, {"EQ": {"n": 10}}]}]})));
        // Text comparison: "10" < "9".
        assert!(q(json!({"LT": {"n": 9}})));
    }

    #[test]
    fn numbers_are_bound_as_go_prints_them() {
        // Outputs of `fmt.Sprintf("%v", x)` for float64s decoded by encoding/json (go1.26).
        for (number, go) in [
            (json!(123456.78901234), "123456.78901234"),
            (json!(1234567), "1.234567e+06"),
            (json!(999999), "999999"),
            (json!(100000.5), "100000.5"),
            (json!(123456789012345u64), "1.23456789012345e+14"),
            (json!(0.00001), "1e-05"),
            (json!(-2.5), "-2.5"),
            (json!(0), "0"),
            (json!(10), "10"),
        ] {
            assert_eq!(go_format(&number), go, "{number}");
        }
        // So a range filter with a big number compares with its exponent form, as text.
        let v = json!({"n": "1300000"});
        assert!(matches(&parse_filter(&json!({"GT": {"n": 1234567}})).unwrap(), &v), "\"1300000\" > \"1.234567e+06\"");
        assert!(
            matches(&parse_filter(&json!({"GT": {"n": 1000}})).unwrap(), &json!({"n": "999"})),
            "text: \"999\" > \"1000\""
        );
    }

    #[test]
    fn and_and_or_need_two_entries_as_in_dapr() {
        for op in ["AND", "OR"] {
            let one = json!({op: [{"EQ": {"a": 1}}]});
            assert_eq!(parse_filter(&one).unwrap_err(), format!("{op} filter must contain at least two entries"));
            assert!(parse_filter(&json!({op: [{"EQ": {"a": 1}}, {"NEQ": {"a": 2}}]})).is_ok());
        }
    }

    #[test]
    fn select_filters_then_orders_with_nulls_as_postgres() {
        let rows = [("a", json!({"k": "2"})), ("b", json!({"k": "1"})), ("c", json!({})), ("d", json!({"k": "1"}))];
        let q = |body: Value| {
            let query = parse_query(&body).unwrap();
            select(rows.iter().map(|(k, v)| (*k, v)), &query).into_iter().map(|(k, _)| k).collect::<Vec<_>>()
        };
        assert_eq!(q(json!({"sort": [{"key": "k"}]})), ["b", "d", "a", "c"]);
        assert_eq!(q(json!({"sort": [{"key": "k", "order": "DESC"}]})), ["c", "a", "b", "d"]);
        assert_eq!(q(json!({"filter": {"GTE": {"k": 2}}})), ["a"]);
    }
}
