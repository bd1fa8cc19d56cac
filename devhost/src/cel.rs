//! The subset of CEL that subscription routing rules are written in, parsed by hand.
//!
//! Dapr evaluates `routes.rules[].match` with cel-go over `{"event": <the CloudEvent as a map>}`
//! (dapr/dapr `pkg/runtime/subscription/subscription.go` `matchRoutingRule`). Users write
//! equality tests on CloudEvent attributes; that is what this module supports:
//!
//! - `==` and `!=` between `event.type`, `event.source`, `event.subject`, `event.topic`,
//!   `event.id` or `event.data.<path>` and a string, number, boolean or `null` literal (either
//!   side);
//! - `&&`, `||`, `!` and parentheses.
//!
//! Anything else is rejected when the subscription is loaded, with the expression in the error,
//! instead of being evaluated differently from Dapr.
//!
//! Evaluation follows CEL's semantics where they matter: a missing attribute (`event.subject` on
//! an event without a subject, `event.data.x` when `data` has no `x`) is an *error*, not false;
//! `&&` and `||` absorb errors when the other side decides (`false && err` is false,
//! `true || err` is true); values of different types are unequal; numbers compare by value.
//! An evaluation error makes Dapr dead-letter the message, or retry it when there is no
//! dead-letter topic.

use serde_json::Value;

/// A parsed routing expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare { path: Vec<String>, equal: bool, literal: Literal },
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Number(f64),
    Bool(bool),
    Null,
}

const ATTRIBUTES: &[&str] = &["type", "source", "subject", "topic", "id"];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Dot,
    Str(String),
    Num(f64),
    Eq,
    Ne,
    And,
    Or,
    Not,
    LParen,
    RParen,
}

fn tokenize(input: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '.' => {
                tokens.push(Token::Dot);
                i += 1;
            }
            '(' => {
                tokens.push(Token::LParen);
                i += 1;
            }
            ')' => {
                tokens.push(Token::RParen);
                i += 1;
            }
            '=' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::Eq);
                i += 2;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::Ne);
                i += 2;
            }
            '!' => {
                tokens.push(Token::Not);
                i += 1;
            }
            '&' if chars.get(i + 1) == Some(&'&') => {
                tokens.push(Token::And);
                i += 2;
            }
            '|' if chars.get(i + 1) == Some(&'|') => {
                tokens.push(Token::Or);
                i += 2;
            }
            '"' | '\'' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string literal".to_owned()),
                        Some(&ch) if ch == quote => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            let escaped = match chars.get(i + 1) {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('r') => '\r',
                                Some('\\') => '\\',
                                Some('"') => '"',
                                Some('\'') => '\'',
                                other => return Err(format!("unsupported escape \\{}", other.copied().unwrap_or(' '))),
                            };
                            s.push(escaped);
                            i += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Str(s));
            }
            c if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) => {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_digit() || chars[i] == '.' || chars[i] == 'e' || chars[i] == 'E')
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let text = text.trim_end_matches('u');
                let n = text.parse::<f64>().map_err(|_| format!("bad number {text:?}"))?;
                tokens.push(Token::Num(n));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unsupported character {other:?}")),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

enum Operand {
    Path(Vec<String>),
    Literal(Literal),
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(Token::Not) => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some(Token::LParen) => {
                self.pos += 1;
                let inner = self.or()?;
                match self.next() {
                    Some(Token::RParen) => Ok(inner),
                    _ => Err("missing `)`".to_owned()),
                }
            }
            _ => self.comparison(),
        }
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let left = self.operand()?;
        let equal = match self.peek() {
            Some(Token::Eq) => true,
            Some(Token::Ne) => false,
            _ => {
                return match left {
                    Operand::Literal(Literal::Bool(b)) => Ok(Expr::Bool(b)),
                    _ => Err("expected `==` or `!=` after an attribute (only equality tests are supported)".to_owned()),
                };
            }
        };
        self.pos += 1;
        let right = self.operand()?;
        match (left, right) {
            (Operand::Path(path), Operand::Literal(literal)) | (Operand::Literal(literal), Operand::Path(path)) => {
                Ok(Expr::Compare { path, equal, literal })
            }
            (Operand::Path(_), Operand::Path(_)) => Err("comparing two attributes is not supported".to_owned()),
            (Operand::Literal(_), Operand::Literal(_)) => Err("comparing two literals is not supported".to_owned()),
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Operand::Literal(Literal::String(s))),
            Some(Token::Num(n)) => Ok(Operand::Literal(Literal::Number(n))),
            Some(Token::Ident(id)) if id == "true" => Ok(Operand::Literal(Literal::Bool(true))),
            Some(Token::Ident(id)) if id == "false" => Ok(Operand::Literal(Literal::Bool(false))),
            Some(Token::Ident(id)) if id == "null" => Ok(Operand::Literal(Literal::Null)),
            Some(Token::Ident(id)) if id == "event" => {
                let mut path = Vec::new();
                while self.peek() == Some(&Token::Dot) {
                    self.pos += 1;
                    match self.next() {
                        Some(Token::Ident(field)) => path.push(field),
                        _ => return Err("expected a field name after `.`".to_owned()),
                    }
                }
                if self.peek() == Some(&Token::LParen) {
                    return Err("function calls are not supported".to_owned());
                }
                match path.first().map(String::as_str) {
                    Some("data") if path.len() > 1 => Ok(Operand::Path(path)),
                    Some(attr) if ATTRIBUTES.contains(&attr) && path.len() == 1 => Ok(Operand::Path(path)),
                    _ => Err(format!(
                        "`event.{}` is not supported (use event.type, event.source, event.subject, event.topic, \
                         event.id or event.data.<field>)",
                        path.join(".")
                    )),
                }
            }
            Some(Token::Ident(id)) => Err(format!("unknown identifier `{id}` (expressions start with `event.`)")),
            Some(other) => Err(format!("unexpected {other:?}")),
            None => Err("unexpected end of expression".to_owned()),
        }
    }
}

/// Parses a routing rule, or says why it is outside the supported subset.
pub fn parse(input: &str) -> Result<Expr, String> {
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Err("empty expression".to_owned());
    }
    let mut parser = Parser { tokens, pos: 0 };
    let expr = parser.or()?;
    if parser.pos < parser.tokens.len() {
        return Err(format!("unexpected {:?}", parser.tokens[parser.pos]));
    }
    Ok(expr)
}

/// Evaluates against the CloudEvent (a JSON object). `Err` is a CEL evaluation error.
pub fn eval(expr: &Expr, event: &Value) -> Result<bool, String> {
    match expr {
        Expr::Bool(b) => Ok(*b),
        Expr::Not(inner) => eval(inner, event).map(|b| !b),
        Expr::And(a, b) => match (eval(a, event), eval(b, event)) {
            (Ok(false), _) | (_, Ok(false)) => Ok(false),
            (Err(e), _) | (_, Err(e)) => Err(e),
            _ => Ok(true),
        },
        Expr::Or(a, b) => match (eval(a, event), eval(b, event)) {
            (Ok(true), _) | (_, Ok(true)) => Ok(true),
            (Err(e), _) | (_, Err(e)) => Err(e),
            _ => Ok(false),
        },
        Expr::Compare { path, equal, literal } => {
            let mut value = event;
            for field in path {
                value = match value {
                    Value::Object(map) => map.get(field).ok_or_else(|| format!("no such key: {field}"))?,
                    _ => return Err(format!("no such key: {field} (not a map)")),
                };
            }
            let same = match (value, literal) {
                (Value::String(a), Literal::String(b)) => a == b,
                (Value::Number(a), Literal::Number(b)) => a.as_f64() == Some(*b),
                (Value::Bool(a), Literal::Bool(b)) => a == b,
                (Value::Null, Literal::Null) => true,
                _ => false,
            };
            Ok(same == *equal)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(expr: &str, event: &Value) -> Result<bool, String> {
        eval(&parse(expr).unwrap(), event)
    }

    #[test]
    fn equality_and_logic() {
        let e = json!({"type": "a", "source": "s", "data": {"n": 3, "kind": {"x": true}}});
        assert_eq!(check(r#"event.type == "a""#, &e), Ok(true));
        assert_eq!(check(r#"event.type != 'a'"#, &e), Ok(false));
        assert_eq!(check(r#""a" == event.type && event.data.n == 3"#, &e), Ok(true));
        assert_eq!(check(r#"!(event.type == "b") || event.data.kind.x == false"#, &e), Ok(true));
        assert_eq!(check(r#"event.data.n == "3""#, &e), Ok(false));
    }

    #[test]
    fn missing_attributes_are_errors_absorbed_by_logic() {
        let e = json!({"type": "a"});
        assert!(check(r#"event.subject == "x""#, &e).is_err());
        assert_eq!(check(r#"event.type == "b" && event.subject == "x""#, &e), Ok(false));
        assert_eq!(check(r#"event.type == "a" || event.subject == "x""#, &e), Ok(true));
        assert!(check(r#"event.type == "a" && event.data.x == 1"#, &e).is_err());
    }

    #[test]
    fn rejects_what_it_does_not_evaluate() {
        for bad in [
            r#"event.type.startsWith("a")"#,
            r#"event.type in ["a"]"#,
            r#"event.time > "2020""#,
            r#"has(event.subject)"#,
            r#"event.data.n > 3"#,
            r#"event.type == event.source"#,
            r#"event.type == "a" &&"#,
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
