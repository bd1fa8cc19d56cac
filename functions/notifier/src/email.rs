//! Email delivery through Dapr's `bindings.smtp` output binding (component `email`).
//!
//! The binding writes each request's metadata into the component's own configuration and two
//! concurrent invocations race on it (components-contrib v1.18.3 `bindings/smtp/smtp.go:86`,
//! `:179-211`; confirmed on daprd 1.18.2, `docs/notifier.md`): one person's reminder could be
//! composed with another person's address. So this module invokes it one call at a time per
//! process (each replica has its own sidecar and component instance), always sets `emailTo` and
//! `subject`, and never sets `emailCC`/`emailBCC`, so nothing of an earlier request survives
//! into a later one.

use std::collections::BTreeMap;

use dapr_fn::dapr::{BindingRequest, Dapr, DaprError};
use todo_core::delivery::Sent;
use todo_core::events::{ReminderDue, components};
use tokio::sync::Mutex;

/// The longest task title put in a subject, in characters.
const SUBJECT_TITLE_CHARS: usize = 120;

/// Sends reminder mails, one at a time.
#[derive(Debug)]
pub struct Mailer {
    dapr: Dapr,
    one_at_a_time: Mutex<()>,
}

/// One mail, composed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    /// HTML: `bindings.smtp` sends the body as `text/html` (smtp.go:114-123).
    pub html: String,
}

impl Mailer {
    pub fn new(dapr: Dapr) -> Self {
        Self { dapr, one_at_a_time: Mutex::new(()) }
    }

    pub async fn send(&self, mail: &Mail) -> Sent {
        let metadata = BTreeMap::from([("emailTo", mail.to.as_str()), ("subject", mail.subject.as_str())]);
        let request = BindingRequest { operation: "create", data: &mail.html, metadata };
        let _only_one = self.one_at_a_time.lock().await;
        match self.dapr.invoke_binding(components::EMAIL_BINDING, &request).await {
            Ok(()) => Sent::Delivered,
            // A 404 or 400 is a deploy mistake (no `email` component, not scoped here): retried
            // within the budget, so a fixed deploy still delivers. So is everything the SMTP
            // server answered: the binding reports it as one 500 whatever the SMTP code.
            Err(e @ (DaprError::Encode { .. } | DaprError::Config(_))) => Sent::Failed(e.to_string()),
            Err(e) => Sent::Retry(e.to_string()),
        }
    }
}

/// The mail for `reminder` to `address`, with a link to the task.
pub fn compose(reminder: &ReminderDue, address: &str, link: &str) -> Mail {
    let title = one_line(&reminder.title);
    let short: String = title.chars().take(SUBJECT_TITLE_CHARS).collect();
    let short = if short.len() < title.len() { format!("{short}…") } else { short };
    let due = match reminder.due {
        Some(due) => format!("<p>Due {}.</p>", escape(&due.format("%a %e %b %Y, %H:%M (%:z)").to_string())),
        None => String::new(),
    };
    let html = format!(
        "<p>Reminder: <strong>{}</strong></p>{due}<p><a href=\"{}\">Open the task</a></p>",
        escape(&title),
        escape(link)
    );
    Mail { to: address.to_owned(), subject: format!("Reminder: {short}"), html }
}

/// A title on one line: control characters (CR and LF among them, which would end a mail
/// header) become spaces.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_owned()
}

/// HTML-escapes text put into the body: a title is the user's text, not markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use chrono::{DateTime, Utc};

    use super::*;

    fn reminder(title: &str) -> ReminderDue {
        let at: DateTime<Utc> = "2026-12-01T07:45:00Z".parse().unwrap();
        ReminderDue {
            task_id: uuid::Uuid::from_u128(7),
            owner: "alice".into(),
            title: title.into(),
            due: Some(DateTime::parse_from_rfc3339("2026-12-01T09:00:00+01:00").unwrap()),
            remind_at: at,
            fired_at: at,
            late_by_ms: 0,
            task_version: 1,
        }
    }

    #[test]
    fn the_title_is_text_not_markup_and_cannot_add_a_header() {
        let mail =
            compose(&reminder("<b>Pay</b> rent\r\nBcc: eve@example.com"), "a@example.com", "https://t/x?a=1&b=2");
        assert_eq!(mail.subject, "Reminder: <b>Pay</b> rent  Bcc: eve@example.com");
        assert!(!mail.subject.contains('\n') && !mail.subject.contains('\r'));
        assert!(mail.html.contains("&lt;b&gt;Pay&lt;/b&gt; rent"), "{}", mail.html);
        assert!(mail.html.contains("href=\"https://t/x?a=1&amp;b=2\""), "{}", mail.html);
        assert!(mail.html.contains("Due Tue  1 Dec 2026, 09:00 (+01:00)"), "{}", mail.html);
        assert_eq!(mail.to, "a@example.com");
    }

    #[test]
    fn a_long_title_is_cut_in_the_subject_only() {
        let title = "é".repeat(300);
        let mail = compose(&reminder(&title), "a@example.com", "https://t");
        assert_eq!(mail.subject.chars().count(), "Reminder: ".len() + SUBJECT_TITLE_CHARS + 1);
        assert!(mail.html.contains(&title));
    }
}
