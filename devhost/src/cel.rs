//! Subscription routing rules: the Common Expression Language, evaluated with the `cel` crate.
//!
//! daprd compiles each `routes.rules[].match` with cel-go (dapr/dapr v1.18.2 `pkg/expr/expr.go`
//! `DecodeString`): every identifier the expression uses is declared as a `dyn` variable, so a rule
//! compiles unless it does not parse or calls a function cel-go does not have. It evaluates the
//! rule over `{"event": <the CloudEvent as Go's encoding/json reads it>}`
//! (`pkg/runtime/subscription/subscription.go:567-609` `findMatchingRoute`/`matchRoutingRule`):
//! rules in order, the first that is `true` wins; an evaluation error, or a result that is not a
//! boolean, stops the evaluation with an error (the message is dead-lettered, or retried when
//! the subscription has no dead-letter topic).
//!
//! What devhost does the same way:
//! - the whole of CEL the `cel` crate evaluates: comparisons (`event.data.n > 5`), `has()`,
//!   `size()`, `startsWith`/`endsWith`/`contains`/`matches`, `in`, lists and maps, arithmetic,
//!   the ternary, `all`/`exists`/`exists_one`/`map`/`filter`, `timestamp()`/`duration()`;
//! - JSON numbers are doubles, as Go decodes them into a `map[string]any`: compared with integer
//!   literals by value (cel-go's cross-type comparisons), but `event.data.n / 2` is an error
//!   (no `double / int` overload) where `event.data.n / 2.0` works;
//! - a missing key (`event.subject` on an event without one, `event.data.x`) is an error, which
//!   `&&`/`||` absorb when the other side decides;
//! - a rule that does not parse, or calls a function cel-go does not declare, is refused when
//!   the subscription is read (see [`Rule::compile`] for what daprd then does).
//!
//! Not the same: cel-go also *type-checks* a rule when it compiles it, so with literal operands of
//! the wrong type (`size(1)`, `"a" + 1`) daprd refuses the rule where devhost finds the error
//! when it evaluates it (the message is then handled as any evaluation error).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

/// A compiled routing rule.
#[derive(Debug, Clone)]
pub struct Rule {
    source: String,
    program: Arc<cel::Program>,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// The functions (and macros) of cel-go's standard environment, which is what daprd compiles
/// rules in (`cel.NewEnv` without extensions, `pkg/expr/expr.go:31`). Operators (`_>_`, `@in`,
/// `!_`, ...) are checked by the parser.
const CEL_GO_FUNCTIONS: &[&str] = &[
    "has",
    "all",
    "exists",
    "exists_one",
    "map",
    "filter",
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "type",
    "dyn",
    "duration",
    "timestamp",
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
];

impl Rule {
    /// Compiles a rule as daprd's `expr.DecodeString` would accept it, or says why not.
    ///
    /// daprd then: a declarative `Subscription` with such a rule stops daprd at startup
    /// (`pkg/runtime/processor/subscriptions.go:52-57` `errorSubscriptions`); one answered by
    /// `GET /dapr/subscribe` makes `GetSubscriptionsHTTP` fail (`pkg/runtime/pubsub/subscriptions.go:156-159`),
    /// and daprd logs "failed to subscribe to topics" and subscribes the app to nothing, its
    /// declarative subscriptions included (`pkg/runtime/processor/subscriber/subscriber.go:319-330`,
    /// `pkg/runtime/runtime.go:963-966`).
    pub fn compile(source: &str) -> Result<Self, String> {
        let program = cel::Program::compile(source).map_err(|e| format!("ERROR: {}", e.to_string().trim()))?;
        let references = program.references();
        let mut unknown: Vec<&str> = references
            .functions()
            .into_iter()
            .filter(|f| !f.starts_with('_') && !f.starts_with('@') && !f.starts_with('!') && !f.starts_with('-'))
            .filter(|f| !CEL_GO_FUNCTIONS.contains(f))
            .collect();
        unknown.sort_unstable();
        if let Some(function) = unknown.first() {
            return Err(format!("undeclared reference to '{function}' (in container '')"));
        }
        Ok(Self { source: source.to_owned(), program: Arc::new(program) })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the rule with `event` bound to `event` (a JSON value as Go decodes it); `Err` is
    /// an evaluation error, or a result that is not a boolean (daprd's own message).
    pub fn matches(&self, event: &Value) -> Result<bool, String> {
        let mut context = cel::Context::default();
        context.add_variable_from_value("event", to_cel(event));
        match self.program.execute(&context) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(_) => Err(format!("the result of match expression {} was not a boolean", self.source)),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A JSON value as cel-go sees Go's `encoding/json` output: every number a double.
fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => cel::Value::from(s.as_str()),
        Value::Array(items) => cel::Value::from(items.iter().map(to_cel).collect::<Vec<_>>()),
        Value::Object(map) => {
            cel::Value::from(map.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect::<HashMap<String, cel::Value>>())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(expr: &str, event: &Value) -> Result<bool, String> {
        Rule::compile(expr).unwrap().matches(event)
    }

    #[test]
    fn equality_and_logic() {
        let e = json!({"type": "a", "source": "s", "data": {"n": 3, "kind": {"x": true}}});
        assert_eq!(check(r#"event.type == "a""#, &e), Ok(true));
        assert_eq!(check(r#"event.type != 'a'"#, &e), Ok(false));
        assert_eq!(check(r#""a" == event.type && event.data.n == 3"#, &e), Ok(true));
        assert_eq!(check(r#"!(event.type == "b") || event.data.kind.x == false"#, &e), Ok(true));
        // Values of different types are unequal (a number is not its text).
        assert_eq!(check(r#"event.data.n == "3""#, &e), Ok(false));
    }

    #[test]
    fn what_the_old_subset_refused() {
        let e = json!({"type": "app.created", "data": {"n": 7, "tags": ["a", "b"], "x": null}});
        assert_eq!(check("event.data.n > 5", &e), Ok(true));
        assert_eq!(check("event.data.n <= 5", &e), Ok(false));
        assert_eq!(check("has(event.data.x)", &e), Ok(true));
        assert_eq!(check("has(event.data.y)", &e), Ok(false));
        assert_eq!(check(r#"event.type.startsWith("app.")"#, &e), Ok(true));
        assert_eq!(check(r#"event.type.endsWith(".deleted")"#, &e), Ok(false));
        assert_eq!(check("size(event.data.tags) == 2 && 'b' in event.data.tags", &e), Ok(true));
        assert_eq!(check(r#"event.type in ["x", "app.created"]"#, &e), Ok(true));
        assert_eq!(check(r#"event.type.matches("^app\\.[a-z]+$")"#, &e), Ok(true));
        assert_eq!(check("event.data.tags.exists(t, t == 'a')", &e), Ok(true));
        // Numbers are doubles, as Go decodes JSON: arithmetic with an int literal has no overload
        // (cel-go's `Double.Divide(Int)` is an error too), with a double it works.
        assert_eq!(check("event.data.n / 2.0 == 3.5", &e), Ok(true));
        assert!(check("event.data.n / 2 == 3.5", &e).is_err());
    }

    #[test]
    fn missing_attributes_are_errors_absorbed_by_logic() {
        let e = json!({"type": "a"});
        assert!(check(r#"event.subject == "x""#, &e).is_err());
        assert_eq!(check(r#"event.type == "b" && event.subject == "x""#, &e), Ok(false));
        assert_eq!(check(r#"event.type == "a" || event.subject == "x""#, &e), Ok(true));
        assert!(check(r#"event.type == "a" && event.data.x == 1"#, &e).is_err());
        assert!(check("event.data.n > 5", &e).is_err());
    }

    #[test]
    fn a_result_that_is_not_a_boolean_is_an_error() {
        let e = json!({"type": "a"});
        let err = check("event.type", &e).unwrap_err();
        assert_eq!(err, "the result of match expression event.type was not a boolean");
    }

    #[test]
    fn rejects_what_cel_go_does_not_compile() {
        for bad in [r#"event.type == "a" &&"#, "", "event.type ==", r#"nosuch(event.type)"#, r#"event.type.frob("a")"#]
        {
            assert!(Rule::compile(bad).is_err(), "{bad} should be rejected");
        }
        // Any identifier is a variable to daprd: an unknown one compiles and fails when evaluated.
        let rule = Rule::compile("other == 1").unwrap();
        assert!(rule.matches(&json!({})).is_err());
    }
}
