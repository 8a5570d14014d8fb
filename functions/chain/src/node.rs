//! A local anvil node for runs without an RPC URL and for tests.
//!
//! The dev keys are read from anvil's own start-up output, so no key is written in our code;
//! they exist only in local mode and are never logged.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::ChainError;

/// A running anvil, killed when dropped (and, on Linux, when this process dies).
pub struct LocalNode {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub rpc_url: String,
    /// Chain id it reports.
    pub chain_id: u64,
    dev_keys: Vec<String>,
}

impl std::fmt::Debug for LocalNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNode")
            .field("rpc_url", &self.rpc_url)
            .field("chain_id", &self.chain_id)
            .finish_non_exhaustive()
    }
}

fn free_port() -> Result<u16, ChainError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| ChainError::Node(format!("no free port on 127.0.0.1: {e}")))?;
    l.local_addr().map(|a| a.port()).map_err(|e| ChainError::Node(e.to_string()))
}

impl LocalNode {
    /// Starts `anvil` on 127.0.0.1 and a free port. With `state`, the chain is loaded from and
    /// saved to that file (every second and at exit), so a restarted run finds its tokens.
    pub async fn spawn(anvil: &Path, chain_id: u64, state: Option<&Path>) -> Result<Self, ChainError> {
        Self::spawn_with(anvil, chain_id, state, &[]).await
    }

    /// Like [`LocalNode::spawn`], with extra anvil arguments (e.g. `--base-fee`).
    pub async fn spawn_with(
        anvil: &Path,
        chain_id: u64,
        state: Option<&Path>,
        extra: &[&str],
    ) -> Result<Self, ChainError> {
        if !anvil.is_file() {
            return Err(ChainError::Node(format!(
                "anvil not found at {}: run scripts/bootstrap.sh or set LATENTMINT_ANVIL",
                anvil.display()
            )));
        }
        let port = free_port()?;
        let mut cmd = Command::new(anvil);
        cmd.args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--chain-id",
            &chain_id.to_string(),
            "--accounts",
            "4",
        ]);
        if let Some(s) = state {
            cmd.arg("--state").arg(s).args(["--state-interval", "1"]);
        }
        cmd.args(extra);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null()).kill_on_drop(true);
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal, so
        // anvil never outlives a killed runner.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| ChainError::Node(format!("cannot start {}: {e}", anvil.display())))?;
        let mut said: Vec<String> = Vec::new();
        let stdout = child.stdout.take().ok_or_else(|| ChainError::Node("anvil has no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let mut dev_keys = Vec::new();
        let mut in_keys = false;
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                let t = line.trim();
                // anvil's own account of a failure, for the error below (never a key line).
                if t.starts_with("error") || t.starts_with("Error") {
                    said.push(t.to_string());
                }
                if t.starts_with("Private Keys") {
                    in_keys = true;
                } else if in_keys && t.starts_with('(') {
                    if let Some(k) = t.split_whitespace().nth(1) {
                        dev_keys.push(k.to_string());
                    }
                } else if in_keys && !t.is_empty() && !t.starts_with('=') {
                    in_keys = false;
                }
                if t.starts_with("Listening on") {
                    return true;
                }
            }
            false
        })
        .await;
        if !matches!(ready, Ok(true)) {
            // What anvil said on stderr is why (a damaged state file, a taken port).
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = tokio::time::timeout(Duration::from_secs(2), stderr.read_to_string(&mut err)).await;
            }
            let _ = child.start_kill();
            said.extend(
                err.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                    .map(str::to_string),
            );
            let anvil_said = if said.is_empty() { "nothing".to_string() } else { said.join(" / ") };
            if let Some(s) = state
                && (anvil_said.contains("state") || anvil_said.contains(&s.display().to_string()))
            {
                return Err(ChainError::Node(format!(
                    "the local chain's state file {} is damaged (anvil: {anvil_said}): restore it from a backup, or move it away to start a fresh local chain (whose tokens are then gone; a collection on a real chain keeps them)",
                    s.display()
                )));
            }
            return Err(ChainError::Node(match ready {
                Ok(_) => format!("anvil exited before it was ready: {anvil_said}"),
                Err(_) => format!("anvil did not report `Listening on` within 30 s: {anvil_said}"),
            }));
        }
        // Keep draining stdout and stderr so anvil never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        if let Some(stderr) = child.stderr.take() {
            let mut errs = BufReader::new(stderr).lines();
            tokio::spawn(async move { while let Ok(Some(_)) = errs.next_line().await {} });
        }
        if dev_keys.is_empty() {
            return Err(ChainError::Node("anvil printed no dev keys".into()));
        }
        Ok(Self { child, rpc_url: format!("http://127.0.0.1:{port}"), chain_id, dev_keys })
    }

    /// Dev key `i` (hex). Local mode only; never log it.
    pub fn dev_key(&self, i: usize) -> Option<&str> {
        self.dev_keys.get(i).map(String::as_str)
    }

    /// Stops the node, letting anvil write its state file first.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: sending SIGTERM to our own child process.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        }
        let _ = self.child.start_kill();
    }
}
