//! The real binary (`chat-sessions`) as a child process: the one way the
//! tests start it, whether it serves (`serve`, on a free loopback port,
//! ready once `GET /` answers) or runs one subcommand (a CLI run, waited for
//! or killed). Over the embedded store in a given data directory unless the
//! `_with` variants add other settings (Cosmos DB, a managed identity);
//! stopped with SIGTERM ([`Binary::terminate`]) or SIGKILL; killed with
//! SIGKILL when dropped.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    process::{Child, Command, ExitStatus, Output, Stdio},
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
        Self::serve_logging(data_dir, settings, None).await
    }

    /// [`Binary::serve_with`], its log (stderr) written to the file `log`.
    pub async fn serve_logged(data_dir: &Path, settings: &[(&str, &str)], log: &Path) -> Self {
        Self::serve_logging(data_dir, settings, Some(log)).await
    }

    async fn serve_logging(data_dir: &Path, settings: &[(&str, &str)], log: Option<&Path>) -> Self {
        let port = free_port();
        let mut command = command(data_dir);
        command
            .arg("serve")
            .envs(settings.iter().copied())
            .env("PORT", port.to_string())
            .stdout(Stdio::null());
        if let Some(log) = log {
            command.stderr(std::fs::File::create(log).unwrap());
        }
        let child = command.spawn().expect("the binary starts");
        let server = Self {
            child: Some(child),
            addr: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        };
        server.wait_ready().await;
        server
    }

    /// `chat-sessions serve` as the Functions host starts it (on the port
    /// in `FUNCTIONS_CUSTOMHANDLER_PORT`), its stdout and stderr written to
    /// the files `stdout` and `stderr`, once it answers `GET /`.
    pub async fn serve_as_host(
        data_dir: &Path,
        settings: &[(&str, &str)],
        stdout: &Path,
        stderr: &Path,
    ) -> Self {
        let port = free_port();
        let child = command(data_dir)
            .arg("serve")
            .envs(settings.iter().copied())
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .stdout(std::fs::File::create(stdout).unwrap())
            .stderr(std::fs::File::create(stderr).unwrap())
            .spawn()
            .expect("the binary starts");
        let server = Self {
            child: Some(child),
            addr: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        };
        server.wait_ready().await;
        server
    }

    /// [`Binary::run_with_env`] with stderr captured too (see
    /// [`Binary::wait_with_output`]).
    pub fn run_with_output(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let child = command(data_dir)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        Self {
            child: Some(child),
            addr: None,
        }
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

    /// SIGTERM: what the platform sends on scale-in or redeploy.
    pub fn terminate(&self) {
        let pid = self.child.as_ref().expect("a running process").id();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running process").id()
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        let child = self.child.as_mut().expect("a started process");
        child.try_wait().unwrap().is_none()
    }

    /// Waits up to `limit` for the process to exit; its status. Panics if
    /// it is still running then.
    pub async fn wait_exit(mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
/// Functions host, `AUTH_MODE`, `CORS_ALLOWED_ORIGINS`, the exporters or
/// the log format; and without the per-user write rate, which tests that
/// append as fast as they can as one user would hit (`limits.rs` tests it,
/// setting it, or giving it an empty value: its default).
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
        .env_remove("CORS_ALLOWED_ORIGINS")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("APPLICATIONINSIGHTS_CONNECTION_STRING")
        .env_remove("APPLICATIONINSIGHTS_AUTHENTICATION_STRING")
        .env_remove("LOG_FORMAT")
        .env("USER_WRITE_RATE", "0");
    command
}
