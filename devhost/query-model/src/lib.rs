//! How `state.postgresql` v1 answers a Query API request (`POST /v1.0-alpha1/state/{store}/query`),
//! as a model over JSON values: parsing (components-contrib `state/query/filter.go`), the
//! filters it compiles to SQL (`common/component/postgresql/v1/postgresql_query.go`: text
//! comparison of `value->'a'->>'b'` with parameters bound as Go's `%v`), and its `ORDER BY`.
//!
//! One model, two users: devhost answers apps from it, and the recording stub of
//! `dapr_fn::testing` answers the functions' integration tests from it, so a test cannot pass
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
    /// What v1 refuses only when it builds or runs the SQL, after the filter (`Finalize` and
    /// Postgres): a page token that is not a number, then a sort order that is not ASC or
    /// DESC, then a negative offset. [`check_query`] reports it.
    pub refused: Option<String>,
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

/// Parses the query body as daprd does: `encoding/json` into components-contrib's
/// `query.Query` (`state/query/query.go`), whose unknown fields are ignored, then the filter
/// (`state/query/filter.go` `ParseFilter`), then what `state.postgresql` v1 does with sort and
/// page (`common/component/postgresql/v1/postgresql_query.go` `Finalize`): the sort order goes
/// into the SQL as written (so `asc`, `DESC`, ... in any case; anything else is a syntax error
/// there), a `page.limit` of 0 or less is no limit, and `page.token` is the row offset.
/// `Err` is a query failure (daprd answers 500 `ERR_STATE_QUERY` to every one).
pub fn parse_query(body: &Value) -> Result<Query, String> {
    let Value::Object(map) = body else {
        return Err(format!("json: cannot unmarshal {} into Go value of type query.QueryFields", json_kind(body)));
    };
    // encoding/json's `UnmarshalTypeError`: the innermost struct, the full field path, and the
    // number itself when it does not fit the numeric type.
    let type_error = |field: &str, value: &Value, go_type: &str| {
        let go_struct = match field.split('.').next() {
            Some("sort") => "Sorting",
            Some("page") if field != "page" => "Pagination",
            _ => "QueryFields",
        };
        let kind = match value {
            Value::Number(n) if go_type == "int" => format!("number {n}"),
            other => json_kind(other).to_owned(),
        };
        format!("json: cannot unmarshal {kind} into Go struct field {go_struct}.{field} of type {go_type}")
    };
    let mut syntax_error = None;
    let mut token_error = None;
    let mut offset_error = None;
    let filter = match map.get("filter") {
        None | Some(Value::Null) => None,
        Some(Value::Object(f)) if f.is_empty() => None,
        Some(f @ Value::Object(_)) => Some(parse_filter(f)?),
        Some(other) => return Err(type_error("filter", other, "map[string]interface {}")),
    };
    let mut sort = Vec::new();
    match map.get("sort") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let (key, order) = match item {
                    Value::Null => (String::new(), String::new()),
                    Value::Object(m) => {
                        let string = |name: &str| match m.get(name) {
                            None | Some(Value::Null) => Ok(String::new()),
                            Some(Value::String(s)) => Ok(s.clone()),
                            Some(other) => Err(type_error(&format!("sort.{name}"), other, "string")),
                        };
                        (string("key")?, string("order")?)
                    }
                    other => return Err(type_error("sort", other, "query.Sorting")),
                };
                let desc = match order.to_ascii_uppercase().as_str() {
                    "" | "ASC" => false,
                    "DESC" => true,
                    _ => {
                        syntax_error.get_or_insert_with(|| {
                            format!("ERROR: syntax error at or near \"{order}\" (SQLSTATE 42601)")
                        });
                        false
                    }
                };
                sort.push((key, desc));
            }
        }
        Some(other) => return Err(type_error("sort", other, "[]query.Sorting")),
    }
    let (mut limit, mut offset) = (0, 0);
    match map.get("page") {
        None | Some(Value::Null) => {}
        Some(Value::Object(page)) => {
            match page.get("limit") {
                None | Some(Value::Null) => {}
                Some(l) => {
                    // A Go `int`: a fraction or a string does not decode; 0 or less is no limit.
                    let n = l.as_i64().ok_or_else(|| type_error("page.limit", l, "int"))?;
                    limit = usize::try_from(n).unwrap_or(0);
                }
            }
            match page.get("token") {
                None | Some(Value::Null) => {}
                Some(Value::String(t)) if t.is_empty() => {}
                Some(Value::String(t)) => match t.parse::<i64>() {
                    Ok(skip) => match usize::try_from(skip) {
                        Ok(skip) => offset = skip,
                        Err(_) => offset_error = Some("ERROR: OFFSET must not be negative (SQLSTATE 2201X)".to_owned()),
                    },
                    Err(_) => token_error = Some(format!("strconv.ParseInt: parsing {t:?}: invalid syntax")),
                },
                Some(other) => return Err(type_error("page.token", other, "string")),
            }
        }
        Some(other) => return Err(type_error("page", other, "query.Pagination")),
    }
    Ok(Query { filter, sort, limit, offset, refused: token_error.or(syntax_error).or(offset_error) })
}

/// The JSON type name in Go's `UnmarshalTypeError` (`json: cannot unmarshal <kind> into ...`),
/// which daprd's answers quote; devhost's sidecar words its decoding errors with it too.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// components-contrib `state/query/filter.go` `ParseFilter`, with its messages. An empty `IN`
/// list parses; v1 refuses it when it builds the SQL ([`check_query`]).
pub fn parse_filter(value: &Value) -> Result<Filter, String> {
    let Value::Object(map) = value else { return Err("filter unit must be a map".to_owned()) };
    if map.len() != 1 {
        return Err("filter unit must have a single element".to_owned());
    }
    let Some((op, arg)) = map.iter().next() else { return Err("filter unit must have a single element".to_owned()) };
    let single = |arg: &Value| -> Result<(String, Value), String> {
        let Value::Object(m) = arg else { return Err(format!("{op} filter must be a map")) };
        match m.iter().next() {
            Some((k, v)) if m.len() == 1 => Ok((k.clone(), v.clone())),
            _ => Err(format!("{op} filter must contain a single key/value pair")),
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
            let Value::Array(values) = values else { return Err("IN filter value must be an array".to_owned()) };
            Ok(Filter::In { path, values })
        }
        "AND" | "OR" => {
            let Value::Array(items) = arg else { return Err(format!("{op} filter must be an array")) };
            // `parseFilters`: a one-entry AND or OR is refused, not taken as its entry.
            if items.len() < 2 {
                return Err(format!("{op} filter must contain at least two entries"));
            }
            let filters = items.iter().map(parse_filter).collect::<Result<Vec<_>, _>>()?;
            Ok(if op == "AND" { Filter::And(filters) } else { Filter::Or(filters) })
        }
        other => Err(format!("unsupported filter {other:?}")),
    }
}

/// What Postgres v1 refuses when it builds and runs the SQL, in its order: the filter's
/// ordering operators on strings and empty `IN` lists (`postgresql_query.go` `VisitGT`...,
/// `VisitIN`), then [`Query::refused`]. `Err` is a query failure (500).
pub fn check_query(query: &Query) -> Result<(), String> {
    fn walk(f: &Filter) -> Result<(), String> {
        match f {
            Filter::Compare { op, value: Value::String(s), .. } if !matches!(op, CompareOp::Eq | CompareOp::Neq) => {
                Err(format!("unsupported type of value {s}; string type not permitted"))
            }
            Filter::In { path, values } if values.is_empty() => Err(format!("empty IN operator for key {path:?}")),
            Filter::And(items) | Filter::Or(items) => items.iter().try_for_each(walk),
            _ => Ok(()),
        }
    }
    query.filter.as_ref().map_or(Ok(()), walk)?;
    query.refused.clone().map_or(Ok(()), Err)
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
    fn the_query_body_decodes_as_in_daprd() {
        // Unknown fields are ignored, the order's case does not matter, a limit of 0 or less
        // is no limit.
        let q =
            parse_query(&json!({"filter": {}, "sort": [{"key": "a", "order": "desc"}, {"key": "b", "order": "Asc"}],
                                    "page": {"limit": -3, "token": "2"}, "query": "x"}))
            .unwrap();
        assert_eq!(
            q,
            Query {
                filter: None,
                sort: vec![("a".into(), true), ("b".into(), false)],
                limit: 0,
                offset: 2,
                refused: None
            }
        );
        // Refused when v1 builds or runs the SQL, after the filter's own refusals.
        for (body, refused) in [
            (
                json!({"sort": [{"key": "a", "order": "sideways"}]}),
                "ERROR: syntax error at or near \"sideways\" (SQLSTATE 42601)",
            ),
            (json!({"page": {"limit": 2, "token": "x"}}), "strconv.ParseInt: parsing \"x\": invalid syntax"),
            (json!({"page": {"limit": 2, "token": "-1"}}), "ERROR: OFFSET must not be negative (SQLSTATE 2201X)"),
            (json!({"filter": {"IN": {"a": []}}}), "empty IN operator for key \"a\""),
            (json!({"filter": {"IN": {"a": []}}, "page": {"token": "x"}}), "empty IN operator for key \"a\""),
        ] {
            assert_eq!(check_query(&parse_query(&body).unwrap()).unwrap_err(), refused, "{body}");
        }
        for bad in [
            json!({"page": {"limit": 2.5}}),
            json!({"page": {"limit": "2"}}),
            json!({"page": {"limit": 2, "token": 2}}),
            json!({"filter": []}),
            json!({"filter": {"eq": {"a": 1}}}),
            json!([]),
        ] {
            assert!(parse_query(&bad).is_err(), "{bad}");
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
