//! `cost [--svg FILE] [--doc FILE] RENDERED…`: what the shipped settings cost, per traffic
//! profile, against always-on and a CPU HPA, with the sweeps of each setting. `RENDERED` is what
//! `kubectl kustomize manifests/overlays/cloud` prints (multi-document YAML; `-` reads stdin) or
//! the same documents as JSON; `make cost` runs it. Prices: EKS on Fargate (see `cost::price`).
//!
//! `--svg FILE` writes the chart (docs/cost.svg); `--doc FILE` rewrites the generated section
//! of FILE (docs/cost.md) between its marker lines. cost/tests/doc.rs checks both are current.

use std::io::Read as _;
use std::process::ExitCode;

use cost::doc::{Report, TIMELINE, section, splice, timeline};
use cost::price::Prices;
use cost::settings::functions_from_documents;
use cost::svg::chart;

fn run() -> Result<String, String> {
    let mut args = std::env::args().skip(1);
    let (mut svg, mut doc, mut inputs) = (None, None, vec![]);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--svg" => svg = Some(args.next().ok_or("--svg needs a file")?),
            "--doc" => doc = Some(args.next().ok_or("--doc needs a file")?),
            "-h" | "--help" => return Err("usage: cost [--svg FILE] [--doc FILE] RENDERED.yaml|-…".into()),
            _ => inputs.push(arg),
        }
    }
    if inputs.is_empty() {
        return Err("usage: cost [--svg FILE] [--doc FILE] RENDERED.yaml|-… (see cost/src/main.rs)".into());
    }
    let mut docs = vec![];
    for input in &inputs {
        let text = if input == "-" {
            let mut t = String::new();
            std::io::stdin().read_to_string(&mut t).map_err(|e| format!("reading stdin: {e}"))?;
            t
        } else {
            std::fs::read_to_string(input).map_err(|e| format!("reading {input}: {e}"))?
        };
        docs.extend(cost::documents::parse(&text).map_err(|e| format!("{input}: {e}"))?);
    }
    let functions = functions_from_documents(&docs).map_err(|e| format!("the rendered documents: {e}"))?;
    if functions.is_empty() {
        return Err("no ScaledObject in the documents given".into());
    }
    let report = Report::new(&functions, Prices::fargate_eks());
    let text = section(&functions, &report);
    if let Some(path) = svg {
        let (title, seconds) = timeline(&functions, TIMELINE.0, TIMELINE.1).unwrap_or_default();
        std::fs::write(&path, chart(&report.rows, &title, &seconds)).map_err(|e| format!("writing {path}: {e}"))?;
        eprintln!("wrote {path}");
    }
    if let Some(path) = doc {
        let old = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
        let new = splice(&old, &text).map_err(|e| format!("{path}: {e}"))?;
        std::fs::write(&path, new).map_err(|e| format!("writing {path}: {e}"))?;
        eprintln!("updated the generated section of {path}");
    }
    Ok(text)
}

fn main() -> ExitCode {
    match run() {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cost: {e}");
            ExitCode::FAILURE
        }
    }
}
