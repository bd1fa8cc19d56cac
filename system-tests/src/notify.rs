//! The notifier's end-to-end scenarios, on either backend (`tests/e2e.rs` on devhost,
//! `tests/platform.rs` on the real platform): a person sets their channels through task-api, a
//! task's reminder comes due, and what reaches a real webhook receiver ([`crate::webhook`]) and
//! a real SMTP server ([`crate::smtp::SmtpSink`] on the system's `email` port) is checked, with what `GET /v1/tasks/{id}/reminder`
//! says about it.
//!
//! - [`a_reminder_reaches_the_webhook_and_the_mailbox_once`]
//! - [`a_receiver_down_for_20_seconds_gets_the_reminder_once_it_is_back`]
//! - [`a_receiver_that_is_gone_fails_without_retries_into_the_dead_letter_topic`]

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use todo_core::delivery::{Channel, retry_job_name};

use crate::api::{Api, eventually};
use crate::system::TestSystem;
use crate::webhook::{Receiver, SECRET};

/// The person of these scenarios.
const USER: &str = "carol";
/// Where the mail goes.
pub const ADDRESS: &str = "carol@example.com";
/// Generous: both backends share two cores with the rest of the tests.
const SETTLE: Duration = Duration::from_secs(60);

/// Sets `USER`'s channels: the webhook at `url` (with [`SECRET`]) and, if given, the address.
pub async fn set_channels(api: &Api, url: &str, email: Option<&str>) -> anyhow::Result<Value> {
    let mut body = json!({"webhook": {"url": url, "secret": SECRET}});
    if let Some(address) = email {
        body["email"] = json!({"address": address});
    }
    let answer = api.call(Method::PUT, "/v1/me/notifications", Some(&body)).await?;
    ensure!(answer.status == StatusCode::OK, "PUT /v1/me/notifications answered {}: {}", answer.status, answer.body);
    ensure!(answer.body["webhook"]["secret_set"] == true, "the view says a secret is set: {}", answer.body);
    ensure!(answer.body["webhook"].get("secret").is_none(), "the secret is never returned: {}", answer.body);
    Ok(answer.body)
}

/// Creates a task of `USER` whose reminder is due `in_secs` from now; its id and due time.
pub async fn task_reminding_in(api: &Api, title: &str, in_secs: i64) -> anyhow::Result<(String, DateTime<Utc>)> {
    let at = Utc::now() + chrono::Duration::seconds(in_secs);
    let at_text = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let task =
        api.post("/v1/tasks", Some(&json!({"title": title, "reminder": {"at": at_text}})), StatusCode::CREATED).await?;
    let id = task["id"].as_str().context("id")?.to_owned();
    Ok((id, DateTime::parse_from_rfc3339(&at_text)?.to_utc()))
}

/// The delivery of `channel` that `GET /v1/tasks/{id}/reminder` shows, once `done` holds.
async fn delivery_when(
    api: &Api,
    id: &str,
    channel: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    eventually(what, SETTLE, || async {
        let view = api.get(&format!("/v1/tasks/{id}/reminder")).await?;
        let delivery = view["deliveries"].as_array().into_iter().flatten().find(|d| d["channel"] == channel).cloned();
        Ok(delivery.filter(|d| done(d)))
    })
    .await
}

/// The webhook requests for task `id` so far.
fn requests_for(receiver: &Receiver, id: &str) -> Vec<crate::webhook::Received> {
    receiver
        .received()
        .into_iter()
        .filter(|r| serde_json::from_slice::<Value>(&r.body).is_ok_and(|b| b["data"]["task_id"] == id))
        .collect()
}

/// A reminder due in 3 s reaches the webhook, signed, and the mailbox, once each; the reminder's
/// view says both were delivered on the first attempt.
pub async fn a_reminder_reaches_the_webhook_and_the_mailbox_once(
    system: &mut TestSystem,
    mailbox: &crate::smtp::SmtpSink,
) -> anyhow::Result<()> {
    let api = system.api(USER)?;
    let receiver = Receiver::start().await?;
    set_channels(&api, receiver.url(), Some(ADDRESS)).await?;
    let (id, due) = task_reminding_in(&api, "Renew the passport", 3).await?;

    let webhook = delivery_when(&api, &id, "webhook", "the webhook delivery", |d| d["status"] == "delivered").await?;
    ensure!(webhook["attempts"] == 1, "delivered on the first attempt: {webhook}");
    let requests = requests_for(&receiver, &id);
    ensure!(requests.len() == 1, "one webhook request, not {}", requests.len());
    let body = requests[0].verified(SECRET)?;
    ensure!(body["type"] == "todo.reminder.due" && body["data"]["title"] == "Renew the passport", "body: {body}");
    let remind_at = DateTime::parse_from_rfc3339(body["data"]["remind_at"].as_str().context("remind_at")?)?;
    ensure!(remind_at == due, "the webhook is for {remind_at}, the reminder was due {due}");
    ensure!(requests[0].at >= due, "received at {} before it was due at {due}", requests[0].at);
    ensure!(
        requests[0].id()?.starts_with(&format!("reminder:{id}:")),
        "webhook-id is the reminder's event id: {}",
        requests[0].id()?
    );

    delivery_when(&api, &id, "email", "the email delivery", |d| d["status"] == "delivered").await?;
    let subject = "Reminder: Renew the passport";
    let ours =
        |m: &crate::smtp::Mail| m.to.iter().any(|to| to == ADDRESS) && m.parsed().subject.as_deref() == Some(subject);
    let mail = mailbox.wait_for(Duration::from_secs(10), ours).await?.parsed();
    ensure!(mail.to == [ADDRESS], "To: {:?}", mail.to);
    ensure!(mail.content_type.as_deref() == Some("text/html"), "content type {:?}", mail.content_type);
    ensure!(mail.body.contains("Renew the passport") && mail.body.contains(&id), "body: {}", mail.body);

    // Once each: every consumer has caught up, so a duplicate of the reminder event would have
    // been handled by now (the view already said delivered).
    system.settle(SETTLE).await?;
    ensure!(requests_for(&receiver, &id).len() == 1, "still one webhook request");
    let mails = mailbox.mails().into_iter().filter(|m| ours(m)).count();
    ensure!(mails == 1, "one mail, not {mails}");
    Ok(())
}

/// The receiver is down from before the reminder is due until 20 s after: the notifier retries
/// with backoff, and delivers once when it is back.
pub async fn a_receiver_down_for_20_seconds_gets_the_reminder_once_it_is_back(
    system: &mut TestSystem,
) -> anyhow::Result<()> {
    let api = system.api(USER)?;
    let receiver = Receiver::start().await?;
    set_channels(&api, receiver.url(), None).await?;
    receiver.set_down(true);
    let (id, due) = task_reminding_in(&api, "Water the garden", 2).await?;
    let retrying = delivery_when(&api, &id, "webhook", "a failed first attempt", |d| d["status"] == "retrying").await?;
    ensure!(retrying["last_error"].as_str().is_some_and(|e| !e.is_empty()), "the error is shown: {retrying}");
    let back = due + chrono::Duration::seconds(20);
    tokio::time::sleep((back - Utc::now()).to_std().unwrap_or_default()).await;
    let before = delivery_when(&api, &id, "webhook", "the delivery still retrying", |_| true).await?;
    if before["status"] != "retrying" {
        bail!("while the receiver was down the delivery became {before}");
    }
    receiver.set_down(false);
    let delivered =
        delivery_when(&api, &id, "webhook", "the delivery once the receiver is back", |d| d["status"] == "delivered")
            .await?;
    let attempts = delivered["attempts"].as_u64().unwrap_or(0);
    ensure!(attempts >= 3, "retried while down: {delivered}");
    let requests = requests_for(&receiver, &id);
    ensure!(requests.len() == 1, "delivered once, not {} times", requests.len());
    requests[0].verified(SECRET)?;
    ensure!(requests[0].at >= back, "received at {}, while the receiver was down until {back}", requests[0].at);
    Ok(())
}

/// A receiver answering 410 Gone: one request, no retry, the delivery `failed` with the status,
/// and the reminder in the notifier's dead-letter topic.
pub async fn a_receiver_that_is_gone_fails_without_retries_into_the_dead_letter_topic(
    system: &mut TestSystem,
) -> anyhow::Result<()> {
    let api = system.api(USER)?;
    let receiver = Receiver::start().await?;
    receiver.answer(410);
    set_channels(&api, receiver.url(), None).await?;
    let (id, _) = task_reminding_in(&api, "Cancel the old plan", 2).await?;
    let failed = delivery_when(&api, &id, "webhook", "the failed delivery", |d| d["status"] == "failed").await?;
    ensure!(failed["attempts"] == 1, "no retry after 410: {failed}");
    ensure!(failed["last_error"].as_str().is_some_and(|e| e.contains("410")), "the error names the status: {failed}");
    let dead = eventually("the reminder in notifier-dlq", SETTLE, || async {
        let messages = system.messages("notifier-dlq").await?;
        Ok(messages.into_iter().find(|m| m["data"]["task_id"] == id.as_str()))
    })
    .await?;
    ensure!(dead["type"] == "todo.reminder.due", "dead letter: {dead}");
    // A retry could only come from a Dapr job for attempt 2, scheduled with the first attempt's
    // outcome: there is none, and no attempt is planned.
    ensure!(failed["next_attempt_at"].is_null(), "no next attempt after 410: {failed}");
    let event_id = dead["id"].as_str().context("the dead letter's CloudEvent id")?;
    let job = retry_job_name(event_id, Channel::Webhook, 2);
    let scheduled = reqwest::get(format!("{}/v1.0-alpha1/jobs/{job}", system.sidecar("notifier")?)).await?;
    ensure!(scheduled.status() != StatusCode::OK, "a retry job after 410: {}", scheduled.text().await?);
    ensure!(requests_for(&receiver, &id).len() == 1, "no retry after 410");
    Ok(())
}
