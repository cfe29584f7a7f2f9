//! The real binary (`chat-sessions`) as a child process: the one way the
//! tests start it, whether it serves (`serve`, on a free loopback port,
//! ready once `GET /` answers) or runs one subcommand (a CLI run, waited for
//! or killed). Always over the embedded store in a given data directory;
//! killed with SIGKILL when dropped.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use super::{RunningApp, free_port};

/// A running `chat-sessions` process.
pub struct Binary {
    /// `None` once killed or waited for.
    child: Option<Child>,
    /// Where it serves, for `serve`.
    addr: Option<SocketAddr>,
}

impl Binary {
    /// `chat-sessions serve` on a free loopback port over the embedded store
    /// in `data_dir`, once it answers `GET /`.
    pub async fn serve(data_dir: &Path) -> Self {
        Self::serve_with(data_dir, &[]).await
    }

    /// [`Binary::serve`] with these settings in its environment.
    pub async fn serve_with(data_dir: &Path, settings: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = command(data_dir)
            .arg("serve")
            .envs(settings.iter().copied())
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("the binary starts");
        let server = Self {
            child: Some(child),
            addr: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        };
        server.wait_ready().await;
        server
    }

    /// `chat-sessions <args>` over the embedded store in `data_dir`, stdout
    /// captured (see [`Binary::wait_with_output`]), stderr discarded.
    pub fn run(data_dir: &Path, args: &[&str]) -> Self {
        Self::run_with_env(data_dir, args, &[])
    }

    /// [`Binary::run`] with these settings in its environment.
    pub fn run_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let child = command(data_dir)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        Self {
            child: Some(child),
            addr: None,
        }
    }

    /// A client of the server; the process stays this guard's.
    pub fn app(&self) -> RunningApp {
        RunningApp::at(self.addr.expect("a serving binary"), Box::new(()))
    }

    /// Polls `GET /` until it succeeds; panics after 20 s.
    pub async fn wait_ready(&self) {
        let url = self.app().url("/");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "server did not answer GET / in 20 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL (no shutdown hook, no flush), and reaps the process.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Waits for the process to exit; its status and stdout.
    pub fn wait_with_output(mut self) -> Output {
        self.child.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The binary over the embedded store in `data_dir`, in local mode without
/// CORS, whatever the environment of the tests says about Cosmos DB, the
/// Functions host, `AUTH_MODE` or `CORS_ALLOWED_ORIGINS`.
fn command(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-sessions"));
    command
        .env("DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .env_remove("COSMOS_ENDPOINT")
        .env_remove("FUNCTIONS_CUSTOMHANDLER_PORT")
        .env_remove("RETENTION_ARCHIVE_AFTER_DAYS")
        .env_remove("RETENTION_DELETE_AFTER_DAYS")
        .env_remove("AUTH_MODE")
        .env_remove("CORS_ALLOWED_ORIGINS");
    command
}
