//! `GET /live` and `GET /live.js`: a page a person opens to watch their changes arrive, the
//! smallest client of [`super::route`]. Static files compiled in; no auth (the token is the
//! page's input, sent only to `/v1/events`), and a Content-Security-Policy that lets the page
//! load nothing but its own script and talk to nothing but this origin.

use axum::http::header;
use axum::response::{IntoResponse, Response};

pub const PAGE: &str = "/live";
pub const SCRIPT: &str = "/live.js";

const HTML: &str = include_str!("page/live.html");
const JS: &str = include_str!("page/live.js");

const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn html() -> Response {
    file("text/html; charset=utf-8", HTML)
}

pub async fn script() -> Response {
    file("text/javascript; charset=utf-8", JS)
}
