//! The README's "devhost for your own Dapr app", run as a newcomer would run it: the two
//! JavaScript apps of `examples/node-orders`, written with nothing but the official Dapr
//! JavaScript SDK (`@dapr/dapr`, pinned by the example's `package-lock.json` and installed with
//! `npm ci` by `scripts/node-example.sh` into a directory cached outside the repo), under devhost
//! with the example's own `dapr.yaml` and resources.
//!
//! What the example does is what the test checks, through the sidecars' state API: `checkout`
//! reads a secret from a `secretstores.local.file` store, publishes orders to `pubsub` (the SDK's
//! `DaprServer` in `orders` has no `/healthz` and is subscribed all the same), `orders` stores
//! each one in `statestore`, and `checkout` reads each back through service invocation before it
//! records it as confirmed. Every SDK call carries the sidecar's API token (`DAPR_API_TOKEN`).
//!
//! Without Node.js 20+ and npm the test fails with a message saying what to install; it never
//! skips. `make test` builds devhost first.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;
use system_tests::host::free_port;
use system_tests::{installed, workspace_root};

const API_TOKEN: &str = "node-example-dapr-api-token";
/// Three orders, two seconds apart, each confirmed within a few hundred milliseconds; most of
/// this is for a loaded machine and Node's start.
const CONFIRMED_WITHIN: Duration = Duration::from_secs(90);

/// The directory whose `node_modules` holds the example's dependencies, installed on first use.
async fn sdk() -> anyhow::Result<PathBuf> {
    let dir = installed(
        "scripts/node-example.sh",
        "Node.js 20+ with npm (apt-get install nodejs npm) and, on first use, the npm registry",
    )
    .await?;
    ensure!(
        dir.join("node_modules/@dapr/dapr").is_dir(),
        "node-example.sh printed {}, which holds no SDK",
        dir.display()
    );
    Ok(dir)
}

/// A copy of the example in `into`, its `node_modules` linked to the installed one, its fixed
/// ports replaced by free ones; the run file's path.
fn copy_example(into: &Path, modules: &Path) -> anyhow::Result<PathBuf> {
    let example = workspace_root().join("examples/node-orders");
    for name in ["orders.js", "checkout.js", "secrets.json", "package.json"] {
        std::fs::copy(example.join(name), into.join(name)).with_context(|| format!("copying {name}"))?;
    }
    std::fs::create_dir_all(into.join("resources"))?;
    for entry in std::fs::read_dir(example.join("resources"))? {
        let path = entry?.path();
        let name = path.file_name().context("a resource file name")?;
        std::fs::copy(&path, into.join("resources").join(name))?;
    }
    std::os::unix::fs::symlink(modules.join("node_modules"), into.join("node_modules"))?;
    let mut run_file = std::fs::read_to_string(example.join("dapr.yaml"))?;
    for fixed in ["appPort: 5001", "daprHTTPPort: 3601", "daprHTTPPort: 3602"] {
        let (field, _) = fixed.split_once(": ").context("field: port")?;
        ensure!(run_file.contains(fixed), "examples/node-orders/dapr.yaml no longer has `{fixed}`");
        run_file = run_file.replace(fixed, &format!("{field}: {}", free_port()?));
    }
    let path = into.join("dapr.yaml");
    std::fs::write(&path, run_file)?;
    Ok(path)
}

/// `key` of `statestore` through an app's sidecar; `None` while it is missing.
async fn state(http: &reqwest::Client, sidecar_port: u16, key: &str) -> anyhow::Result<Option<Value>> {
    let response = http
        .get(format!("http://127.0.0.1:{sidecar_port}/v1.0/state/statestore/{key}"))
        .header("dapr-api-token", API_TOKEN)
        .send()
        .await?;
    match response.status().as_u16() {
        200 => Ok(Some(serde_json::from_slice(&response.bytes().await?)?)),
        204 => Ok(None),
        status => bail!("state {key}: {status} {}", response.text().await.unwrap_or_default()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_example_runs_on_devhost_with_the_official_sdk() -> anyhow::Result<()> {
    let modules = sdk().await?;
    let dir = tempfile::tempdir()?;
    let run_file = copy_example(dir.path(), &modules)?;
    // As the README runs it: from the example's directory, where the secret store's relative
    // `secretsFile` is (daprd, too, reads it relative to its working directory). The only test
    // of this binary, so the process-wide directory is this test's.
    std::env::set_current_dir(dir.path())?;
    let settings = devhost::system::Settings {
        database: dir.path().join("devhost.sqlite").display().to_string(),
        api_token: Some(API_TOKEN.to_owned()),
        grace: Duration::from_secs(5),
        ready_timeout: Some(Duration::from_secs(60)),
        ..devhost::system::Settings::default()
    };
    let system = devhost::system::System::start(&run_file, &settings).await?;
    let sidecar = |app: &str| system.apps.iter().find(|a| a.app_id == app).map(|a| a.sidecar_port);
    let (orders, checkout) = (sidecar("orders").context("orders")?, sidecar("checkout").context("checkout")?);
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build()?;

    let started = Instant::now();
    let confirmed = loop {
        let confirmed = state(&http, checkout, "confirmed").await?.unwrap_or_default();
        if confirmed.as_array().is_some_and(|c| c.len() >= 3) {
            break confirmed;
        }
        if started.elapsed() > CONFIRMED_WITHIN {
            system.stop().await;
            bail!(
                "checkout confirmed {confirmed} within {CONFIRMED_WITHIN:?}, not three orders (the apps' logs are above)"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("three orders confirmed after {:?}: {confirmed}", started.elapsed());
    let result = async {
        for (n, entry) in confirmed.as_array().into_iter().flatten().take(3).enumerate() {
            // The coupon went from the secret store through pub/sub and the orders app's state,
            // and came back through service invocation.
            ensure!(entry["id"] == n + 1 && entry["coupon"] == "WELCOME10", "confirmed entry {n}: {entry}");
            let order = state(&http, orders, &format!("order-{}", n + 1)).await?;
            let order = order.with_context(|| format!("order-{} is not in the orders app's state", n + 1))?;
            ensure!(order["status"] == "received" && order["coupon"] == "WELCOME10", "order {}: {order}", n + 1);
        }
        // Each app's state is its own (keyPrefix appid): checkout's key is not the orders app's.
        ensure!(state(&http, orders, "confirmed").await?.is_none(), "checkout's state leaked into orders'");
        Ok(())
    }
    .await;
    system.stop().await;
    result
}
