//! The web app and CORS in a real browser: Debian's Chromium
//! (`/usr/bin/chromium`, never a downloaded one) driven by Playwright from
//! the Node package in `tests/browser/`, against the real binary on the
//! embedded store. This test installs the package (`npm ci`) when needed,
//! starts the binaries, and runs `node --test` over [`BROWSER_TEST_FILES`];
//! it fails, never skips, when Node, npm or Chromium are missing. The same
//! run checks a client generated from `openapi.json` (`client.test.mjs`)
//! through a fake Easy Auth front against the binary with
//! `AUTH_MODE=easyauth`.

use std::{
    path::Path,
    process::{Command, Stdio},
};

use crate::common::{binary::Binary, free_port};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");

/// The files of `tests/browser/` that run.
const BROWSER_TEST_FILES: &[&str] = &[
    "a11y.test.mjs",
    "app.test.mjs",
    "branches.test.mjs",
    "chat.test.mjs",
    "client.test.mjs",
    "cors.test.mjs",
    "perf.test.mjs",
    "search_export.test.mjs",
    "tools.test.mjs",
];

/// Files that wait for endpoints the service does not have yet; each moves
/// to [`BROWSER_TEST_FILES`] when they land.
const WAITING: &[&str] = &[];

/// The browser, from Debian's `chromium` package (`apt-get install chromium`).
const CHROMIUM: &str = "/usr/bin/chromium";

fn npm_ci() {
    // Every package of package.json, so that one added later is installed.
    if [
        "playwright-core",
        "axe-core",
        "@hey-api/openapi-ts",
        "typescript",
    ]
    .iter()
    .all(|p| {
        Path::new(DIR)
            .join("node_modules")
            .join(p)
            .join("package.json")
            .exists()
    }) {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix", DIR])
        .stdout(Stdio::null())
        .status()
        .expect("npm must be installed to run the browser tests");
    assert!(status.success(), "npm ci in tests/browser failed");
}

#[test]
fn every_browser_test_file_runs_or_waits_for_named_endpoints() {
    let mut files: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".test.mjs"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = BROWSER_TEST_FILES
        .iter()
        .chain(WAITING)
        .map(|s| (*s).to_owned())
        .collect();
    listed.sort();
    assert_eq!(files, listed, "a file in tests/browser/ is in neither list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_and_cors_in_chromium() -> Result<(), Failures> {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install chromium)"
    );
    npm_ci();
    let page_port = free_port();
    let (local_dir, azure_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let origin = format!("http://127.0.0.1:{page_port}");
    let local = Binary::serve_with(local_dir.path(), &[("CORS_ALLOWED_ORIGINS", &origin)]).await;
    let azure = Binary::serve_with(azure_dir.path(), &[("AUTH_MODE", "easyauth")]).await;
    let mut node = Command::new("node");
    node.args([
        "--test",
        "--test-concurrency=1",
        "--test-timeout=120000",
        "--test-reporter=spec",
    ])
    .args(BROWSER_TEST_FILES)
    .current_dir(DIR)
    .env("APP_URL", local.app().url(""))
    .env("EASYAUTH_URL", azure.app().url(""))
    .env("CORS_PAGE_PORT", page_port.to_string())
    .env("CHROMIUM", CHROMIUM)
    .env("NO_COLOR", "1");
    let output = tokio::task::spawn_blocking(move || node.output())
        .await
        .unwrap()
        .expect("node must be installed to run the browser tests");
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    let passed = output.status.success()
        && report.contains("ℹ fail 0")
        && report.contains("ℹ skipped 0")
        && !report.contains("ℹ pass 0");
    if passed {
        Ok(())
    } else {
        Err(Failures::from_report(&report))
    }
}

/// Why the browser tests failed, as the last lines of the test's output.
/// Returned rather than panicked: a panic's message comes before its
/// backtrace, and a CI log cut to its tail showed only the backtrace.
struct Failures(String);

impl Failures {
    /// Node's own summary of the failing tests (each with its error), or
    /// the report's last lines when there is none (a crash, nothing ran).
    fn from_report(report: &str) -> Self {
        let summary = match report.find("✖ failing tests:") {
            Some(at) => report[at..].to_owned(),
            None => {
                let lines: Vec<&str> = report.lines().collect();
                lines[lines.len().saturating_sub(40)..].join("\n")
            }
        };
        Self(format!(
            "a browser test failed, skipped or none ran:\n{summary}"
        ))
    }
}

impl std::fmt::Debug for Failures {
    // libtest prints a test's error with `{:?}`: keep the lines as lines.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
