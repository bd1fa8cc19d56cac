//! Output bindings: `bindings.smtp` and `bindings.http` v1, with real SMTP and HTTP calls.
//!
//! Sources: `github.com/dapr/components-contrib@v1.18.3` (the version daprd 1.18.2 is built
//! with) `bindings/smtp/smtp.go` and `bindings/http/http.go`, and gomail v2
//! (`gopkg.in/gomail.v2@81ebce5`, which smtp.go sends with) `smtp.go`, `send.go`, `writeto.go`;
//! the API side (`POST /v1.0/bindings/{name}`) is in [`crate::sidecar`].
//!
//! What a request carries to a binding is daprd's: `data` is the request's `data` value
//! re-encoded by Go's `encoding/json` (dapr/dapr `pkg/api/http/http.go:430`, `json.Marshal`
//! of the decoded value: object keys sorted, `<`, `>`, `&` escaped, numbers as float64), see
//! [`go_json`]. So a JSON string becomes its quoted form, which the HTTP binding sends as it is
//! and the SMTP binding unquotes (`smtp.go:114-123`).
//!
//! One thing is deliberately not reproduced: `smtp.go:179-211` merges a request's metadata
//! into the component's own (`merged := metadata` copies a pointer), so `emailTo`, `subject`,
//! `emailCC`... of one request stay in the component for every later one, and concurrent
//! requests race on them (docs/notifier.md). devhost merges into a copy per request.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail};
use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use serde_json::Value;

use crate::fields::is_truthy;

/// The operations of each binding type, in the order daprd lists them in its error
/// (`smtp.go:79-81`, `http.go:226-238`).
const SMTP_OPERATIONS: &[&str] = &["create"];
const HTTP_OPERATIONS: &[&str] = &["create", "get", "head", "post", "put", "patch", "delete", "options", "trace"];

/// `bindings.*` metadata that daprd itself reads (not the component): `direction` says whether
/// the binding is an input, an output or both (dapr/dapr `pkg/runtime/processor/binding`).
pub const BINDING_DIRECTION: &str = "direction";

/// A loaded output binding.
#[derive(Debug, Clone)]
pub enum Binding {
    Smtp(SmtpBinding),
    Http(HttpBinding),
}

/// `bindings.smtp` v1 (`smtp.go:47-59`).
#[derive(Debug, Clone)]
pub struct SmtpBinding {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub skip_tls_verify: bool,
    /// The component's defaults, overridden per request.
    pub mail: MailFields,
}

/// The fields a request may override (`smtp.go:179-211`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailFields {
    pub email_from: String,
    pub email_to: String,
    pub email_cc: String,
    pub email_bcc: String,
    pub subject: String,
    /// 1..=5, 3 by default (`smtp.go:33-36`).
    pub priority: u8,
}

/// `bindings.http` v1 (`http.go:64-80`), without the mTLS fields (a startup error).
#[derive(Debug, Clone)]
pub struct HttpBinding {
    pub url: String,
    /// (header, token): `securityTokenHeader` and `securityToken`, both set.
    pub security_token: Option<(String, String)>,
    pub response_timeout: Option<Duration>,
    /// `maxResponseBodySize`: 100 MB by default, `None` = no limit (a value <= 0).
    pub max_response_body: Option<u64>,
    /// `errorIfNot2XX`, true by default (`http.go:139-144`).
    pub error_if_not_2xx: bool,
}

/// `bindings.smtp` metadata, read from the component: `get` yields each field once.
pub fn smtp_from_metadata(mut get: impl FnMut(&str) -> anyhow::Result<Option<String>>) -> anyhow::Result<SmtpBinding> {
    let host = get("host")?.unwrap_or_default();
    let port = match get("port")?.filter(|p| !p.is_empty()) {
        None => 0,
        Some(p) => p.trim().parse::<u16>().map_err(|_| anyhow!("port {p:?} is not a port number"))?,
    };
    // `smtp.go:150-152`.
    if host.is_empty() || port == 0 {
        bail!("smtp binding error: host and port fields are required in metadata");
    }
    let user = get("user")?.unwrap_or_default();
    let password = get("password")?.unwrap_or_default();
    // `smtp.go:154-157`.
    if user.is_empty() != password.is_empty() {
        bail!("smtp binding error: both user and password fields are required in metadata");
    }
    let skip_tls_verify = match get("skipTLSVerify")? {
        None => false,
        // mapstructure's weak decoding of a bool: strconv.ParseBool, "" is false.
        Some(v) if v.is_empty() => false,
        Some(v) => crate::fields::parse_go_bool(&v).ok_or_else(|| anyhow!("skipTLSVerify {v:?} is not a boolean"))?,
    };
    let mut mail = MailFields {
        email_from: get("emailFrom")?.unwrap_or_default(),
        email_to: get("emailTo")?.unwrap_or_default(),
        email_cc: get("emailCC")?.unwrap_or_default(),
        email_bcc: get("emailBCC")?.unwrap_or_default(),
        subject: get("subject")?.unwrap_or_default(),
        priority: 3,
    };
    mail.priority = parse_priority(&get("priority")?.unwrap_or_default())?;
    Ok(SmtpBinding { host, port, user, password, skip_tls_verify, mail })
}

/// `bindings.http` metadata. The mTLS fields are not emulated (devhost's HTTP client speaks
/// plain HTTP only), so they are refused by the caller as unknown fields.
pub fn http_from_metadata(mut get: impl FnMut(&str) -> anyhow::Result<Option<String>>) -> anyhow::Result<HttpBinding> {
    let url = get("url")?.unwrap_or_default();
    if !url.is_empty() && !url.to_ascii_lowercase().starts_with("http://") {
        bail!("url {url:?}: devhost's http binding calls http:// URLs only (no TLS)");
    }
    let token = get("securityToken")?.filter(|s| !s.is_empty());
    let token_header = get("securityTokenHeader")?.filter(|s| !s.is_empty());
    let response_timeout = match get("responseTimeout")?.filter(|s| !s.is_empty()) {
        None => None,
        Some(v) => Some(crate::duration::parse_go(&v).map_err(|e| anyhow!("responseTimeout {e}"))?),
    };
    let max_response_body = match get("maxResponseBodySize")?.filter(|s| !s.is_empty()) {
        None => Some(100 << 20),
        Some(v) => {
            let bytes = parse_byte_size(&v).ok_or_else(|| anyhow!("invalid value for maxResponseBodySize: {v:?}"))?;
            u64::try_from(bytes).ok().filter(|b| *b > 0)
        }
    };
    let error_if_not_2xx = get("errorIfNot2XX")?.filter(|s| !s.is_empty()).is_none_or(|v| is_truthy(&v));
    Ok(HttpBinding {
        url,
        security_token: token_header.zip(token),
        response_timeout,
        max_response_body,
        error_if_not_2xx,
    })
}

/// dapr/kit `metadata.ByteSize`: an integer (bytes) or a Kubernetes quantity (`100Mi`, `1G`).
fn parse_byte_size(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(n) = text.parse::<i64>() {
        return Some(n);
    }
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '-'))?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let factor: i64 = match unit {
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// `smtp.go:212-227`: empty is the default 3; else an integer from 1 to 5.
fn parse_priority(text: &str) -> anyhow::Result<u8> {
    if text.is_empty() {
        return Ok(3);
    }
    let n: i64 = text.parse().map_err(|_| anyhow!("strconv.Atoi: parsing {text:?}: invalid syntax"))?;
    if !(1..=5).contains(&n) {
        bail!("smtp binding error:  priority value must be between 1 (highest) and 5 (lowest)");
    }
    Ok(n as u8)
}

/// What a binding answered (`bindings.InvokeResponse`): its data and metadata. daprd writes the
/// metadata as `metadata.<key>` response headers even when the call failed (dapr/dapr `pkg/api/http/http.go:476-482`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub data: Vec<u8>,
    pub metadata: BTreeMap<String, String>,
}

/// The outcome of one invocation: a response (or none: `204`), an error (`500`), or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invoked {
    pub output: Option<Output>,
    pub error: Option<String>,
}

impl Invoked {
    fn failed(error: impl Into<String>) -> Self {
        Self { output: None, error: Some(error.into()) }
    }
}

impl Binding {
    pub fn operations(&self) -> &'static [&'static str] {
        match self {
            Binding::Smtp(_) => SMTP_OPERATIONS,
            Binding::Http(_) => HTTP_OPERATIONS,
        }
    }

    /// `binding.Invoke` for an operation [`Binding::operations`] lists.
    pub async fn invoke(
        &self,
        http: &reqwest::Client,
        operation: &str,
        data: &[u8],
        metadata: &BTreeMap<String, String>,
    ) -> Invoked {
        match self {
            Binding::Smtp(smtp) => match smtp.send(data, metadata).await {
                Ok(()) => Invoked::default(),
                Err(e) => Invoked::failed(e),
            },
            Binding::Http(h) => h.invoke(http, operation, data, metadata).await,
        }
    }
}

impl SmtpBinding {
    /// `smtp.go:84-139`, with the request's fields merged into a copy of the component's.
    async fn send(&self, data: &[u8], request: &BTreeMap<String, String>) -> Result<(), String> {
        let mut mail = self.mail.clone();
        let given = |key: &str| request.get(key).filter(|v| !v.is_empty()).cloned();
        for (key, field) in [
            ("emailFrom", &mut mail.email_from),
            ("emailTo", &mut mail.email_to),
            ("emailCC", &mut mail.email_cc),
            ("emailBCC", &mut mail.email_bcc),
            ("subject", &mut mail.subject),
        ] {
            if let Some(v) = given(key) {
                *field = v;
            }
        }
        if let Some(p) = given("priority") {
            mail.priority = parse_priority(&p).map_err(|e| e.to_string())?;
        }
        for (value, name) in [(&mail.email_from, "emailFrom"), (&mail.email_to, "emailTo"), (&mail.subject, "subject")]
        {
            if value.is_empty() {
                return Err(format!(
                    "smtp binding error: {name} property not supplied in configuration- or request-metadata"
                ));
            }
        }
        // `smtp.go:114-123`: the data is a Go-quoted string (a JSON string re-encoded by daprd)
        // or, when unquoting fails, used as it is.
        let text = String::from_utf8_lossy(data);
        let body = serde_json::from_slice::<Value>(data)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| text.into_owned());
        self.deliver(&mail, body).await.map_err(|e| format!("error from smtp binding, sending email failed: {e}"))
    }

    /// gomail's `Dialer.DialAndSend` (`smtp.go`, `send.go`): implicit TLS on port 465, else
    /// STARTTLS when the server offers it; auth when a user is set; the envelope from `From`
    /// and the deduplicated `To`, `Cc`, `Bcc` addresses; `Bcc` not in the message.
    async fn deliver(&self, mail: &MailFields, body: String) -> Result<(), String> {
        let parse = |field: &str| -> Result<Mailbox, String> {
            field.trim().parse::<Mailbox>().map_err(|e| format!("gomail: invalid address {field:?}: {e}"))
        };
        let from = parse(&mail.email_from)?;
        let mut builder = lettre::Message::builder().from(from.clone()).subject(mail.subject.clone());
        let mut recipients: Vec<lettre::Address> = Vec::new();
        let mut add = |mailbox: &Mailbox| {
            if !recipients.contains(&mailbox.email) {
                recipients.push(mailbox.email.clone());
            }
        };
        let split = |list: &str| -> Result<Vec<Mailbox>, String> { list.split(';').map(parse).collect() };
        for to in split(&mail.email_to)? {
            add(&to);
            builder = builder.to(to);
        }
        if !mail.email_cc.is_empty() {
            for cc in split(&mail.email_cc)? {
                add(&cc);
                builder = builder.cc(cc);
            }
        }
        if !mail.email_bcc.is_empty() {
            for bcc in split(&mail.email_bcc)? {
                add(&bcc);
            }
        }
        let priority = HeaderValue::new(HeaderName::new_from_ascii_str("X-priority"), mail.priority.to_string());
        builder = builder.raw_header(priority);
        let part = SinglePart::builder()
            .header(ContentType::TEXT_HTML)
            .header(ContentTransferEncoding::QuotedPrintable)
            .body(body);
        let message = builder.singlepart(part).map_err(|e| e.to_string())?;
        let envelope = Envelope::new(Some(from.email), recipients).map_err(|e| e.to_string())?;

        let tls = TlsParameters::builder(self.host.clone())
            .dangerous_accept_invalid_certs(self.skip_tls_verify)
            .dangerous_accept_invalid_hostnames(self.skip_tls_verify)
            .build_rustls()
            .map_err(|e| e.to_string())?;
        // Go's net/smtp says `EHLO localhost` unless told otherwise (gomail sets no name).
        let hello = ClientId::Domain("localhost".to_owned());
        let implicit_tls = self.port == 465;
        // gomail dials with a 10 s timeout (lettre applies it to every command too).
        let mut connection = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(Duration::from_secs(10)),
            &hello,
            implicit_tls.then(|| tls.clone()),
            None,
        )
        .await
        .map_err(|e| e.to_string())?;
        let sent = async {
            if !implicit_tls && connection.can_starttls() {
                connection.starttls(tls, &hello).await.map_err(|e| e.to_string())?;
            }
            if !self.user.is_empty() {
                self.authenticate(&mut connection).await?;
            }
            connection.send(&envelope, &message.formatted()).await.map_err(|e| e.to_string())
        }
        .await;
        match sent {
            // gomail closes with QUIT and ignores its answer.
            Ok(_) => {
                let _ = connection.quit().await;
            }
            Err(e) => {
                connection.abort().await;
                return Err(e);
            }
        }
        Ok(())
    }
}

impl SmtpBinding {
    /// gomail's choice (`smtp.go` `Dialer.Dial`): no `AUTH` offered, no authentication; else
    /// LOGIN when offered without PLAIN, else PLAIN, which Go's `smtp.PlainAuth` refuses on an
    /// unencrypted connection to anything but localhost. gomail prefers CRAM-MD5 when offered;
    /// lettre does not speak it, so devhost uses PLAIN or LOGIN there (documented).
    async fn authenticate(&self, connection: &mut AsyncSmtpConnection) -> Result<(), String> {
        let info = connection.server_info();
        let (plain, login) =
            (info.supports_auth_mechanism(Mechanism::Plain), info.supports_auth_mechanism(Mechanism::Login));
        let offered = plain || login || info.supports_auth_mechanism(Mechanism::Xoauth2);
        if !offered {
            return Ok(());
        }
        let mechanism = if login && !plain { Mechanism::Login } else { Mechanism::Plain };
        if mechanism == Mechanism::Plain
            && !connection.is_encrypted()
            && !matches!(self.host.as_str(), "localhost" | "127.0.0.1" | "::1")
        {
            return Err("unencrypted connection".to_owned());
        }
        let credentials = Credentials::new(self.user.clone(), self.password.clone());
        connection.auth(&[mechanism], &credentials).await.map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl HttpBinding {
    /// `http.go:241-373`.
    async fn invoke(
        &self,
        client: &reqwest::Client,
        operation: &str,
        data: &[u8],
        metadata: &BTreeMap<String, String>,
    ) -> Invoked {
        let mut url = self.url.clone();
        if let Some(path) = metadata.get("path").filter(|p| !p.is_empty()) {
            url = format!("{}/{}", url.trim_end_matches('/'), path.trim_start_matches('/'));
        }
        let error_if_not_2xx =
            metadata.get("errorIfNot2XX").filter(|v| !v.is_empty()).map_or(self.error_if_not_2xx, |v| is_truthy(v));
        let mut method = operation.to_ascii_uppercase();
        if method == "CREATE" {
            method = "POST".to_owned();
        }
        let with_body = match method.as_str() {
            "PUT" | "POST" | "PATCH" => true,
            "GET" | "HEAD" | "DELETE" | "OPTIONS" | "TRACE" => false,
            _ => return Invoked::failed(format!("invalid operation: {operation}")),
        };
        let Ok(method) = reqwest::Method::from_bytes(method.as_bytes()) else {
            return Invoked::failed(format!("invalid operation: {operation}"));
        };
        let mut headers = reqwest::header::HeaderMap::new();
        let mut set = |name: &str, value: &str| -> Result<(), String> {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("net/http: invalid header field name {name:?}"))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| format!("net/http: invalid header field value for {name:?}"))?;
            headers.insert(name, value);
            Ok(())
        };
        let mut headers_set = || -> Result<(), String> {
            if with_body && !metadata.contains_key("Content-Type") {
                set("content-type", "application/json; charset=utf-8")?;
            }
            if !metadata.contains_key("Accept") {
                set("accept", "application/json; charset=utf-8")?;
            }
            if let Some((header, token)) = &self.security_token {
                set(header, token)?;
            }
            // Metadata keys starting with a capital letter are request headers (`http.go:299-305`).
            for (key, value) in metadata {
                if key.starts_with(|c: char| c.is_ascii_uppercase()) {
                    set(key, value)?;
                }
            }
            // `http.go:307-328`: the trace context daprd put into the metadata.
            for key in ["traceparent", "tracestate", "baggage"] {
                if let Some(v) = metadata.get(key).filter(|v| !v.is_empty()) {
                    set(key, v)?;
                }
            }
            Ok(())
        };
        if let Err(e) = headers_set() {
            return Invoked::failed(e);
        }
        let mut request = client.request(method, &url).headers(headers);
        if with_body {
            request = request.body(data.to_vec());
        }
        if let Some(timeout) = self.response_timeout {
            request = request.timeout(timeout);
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            // Go's `*url.Error`: `Post "http://...": dial tcp ...: connection refused`.
            Err(e) => return Invoked::failed(format!("{url}: {e}")),
        };
        let status = response.status();
        let mut metadata = BTreeMap::new();
        metadata.insert("statusCode".to_owned(), status.as_u16().to_string());
        metadata.insert(
            "status".to_owned(),
            format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or_default()).trim_end().to_owned(),
        );
        let mut joined: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in response.headers() {
            // Go removes Transfer-Encoding from the header map (`net/http/transfer.go`).
            if name == reqwest::header::TRANSFER_ENCODING {
                continue;
            }
            joined
                .entry(canonical_header_key(name.as_str()))
                .or_default()
                .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
        }
        for (name, values) in joined {
            metadata.insert(name, values.join(", "));
        }
        let mut data = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    data.extend_from_slice(&chunk);
                    if let Some(max) = self.max_response_body
                        && data.len() as u64 >= max
                    {
                        data.truncate(usize::try_from(max).unwrap_or(usize::MAX));
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => return Invoked::failed(e.to_string()),
            }
        }
        let error =
            (error_if_not_2xx && !status.is_success()).then(|| format!("received status code {}", status.as_u16()));
        Invoked { output: Some(Output { data, metadata }), error }
    }
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `content-type` → `Content-Type`.
pub fn canonical_header_key(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() };
            upper = c == '-';
            out
        })
        .collect()
}

/// Go's `json.Marshal` of a value `encoding/json` decoded into `any` (dapr/dapr
/// `pkg/api/http/http.go:430`): object keys sorted by bytes, `<`, `>`, `&`, U+2028 and U+2029
/// escaped, control characters as `\n`-style or `\u00XX` escapes, numbers as float64 (`1.0` is
/// `1`, `1e21` and up and below `1e-6` in exponent form).
pub fn go_json(value: &Value) -> String {
    let mut out = String::new();
    write_go_json(value, &mut out);
    out
}

fn write_go_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_float(n.as_f64().unwrap_or(0.0))),
        Value::String(s) => go_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_string(key, out);
                out.push(':');
                write_go_json(item, out);
            }
            out.push('}');
        }
    }
}

fn go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `encoding/json`'s `floatEncoder` for float64.
fn go_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // `strconv.FormatFloat(f, 'e', -1, 64)`, then `e-07` becomes `e-7`.
        let text = format!("{f:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exponent),
        };
        let digits = if sign == '+' && digits.len() < 2 { format!("0{digits}") } else { digits.to_owned() };
        format!("{mantissa}e{sign}{digits}")
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_is_reencoded_as_go_does() {
        assert_eq!(go_json(&json!("<p>Hi & bye</p>")), r#""\u003cp\u003eHi \u0026 bye\u003c/p\u003e""#);
        assert_eq!(go_json(&json!({"b": 1, "a": [true, null, 1.5, "x\ny"]})), r#"{"a":[true,null,1.5,"x\ny"],"b":1}"#);
        assert_eq!(go_json(&json!(1e21)), "1e+21");
        assert_eq!(go_json(&json!(1e-7)), "1e-7");
        assert_eq!(go_json(&json!(12345678901234567890u64)), "12345678901234567000");
        assert_eq!(go_json(&json!(100)), "100");
        assert_eq!(go_json(&json!("\u{1}\u{2028}é")), r#""\u0001\u2028é""#);
    }

    #[test]
    fn header_keys_are_canonical() {
        assert_eq!(canonical_header_key("content-type"), "Content-Type");
        assert_eq!(canonical_header_key("x-request-ID"), "X-Request-Id");
    }

    #[test]
    fn priorities_follow_smtp_go() {
        assert_eq!(parse_priority("").ok(), Some(3));
        assert_eq!(parse_priority("5").ok(), Some(5));
        assert!(parse_priority("6").is_err());
        assert!(parse_priority("x").is_err());
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("100Mi"), Some(100 << 20));
        assert_eq!(parse_byte_size("42"), Some(42));
        assert_eq!(parse_byte_size("1k"), Some(1000));
        assert_eq!(parse_byte_size("1x"), None);
    }
}
