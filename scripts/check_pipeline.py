#!/usr/bin/env python3
"""Supply-chain rules for the pipeline that actionlint and zizmor do not express.

scripts/check-manifests.sh (make lint, CI) runs it twice: `--self-test` first, which breaks
each rule in an in-memory copy of the real files and fails unless every break is reported
(so a rule cannot silently stop biting), then on the repository itself.

    python3 scripts/check_pipeline.py [--self-test] [REPO_ROOT]

Rules (each names the file it reads):
  workflows   every action pinned by a full commit SHA with its version in a comment; no
              default permissions (top-level `permissions: {}`).
  ci.yml      a job that can write anything (packages, id-token, ...) runs only on a push to
              main, so a pull request gets at most `packages: read` and pushes nothing; no
              push, cache write, signature or re-tag happens in any other job. Every pushed
              image is built by docker/build-push-action with `sbom: true` and
              `provenance: mode=max`, for all six functions; exactly one job holds
              `id-token: write`, it signs with cosign (keyless) and checks out no code; every
              function image is scanned by Trivy (HIGH,CRITICAL, exit code 1, .trivyignore)
              in a job the pushing job needs; one job runs all four `cargo deny` checks.
  cd.yml      the `production` environment is only entered from main or a v* tag; id-token
              only there (the cloud login is OIDC: a known login action, no kubeconfig
              secret); the deploy script gets the images as digests (IMAGE_DIGESTS_FILE) that
              a job it needs verified with `cosign verify` against CI's identity on main;
              `packages: write` only to tag a release.
  Dockerfile  every base/builder image is `name:tag@sha256:<digest>`.
  dependabot  cargo, github-actions and docker are all kept current.
  .trivyignore  every accepted finding has a comment above it and an `exp:` date.
  deny.toml   advisories, licenses, bans and sources configured; only crates.io; no copyleft
              license allowed. Makefile `lint` runs the offline checks (licenses bans sources).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import yaml

FUNCTIONS = ["task-api", "create-task", "on-task-completed", "fire-reminder", "audit-writer", "notifier"]
FILES = {
    "ci": ".github/workflows/ci.yml",
    "cd": ".github/workflows/cd.yml",
    "dependabot": ".github/dependabot.yml",
    "dockerfile": "Dockerfile",
    "trivyignore": ".trivyignore",
    "deny": "deny.toml",
    "makefile": "Makefile",
}
MAIN_PUSH = ("github.event_name == 'push'", "github.ref == 'refs/heads/main'")
PROD_REFS = ("github.ref == 'refs/heads/main'", "startsWith(github.ref, 'refs/tags/v')")
OIDC_LOGIN = re.compile(
    r"^(aws-actions/configure-aws-credentials|google-github-actions/auth|azure/login)@"
)
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)\s*(?P<comment>#.*)?$")
FULL_SHA = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v?\d+(\.\d+)*\b")
COPYLEFT = re.compile(r"\b(A?GPL|LGPL|MPL|EUPL|SSPL|CDDL|OSL|EPL)\b", re.IGNORECASE)


def squash(text: object) -> str:
    return " ".join(str(text or "").split())


def steps(job: dict) -> list[dict]:
    return [s for s in job.get("steps") or [] if isinstance(s, dict)]


def uses(step: dict, action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


def permissions(job: dict) -> dict:
    perms = job.get("permissions") or {}
    return perms if isinstance(perms, dict) else {"*": perms}


def needs(jobs: dict, name: str) -> set[str]:
    """Every job `name` waits for, directly or not."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        direct = jobs.get(todo.pop(), {}).get("needs") or []
        for dep in [direct] if isinstance(direct, str) else direct:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def check_pins(label: str, text: str, errors: list[str]) -> None:
    for number, line in enumerate(text.splitlines(), 1):
        m = USES.match(line)
        if not m or m.group("ref").startswith("./"):
            continue
        ref = m.group("ref").strip("'\"")
        if not FULL_SHA.match(ref):
            errors.append(f"{label}:{number}: `{ref}` is not pinned by a full commit SHA")
        elif not VERSION_COMMENT.search(m.group("comment") or ""):
            errors.append(f"{label}:{number}: `{ref}` has no `# vX.Y.Z` comment naming the version")


def load_workflow(label: str, text: str, errors: list[str]) -> dict:
    doc = yaml.safe_load(text) or {}
    if doc.get("permissions") != {}:
        errors.append(f"{label}: top-level `permissions: {{}}` missing (jobs must ask for what they need)")
    return doc.get("jobs") or {}


def check_ci(text: str, errors: list[str]) -> None:
    label = FILES["ci"]
    check_pins(label, text, errors)
    jobs = load_workflow(label, text, errors)

    def gated(job: dict) -> bool:
        cond = squash(job.get("if"))
        return all(part in cond for part in MAIN_PUSH) and "||" not in cond

    pushers, signers, scanned = [], [], {}
    for name, job in jobs.items():
        perms = permissions(job)
        writes = sorted(k for k, v in perms.items() if v == "write" or k == "*")
        is_gated = gated(job)
        if writes and not is_gated:
            errors.append(
                f"{label}: job `{name}` has write permissions {writes} but may run on a pull request "
                f"(its `if:` must require {' && '.join(MAIN_PUSH)})"
            )
        for step in steps(job):
            run = str(step.get("run", ""))
            with_ = step.get("with") or {}
            pushing = (
                (uses(step, "docker/build-push-action") and str(with_.get("push")).lower() == "true")
                or "cache-to" in with_
                or re.search(r"docker push|--push\b|PUSH=1|cosign sign|imagetools create|--cache-to", run)
            )
            if pushing and not is_gated:
                errors.append(f"{label}: job `{name}` pushes or signs ({step.get('name') or step.get('uses')}) but may run on a pull request")
            if uses(step, "docker/build-push-action"):
                if str(with_.get("push")).lower() != "true":
                    errors.append(f"{label}: job `{name}`: build-push-action step without `push: true` (the images job builds with scripts/images.sh)")
                if str(with_.get("sbom")).lower() != "true":
                    errors.append(f"{label}: job `{name}`: build-push-action without `sbom: true`")
                if squash(with_.get("provenance")) != "mode=max":
                    errors.append(f"{label}: job `{name}`: build-push-action without `provenance: mode=max`")
                fn = squash(with_.get("build-args")).removeprefix("FUNCTION=")
                pushers.append((name, fn))
            if uses(step, "aquasecurity/trivy-action"):
                severity = set(squash(with_.get("severity")).split(","))
                ok = (
                    {"HIGH", "CRITICAL"} <= severity
                    and squash(with_.get("exit-code")) == "1"
                    and squash(with_.get("trivyignores")) == ".trivyignore"
                    and str(with_.get("ignore-unfixed", "false")).lower() == "false"
                )
                if not ok:
                    errors.append(
                        f"{label}: job `{name}`: Trivy step must fail (exit-code 1) on HIGH,CRITICAL "
                        "with trivyignores: .trivyignore (and not ignore unfixed findings)"
                    )
                    continue
                image = squash(with_.get("image-ref"))
                for fn in FUNCTIONS:
                    if re.search(rf"/{re.escape(fn)}:", image):
                        scanned[fn] = name
        if perms.get("id-token") == "write":
            signers.append(name)
            if not any(uses(s, "sigstore/cosign-installer") for s in steps(job)) or not any(
                "cosign sign" in str(s.get("run", "")) for s in steps(job)
            ):
                errors.append(f"{label}: job `{name}` holds id-token: write but does not sign with cosign")
            if any(uses(s, "actions/checkout") for s in steps(job)):
                errors.append(f"{label}: job `{name}` holds id-token: write and checks out code (sign only digests)")
    if len(signers) != 1:
        errors.append(f"{label}: exactly one job (the signing one) may hold id-token: write, found {signers or 'none'}")
    pushed = {fn for _, fn in pushers}
    if pushed != set(FUNCTIONS):
        errors.append(f"{label}: build-push-action must publish all six functions, found {sorted(pushed)}")
    for fn in FUNCTIONS:
        if fn not in scanned:
            errors.append(f"{label}: no Trivy scan of the {fn} image")
    for job_name, fn in pushers:
        if fn in scanned and scanned[fn] not in needs(jobs, job_name):
            errors.append(f"{label}: job `{job_name}` pushes {fn} without needing its scan (job `{scanned[fn]}`)")
    for signer in signers:
        if not any(p in needs(jobs, signer) for p, _ in pushers):
            errors.append(f"{label}: signing job `{signer}` does not need the job that pushes the images")
    deny_all = re.compile(r"\bdeny\b[^\n]*\bcheck\b(?![^\n]*\b(advisories|licenses|bans|sources)\b)")
    if not any(deny_all.search(str(s.get("run", ""))) for job in jobs.values() for s in steps(job)):
        errors.append(f"{label}: no job runs `cargo deny check` with all four checks")


def check_cd(text: str, errors: list[str]) -> None:
    label = FILES["cd"]
    check_pins(label, text, errors)
    jobs = load_workflow(label, text, errors)
    if re.search(r"secrets\.[A-Za-z0-9_]*KUBE", text, re.IGNORECASE) or "/.kube/config" in text:
        errors.append(f"{label}: a kubeconfig comes from a secret; log in through OIDC instead")
    deploy_jobs = []
    for name, job in jobs.items():
        perms = permissions(job)
        cond = squash(job.get("if"))
        environment = job.get("environment")
        env_name = environment.get("name") if isinstance(environment, dict) else environment
        if env_name == "production":
            extra = cond
            for part in PROD_REFS:
                extra = extra.replace(part, "")
            if not all(part in cond for part in PROD_REFS) or squash(extra) != "||":
                errors.append(
                    f"{label}: job `{name}` enters `production` but its `if:` is not exactly "
                    f"{' || '.join(PROD_REFS)}"
                )
            if not any(OIDC_LOGIN.match(str(s.get("uses", ""))) for s in steps(job)):
                errors.append(f"{label}: job `{name}` deploys without an OIDC cloud login step")
        if perms.get("id-token") == "write" and env_name != "production":
            errors.append(f"{label}: job `{name}` holds id-token: write outside the production environment")
        if perms.get("packages") == "write" and "github.ref_type == 'tag'" not in cond:
            errors.append(f"{label}: job `{name}` can write packages but does not run only for a tag")
        for step in steps(job):
            if "deploy-cloud.sh" in str(step.get("run", "")):
                deploy_jobs.append(name)
                env = step.get("env") or {}
                if not env.get("IMAGE_DIGESTS_FILE"):
                    errors.append(f"{label}: job `{name}` deploys without IMAGE_DIGESTS_FILE (images by digest)")
                if env_name != "production":
                    errors.append(f"{label}: job `{name}` deploys outside the production environment")
    if not deploy_jobs:
        errors.append(f"{label}: no step runs scripts/deploy-cloud.sh")
    def verifies(run: str) -> bool:
        return all(
            part in run
            for part in (
                "cosign verify ",
                "--certificate-identity",
                "/.github/workflows/ci.yml@refs/heads/main",
                "--certificate-oidc-issuer https://token.actions.githubusercontent.com",
            )
        )

    for name in deploy_jobs:
        if not any(verifies(str(s.get("run", ""))) for dep in needs(jobs, name) for s in steps(jobs.get(dep, {}))):
            errors.append(f"{label}: job `{name}` deploys without a prior `cosign verify` against ci.yml@refs/heads/main")


def check_dockerfile(text: str, errors: list[str]) -> None:
    stages: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^\s*FROM\s+(?:--\S+\s+)*(?P<image>\S+)(?:\s+AS\s+(?P<stage>\S+))?", line, re.IGNORECASE)
        if not m:
            continue
        image = m.group("image")
        prefix = image.split("${")[0]
        if image in stages or ("${" in image and prefix and any(s.startswith(prefix) for s in stages)):
            pass
        elif not re.search(r":[^/@]+@sha256:[0-9a-f]{64}$", image):
            errors.append(f"Dockerfile:{number}: `{image}` is not pinned as name:tag@sha256:<digest>")
        if m.group("stage"):
            stages.add(m.group("stage"))


def check_dependabot(text: str, errors: list[str]) -> None:
    doc = yaml.safe_load(text) or {}
    ecosystems = {u.get("package-ecosystem") for u in doc.get("updates") or []}
    for wanted in ("cargo", "github-actions", "docker"):
        if wanted not in ecosystems:
            errors.append(f"{FILES['dependabot']}: no `{wanted}` updates")


def check_trivyignore(text: str | None, errors: list[str]) -> None:
    if text is None:
        errors.append(".trivyignore: missing (it documents the accepted findings, even when there are none)")
        return
    previous = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            if not previous.startswith("#"):
                errors.append(f".trivyignore:{number}: `{stripped}` has no comment above it saying why")
            if not re.search(r"\bexp:\d{4}-\d{2}-\d{2}\b", stripped):
                errors.append(f".trivyignore:{number}: `{stripped}` has no exp:YYYY-MM-DD")
        if stripped:
            previous = stripped


def check_deny(text: str | None, makefile: str, errors: list[str]) -> None:
    if text is None:
        errors.append("deny.toml: missing")
        return
    doc = tomllib.loads(text)
    for section in ("advisories", "licenses", "bans", "sources"):
        if section not in doc:
            errors.append(f"deny.toml: no [{section}] section")
    sources = doc.get("sources", {})
    if sources.get("unknown-registry") != "deny" or sources.get("unknown-git") != "deny":
        errors.append("deny.toml: [sources] must deny unknown registries and git sources")
    for lic in doc.get("licenses", {}).get("allow", []):
        if COPYLEFT.search(lic):
            errors.append(f"deny.toml: copyleft license `{lic}` allowed")
    if not re.search(r"deny\b[^\n]*\bcheck licenses bans sources\b", makefile):
        errors.append("Makefile: `lint` does not run `cargo deny check licenses bans sources`")


def check(files: dict[str, str | None]) -> list[str]:
    errors: list[str] = []
    check_ci(files["ci"] or "", errors)
    check_cd(files["cd"] or "", errors)
    check_dockerfile(files["dockerfile"] or "", errors)
    check_dependabot(files["dependabot"] or "", errors)
    check_trivyignore(files["trivyignore"], errors)
    check_deny(files["deny"], files["makefile"] or "", errors)
    return errors


# (file, text to find, replacement, what the break means): each must produce an error.
BREAKS = [
    ("ci", "packages: read # the BuildKit cache that `publish`", "packages: write # the BuildKit cache that `publish`", "a pull-request job may write packages"),
    ("ci", "    if: github.event_name == 'push' && github.ref == 'refs/heads/main'\n    runs-on: ubuntu-24.04\n    timeout-minutes: 60", "    runs-on: ubuntu-24.04\n    timeout-minutes: 60", "the publishing job runs on pull requests"),
    ("ci", "CACHE_REF=\"ghcr.io/${GITHUB_REPOSITORY,,}/build-cache:main\" scripts/images.sh", "CACHE_REF=x PUSH=1 scripts/images.sh", "a pull-request job pushes"),
    ("ci", "sbom: true", "sbom: false", "an image without SBOM"),
    ("ci", "provenance: mode=max", "provenance: mode=min", "minimal provenance"),
    ("ci", "      packages: read # the BuildKit cache that `publish`", "      id-token: write # oops\n      packages: read # the BuildKit cache that `publish`", "a second job with id-token"),
    ("ci", "            cosign sign --yes", "            echo", "the id-token job signs nothing"),
    ("ci", 'exit-code: "1"', 'exit-code: "0"', "a scan that cannot fail"),
    ("ci", "needs: [rust, deny, manifests, images]", "needs: [rust, deny, manifests]", "images pushed before their scan"),
    ("ci", "@1af3b93b6815bc44a9784bd300feb67ff0d1eeb3 # v6.0.0", "@v6", "an action pinned by a mutable tag"),
    ("ci", "deny --locked check --show-stats", "deny --locked check licenses", "CI skips the advisories"),
    ("cd", "    if: github.ref == 'refs/heads/main' || startsWith(github.ref, 'refs/tags/v')\n    runs-on: ubuntu-24.04\n    timeout-minutes: 30", "    runs-on: ubuntu-24.04\n    timeout-minutes: 30", "production from any branch"),
    ("cd", "          IMAGE_DIGESTS_FILE: target/deploy/image-digests.env\n", "", "deploy by tag"),
    ("cd", "            cosign verify ", "            echo ", "deploy unsigned images"),
    ("cd", "          BUILD_IMAGES: \"0\"", "          KUBECONFIG_B64: ${{ secrets.KUBECONFIG_B64 }}\n          BUILD_IMAGES: \"0\"", "a long-lived kubeconfig secret"),
    ("cd", "uses: aws-actions/configure-aws-credentials@", "uses: example/login@", "no OIDC cloud login"),
    ("dockerfile", "rust:1.95-slim-trixie@sha256:", "rust:1.95-slim-trixie@sha256:x", "a builder image not pinned by digest"),
    ("dependabot", "package-ecosystem: cargo", "package-ecosystem: npm", "no Dependabot for cargo"),
    ("trivyignore", "# /etc/passwd) plus one static Rust binary.\n", "# /etc/passwd) plus one static Rust binary.\n\nCVE-2099-0001\n", "an undocumented ignore"),
    ("deny", '"Zlib",', '"Zlib",\n  "GPL-3.0-only",', "a copyleft license allowed"),
    ("deny", 'unknown-git = "deny"', 'unknown-git = "warn"', "git dependencies allowed"),
    ("makefile", "check licenses bans sources", "check licenses", "make lint skips bans and sources"),
]


def self_test(files: dict[str, str | None]) -> list[str]:
    problems = []
    baseline = check(files)
    if baseline:
        return [f"self-test needs a clean tree first: {e}" for e in baseline]
    for key, old, new, meaning in BREAKS:
        text = files[key] or ""
        if old not in text:
            problems.append(f"self-test: `{old[:60]}` no longer in {FILES[key]}: update BREAKS ({meaning})")
            continue
        if not check({**files, key: text.replace(old, new, 1)}):
            problems.append(f"self-test: not detected: {meaning} ({FILES[key]})")
    return problems


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--self-test"]
    root = Path(args[0] if args else Path(__file__).resolve().parent.parent)
    files = {}
    for key, rel in FILES.items():
        path = root / rel
        files[key] = path.read_text(encoding="utf-8") if path.is_file() else None
    problems = self_test(files) if "--self-test" in argv else check(files)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    if not problems:
        what = f"{len(BREAKS)} deliberate breaks detected" if "--self-test" in argv else "pipeline rules hold"
        print(f"    {what}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
