//! Stage 6: the `devhost` binary end to end: it reads a run file, starts the app as a process
//! with its environment, prefixes its output, enforces the API token, survives `kill -9`
//! without losing accepted publishes or state, and stops the app with SIGTERM.
//!
//! The app is this very test binary, re-run by devhost: it has its own `main` (`harness =
//! false` in Cargo.toml), which plays the fake app when started with `APP_ID` set and runs the
//! test otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Sidecar;
use serde_json::json;

fn main() {
    match std::env::var("APP_ID") {
        Ok(app_id) => fake_app_process(app_id),
        Err(_) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(the_binary_runs_apps_survives_kill_9_and_stops_cleanly());
            println!("test the_binary_runs_apps_survives_kill_9_and_stops_cleanly ... ok");
        }
    }
}

/// The fake app: records deliveries and its environment in `$FAKE_APP_OUT`.
fn fake_app_process(app_id: String) {
    let out = std::env::var("FAKE_APP_OUT").unwrap();
    let port: u16 = std::env::var("APP_PORT").unwrap().parse().unwrap();
    let write = move |line: String| {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&out).unwrap();
        // One write per line: `writeln!` writes the text and the newline apart, and two
        // handlers appending at once then interleave ("event 3event 4", "").
        f.write_all(format!("{line}\n").as_bytes()).unwrap();
    };
    write(format!(
        "env {} {} {} {}",
        app_id,
        std::env::var("DAPR_HTTP_PORT").unwrap(),
        std::env::var("DAPR_API_TOKEN").unwrap_or_default(),
        std::process::id()
    ));
    println!("fake app {app_id} listening on {port}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let w = write.clone();
        let router = axum::Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route(
                "/dapr/subscribe",
                axum::routing::get(|| async {
                    axum::Json(json!([{"pubsubname": "pubsub", "topic": "t", "routes": {"default": "/in"}}]))
                }),
            )
            .route(
                "/in",
                axum::routing::post(move |body: axum::body::Bytes| {
                    let w = w.clone();
                    async move {
                        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        w(format!("event {}", v["data"]["n"]));
                        axum::Json(json!({"status": "SUCCESS"}))
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        tokio::select! {
            _ = axum::serve(listener, router) => {}
            _ = term.recv() => write("terminated".to_owned()),
        }
    });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Devhost {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Devhost {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_devhost"))
            .args(["--run-file", "dapr.yaml", "--db", "state/devhost.sqlite", "--grace-secs", "5"])
            .current_dir(dir)
            .env("DAPR_API_TOKEN", "tok")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self { child, lines }
    }

    /// Reads output lines until one contains `needle`; returns everything read.
    fn wait_line(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return seen;
                }
            }
        }
        panic!("devhost never printed {needle:?}; got {seen:#?}");
    }
}

fn read(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

fn wait_file(path: &Path, what: &str, f: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let lines = read(path);
        if f(&lines) {
            return lines;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {lines:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(pid: i32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
}

async fn the_binary_runs_apps_survives_kill_9_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let resources = dir.path().join("resources");
    std::fs::create_dir(&resources).unwrap();
    std::fs::write(resources.join("pubsub.yaml"), common::PUBSUB).unwrap();
    std::fs::write(resources.join("state.yaml"), common::state_store("s", "")).unwrap();
    let out = dir.path().join("app.out");
    let (app_port, sidecar_port) = (free_port(), free_port());
    let exe = std::env::current_exe().unwrap();
    let run_file = format!(
        "version: 1\ncommon:\n  resourcesPath: ./resources\n  env:\n    FAKE_APP_OUT: {out}\napps:\n  - appID: cli-app\n    appDirPath: .\n    appPort: {app_port}\n    daprHTTPPort: {sidecar_port}\n    command: [\"{exe}\"]\n",
        out = out.display(),
        exe = exe.display(),
    );
    std::fs::write(dir.path().join("dapr.yaml"), run_file).unwrap();

    let devhost = Devhost::start(dir.path());
    let printed = devhost.wait_line("apps are ready");
    assert!(
        printed
            .iter()
            .any(|l| l.contains("cli-app") && l.contains(&format!("sidecar http://127.0.0.1:{sidecar_port}"))),
        "{printed:#?}"
    );
    assert!(printed.iter().any(|l| l.starts_with("[cli-app] fake app cli-app listening")), "{printed:#?}");
    let env = wait_file(&out, "the app's environment", |l| l.iter().any(|l| l.starts_with("env ")));
    let fields: Vec<&str> = env[0].split(' ').collect();
    assert_eq!(&fields[1..4], ["cli-app", &sidecar_port.to_string(), "tok"]);
    let app_pid: i32 = fields[4].parse().unwrap();

    let sidecar = Sidecar::new(format!("http://127.0.0.1:{sidecar_port}")).with_token("tok");
    assert_eq!(Sidecar::new(sidecar.base.clone()).get("/v1.0/metadata").await.status, 401);
    assert_eq!(sidecar.post_json("/v1.0/state/s", &json!([{"key": "k", "value": "kept"}])).await.status, 204);
    for n in 0..50 {
        assert_eq!(
            sidecar.publish("pubsub", "t", &json!({"n": n}), &[("partitionKey", &format!("k{}", n % 5))]).await,
            204
        );
    }
    // kill -9 right after the last accepted publish (and the orphaned app with it).
    let mut devhost = devhost;
    devhost.child.kill().unwrap();
    devhost.child.wait().unwrap();
    kill(app_pid, nix::sys::signal::Signal::SIGKILL);
    // The killed app is gone once its port is free (the restart's app binds it again).
    let taken = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_err();
    common::wait_for(Duration::from_secs(15), "the killed processes to free their ports", || {
        let busy: Vec<u16> = [app_port, sidecar_port].into_iter().filter(|p| taken(*p)).collect();
        if busy.is_empty() { Ok(()) } else { Err(format!("ports {busy:?} still taken")) }
    })
    .await;

    let devhost = Devhost::start(dir.path());
    devhost.wait_line("apps are ready");
    let events = wait_file(&out, "every accepted message", |lines| {
        let got: std::collections::HashSet<&str> = lines.iter().filter_map(|l| l.strip_prefix("event ")).collect();
        got.len() == 50
    });
    assert!(events.iter().filter(|l| l.starts_with("event ")).count() >= 50);
    assert_eq!(sidecar.get("/v1.0/state/s/k").await.json(), json!("kept"));

    // SIGTERM: the app gets SIGTERM, devhost exits cleanly.
    let mut devhost = devhost;
    kill(i32::try_from(devhost.child.id()).unwrap(), nix::sys::signal::Signal::SIGTERM);
    let status = devhost.child.wait().unwrap();
    assert!(status.success(), "devhost exit status {status}");
    wait_file(&out, "the app's SIGTERM", |l| l.iter().any(|l| l == "terminated"));
}
