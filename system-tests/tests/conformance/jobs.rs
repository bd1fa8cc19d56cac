//! Jobs: schedule/get/delete and their errors, the callback request, failure policies.

use super::*;

async fn jobs_calls(b: &Backend) -> anyhow::Result<Steps> {
    let mut s = Steps::default();
    let rec = &b.app.recorder;
    let offset = chrono::FixedOffset::east_opt(2 * 3600).context("offset")?;
    let due = |secs: i64| {
        (chrono::Utc::now() + chrono::Duration::seconds(secs))
            .with_timezone(&offset)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let job = |name: &str, body: Value| b.call(Method::POST, format!("/v1.0-alpha1/jobs/{name}"), Some(body));
    let get = |name: &str| b.call(Method::GET, format!("/v1.0-alpha1/jobs/{name}"), None);
    let policy = json!({"constant": {"interval": "1s", "maxRetries": 2}});

    let due_ok = due(4);
    let ok = json!({"dueTime": due_ok, "data": {"answer": "ok", "n": 1}, "overwrite": true, "failurePolicy": policy});
    s.answer("schedule", &job("conf-ok", ok.clone()).await?);
    let got = get("conf-ok").await?;
    let mut observed = got.observed();
    if got.body["dueTime"] == due_ok {
        observed["body"]["dueTime"] = json!("<as sent>");
    }
    s.add("get", observed);
    let stable = b.call(Method::GET, "/v1.0/jobs/conf-ok", None).await?;
    s.add("get on the stable path", json!({"status": stable.status.as_u16(), "same": stable.body == got.body}));
    let mut again = ok.clone();
    again["overwrite"] = json!(false);
    s.answer("schedule an existing name without overwrite", &job("conf-ok", again).await?);
    s.answer(
        "schedule with the name in the body",
        &job("conf-named", json!({"name": "conf-named", "dueTime": due(60)})).await?,
    );
    s.answer("schedule without schedule or dueTime", &job("conf-empty", json!({"data": {}})).await?);
    s.answer("schedule with an invalid dueTime", &job("conf-bad-due", json!({"dueTime": "tomorrow"})).await?);
    s.answer("schedule with an invalid schedule", &job("conf-bad-cron", json!({"schedule": "every day"})).await?);
    s.answer(
        "schedule with a millisecond interval",
        &job("conf-ms", json!({"dueTime": due(60), "failurePolicy": {"constant": {"interval": "500ms"}}})).await?,
    );
    s.answer(
        "schedule with repeats of the wrong type",
        &job("conf-repeats", json!({"dueTime": due(60), "repeats": "many"})).await?,
    );
    s.answer("schedule a name with punctuation", &job("conf!job@1", json!({"dueTime": due(60)})).await?);
    s.answer("get a name with punctuation", &get("conf!job@1").await?);
    s.answer("schedule a name with an escaped slash", &job("conf%2Fjob", json!({"dueTime": due(60)})).await?);
    s.answer("schedule without data", &job("conf-nodata", json!({"dueTime": due(60)})).await?);
    s.answer("get of a job without data", &get("conf-nodata").await?);
    s.answer("schedule with null data", &job("conf-nulldata", json!({"dueTime": due(60), "data": null})).await?);
    s.answer("get of a job with null data", &get("conf-nulldata").await?);
    s.answer("schedule with string data", &job("conf-strdata", json!({"dueTime": due(60), "data": "text"})).await?);
    s.answer("get of a job with string data", &get("conf-strdata").await?);
    s.answer("get of a missing job", &get("conf-missing").await?);
    s.answer("schedule far away", &job("conf-far", json!({"dueTime": due(3600), "data": {"answer": "ok"}})).await?);
    s.answer("delete", &b.call(Method::DELETE, "/v1.0-alpha1/jobs/conf-far", None).await?);
    s.answer("get after delete", &get("conf-far").await?);
    s.answer("delete of a missing job", &b.call(Method::DELETE, "/v1.0-alpha1/jobs/conf-far", None).await?);

    // Callbacks under each answer.
    let cases = [
        ("conf-500", json!({"answer": "500"}), policy.clone()),
        ("conf-500-once", json!({"answer": "500-once"}), policy.clone()),
        ("conf-404", json!({"answer": "404"}), policy.clone()),
        ("conf-drop-policy", json!({"answer": "500"}), json!({"drop": {}})),
    ];
    for (name, data, policy) in &cases {
        let body = json!({"dueTime": due(4), "data": data, "overwrite": true, "failurePolicy": policy});
        s.answer(&format!("schedule {name}"), &job(name, body).await?);
    }
    s.answer("schedule conf-fire-nodata", &job("conf-fire-nodata", json!({"dueTime": due(4)})).await?);
    s.answer("schedule conf-fire-null", &job("conf-fire-null", json!({"dueTime": due(4), "data": null})).await?);
    system_tests::api::eventually("every job's callbacks", Duration::from_secs(60), || async {
        let done = !rec.to("/job/conf-ok").is_empty()
            && rec.to("/job/conf-500").len() >= 3
            && rec.to("/job/conf-500-once").len() >= 2
            && !rec.to("/job/conf-404").is_empty()
            && !rec.to("/job/conf-drop-policy").is_empty()
            && !rec.to("/job/conf-fire-null").is_empty();
        Ok(done.then_some(()))
    })
    .await?;
    // Late retries arrive meanwhile; a job without data (due with the others) has used up its
    // 1 + 3 attempts, a second apart, by then.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let callback = rec.to("/job/conf-ok").first().cloned().context("no callback")?;
    s.add(
        "callback request",
        json!({"method": callback.method, "path": callback.path, "headers": delivery_headers(&callback), "body": callback.body}),
    );
    for name in ["conf-fire-nodata", "conf-fire-null"] {
        let calls = rec.to(&format!("/job/{name}"));
        s.add(
            &format!("callback of {name}"),
            json!({"calls": calls.len(), "body": calls.first().map(|c| c.body.clone()),
                   "headers": calls.first().map(delivery_headers)}),
        );
    }
    for name in ["conf-ok", "conf-500", "conf-500-once", "conf-404", "conf-drop-policy"] {
        let calls = rec.to(&format!("/job/{name}"));
        let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].at.duration_since(w[0].at)).collect();
        println!("{}: callbacks of {name} {gaps:.3?} apart", b.name);
        // To the nearest half second: the interval is 1 s on both, give or take a few ms.
        let rounded: Vec<u128> = gaps.iter().map(|g| (g.as_millis() + 250) / 500).collect();
        s.add(&format!("callbacks of {name}"), json!({"calls": calls.len(), "gaps in half seconds": rounded}));
    }
    s.answer("get after the one-shot job fired", &get("conf-ok").await?);
    s.answer("get after the job without data was due", &get("conf-fire-nodata").await?);
    Ok(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_and_their_callbacks_as_daprd_does() -> anyhow::Result<()> {
    differential("jobs", &[], |b| Box::pin(jobs_calls(b))).await
}
