//! Helpers shared by the end-to-end tests: where the repository, the tools and the demo model
//! are. Missing tools fail the test with the command that installs them; nothing is skipped.

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The committed demo model.
pub fn tiny_model() -> PathBuf {
    repo_root().join("models/tiny-sd")
}

/// A collection file on the committed tiny model, with the smallest generation that runs (two
/// steps of 32×32): the start of every end-to-end test's collection.
pub fn tiny_collection(name: &str, symbol: &str) -> latentmint_core::testing::CollectionToml {
    latentmint_core::testing::CollectionToml::new(name, symbol)
        .model(&tiny_model().display().to_string())
        .generation("steps = 2\nwidth = 32\nheight = 32")
}

fn tool(env: &str, default: &str) -> PathBuf {
    let p = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| repo_root().join(default));
    assert!(p.exists(), "{} not found at {}: run scripts/bootstrap.sh --tests (or set {env})", env, p.display());
    p
}

/// ONNX Runtime shared library.
pub fn ort_library() -> PathBuf {
    tool("ORT_DYLIB_PATH", ".tools/onnxruntime/libonnxruntime.so.1.32.0")
}

/// The anvil binary.
pub fn anvil() -> PathBuf {
    tool("LATENTMINT_ANVIL", "infra/contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
}

/// The `latentmint` binary of this build.
pub fn latentmint_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| workspace_bin("latentmint")).clone()
}

/// The operator's dashboard binary of this build.
pub fn tui_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| workspace_bin("latentmint-tui")).clone()
}

/// `latentmint run FILE --data-dir DATA --no-progress --threads 1` with the ONNX Runtime of
/// this checkout, ready for more arguments and environment.
pub fn latentmint_run(file: &std::path::Path, data: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(latentmint_bin());
    cmd.arg("run")
        .arg(file)
        .arg("--data-dir")
        .arg(data)
        .args(["--no-progress", "--threads", "1"])
        .env("ORT_DYLIB_PATH", ort_library());
    cmd
}

/// The SageMaker container's `serve` binary of this build.
pub fn serve_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| workspace_bin("serve")).clone()
}

/// The stage functions' Lambda binary (`latentmint-lambda`) of this build.
pub fn lambda_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| workspace_bin("latentmint-lambda")).clone()
}

/// The SageMaker container's `serve` binary running on 127.0.0.1 (the bring-your-own-container
/// contract, and `/endpoints/{name}/invocations` for the SDK); stopped on drop.
pub struct Container {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`: an endpoint URL for aws-sdk-sagemakerruntime.
    pub url: String,
}

impl Container {
    /// Starts one serving the model in `model` on a free port (1 thread) and waits until it
    /// listens.
    pub fn start(model: &std::path::Path) -> Self {
        use std::io::BufRead;
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let mut child = std::process::Command::new(serve_bin())
            .arg("serve")
            .arg("--model")
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--threads", "1"])
            .env("ORT_DYLIB_PATH", ort_library())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("serve starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("serve's first line");
        assert!(line.starts_with("listening on"), "serve said {line:?}");
        Self { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the workspace binary `bin` into this test's target folder (`cargo test` builds only
/// the test harnesses, not other packages' binaries) and returns its path.
///
/// The build selects the whole workspace with dev-dependencies on (`--examples` turns them on;
/// the workspace has no examples), so features resolve exactly as for `cargo test --workspace`
/// and every dependency built for the tests is reused. `cargo build -p <its package>` would
/// resolve features for that package alone and compile the dependency tree again, once per
/// binary: a clean CI build ran out of disk that way.
fn workspace_bin(bin: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/<bin>
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target layout");
    let target_dir = profile_dir.parent().expect("target dir");
    let mut cmd = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--quiet", "--workspace", "--examples", "--bin", bin])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(repo_root());
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "building {bin} failed");
    let path = profile_dir.join(bin);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

pub mod async_endpoint;
pub mod runtime_api;

/// Gives `account` 1 ETH on the local node and `role` (`MINTER_ROLE` or `METADATA_ROLE`) on the
/// collection at `contract`, sent by `admin` (the deployer).
pub async fn fund_and_grant(
    admin: &latentmint_chain::Chain,
    contract: latentmint_core::EvmAddress,
    account: alloy::primitives::Address,
    role: &str,
) {
    use alloy::providers::Provider;
    let _: serde_json::Value =
        admin.provider().raw_request("anvil_setBalance".into(), (account, "0xde0b6b3a7640000")).await.unwrap();
    let collection = admin.minter(contract, latentmint_chain::SendPolicy::confirmations(1));
    let c = collection.contract();
    let role = match role {
        "MINTER_ROLE" => c.MINTER_ROLE().call().await.unwrap(),
        "METADATA_ROLE" => c.METADATA_ROLE().call().await.unwrap(),
        other => panic!("no role {other} on LatentCollection"),
    };
    c.grantRole(role, account).send().await.unwrap().get_receipt().await.unwrap();
}

/// The Python that `scripts/bootstrap.sh --tests` installs moto, cfn-lint and SAM's translator
/// into.
pub fn tools_python() -> PathBuf {
    tool("LATENTMINT_PYTHON", ".tools/pyenv/bin/python")
}

/// A moto server on 127.0.0.1 (S3, SQS, DynamoDB, KMS, ... over the real wire protocols), stopped
/// on drop.
pub struct Moto {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

/// Whether the server on `port` is moto: its own API answers 200.
fn moto_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    if write!(s, "GET /moto-api/data.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && (head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"))
}

impl Moto {
    /// Starts one on a free port and waits until it answers as moto. The port is free when
    /// picked, but another test's server may take it before moto (a slow Python start) binds
    /// it: then moto exits, or the port answers as something else, and another port is tried.
    pub fn start() -> Self {
        for _ in 0..5 {
            if let Some(moto) = Self::start_once() {
                return moto;
            }
        }
        panic!("moto_server did not start on any of 5 ports");
    }

    fn start_once() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        // moto's server, with KMS signing of digests completed (see the script).
        let child = std::process::Command::new(tools_python())
            .arg(repo_root().join("tests/support/moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let mut moto = Self { child, url: format!("http://127.0.0.1:{port}") };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if moto.child.try_wait().ok().flatten().is_some() {
                return None;
            }
            if moto_answers(port) {
                return Some(moto);
            }
            assert!(std::time::Instant::now() < deadline, "moto_server did not answer on {port} within 30 s");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// The SDK configuration every client here is built from: this server, static test
    /// credentials, us-east-1.
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&self.url)
            .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
                aws_sdk_s3::config::Credentials::new("test", "test", None, None, "static"),
            ))
            .build()
    }

    /// An S3 client for it (path-style addressing).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.sdk_config()).force_path_style(true).build(),
        )
    }

    /// A KMS client for it.
    pub fn kms(&self) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::new(&self.sdk_config())
    }

    /// An SQS client for it.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config())
    }

    /// A Secrets Manager client for it.
    pub fn secretsmanager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk_config())
    }

    /// A DynamoDB client for it.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk_config())
    }

    /// Creates the job table `name` as template.yaml declares it (id key, `by-state` index).
    pub async fn jobs_table(&self, name: &str) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
            ProjectionType, ScalarAttributeType,
        };
        let attr = |n: &str, t| AttributeDefinition::builder().attribute_name(n).attribute_type(t).build().unwrap();
        let key = |n: &str, t| KeySchemaElement::builder().attribute_name(n).key_type(t).build().unwrap();
        self.dynamodb()
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("id", ScalarAttributeType::S))
            .attribute_definitions(attr("state", ScalarAttributeType::S))
            .attribute_definitions(attr("created", ScalarAttributeType::N))
            .key_schema(key("id", KeyType::Hash))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(latentmint_aws::STATE_INDEX)
                    .key_schema(key("state", KeyType::Hash))
                    .key_schema(key("created", KeyType::Range))
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }

    /// Creates the evolution table `name` as template.yaml declares it (hash key `key`).
    pub async fn evolutions_table(&self, name: &str) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        self.dynamodb()
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("key")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(KeySchemaElement::builder().attribute_name("key").key_type(KeyType::Hash).build().unwrap())
            .send()
            .await
            .unwrap();
    }

    /// Creates `<name>` (FIFO when `suffix` is ".fifo") with a dead-letter queue after two
    /// receives, as the stack declares its stage queues.
    pub async fn queue_with_dlq(&self, name: &str, suffix: &str) {
        use aws_sdk_sqs::types::QueueAttributeName;
        let sqs = self.sqs();
        let create = |n: String| {
            let c = sqs.create_queue().queue_name(n);
            if suffix.is_empty() { c } else { c.attributes(QueueAttributeName::FifoQueue, "true") }
        };
        let dlq = create(format!("{name}-dlq{suffix}")).send().await.unwrap();
        let dlq_arn = sqs
            .get_queue_attributes()
            .queue_url(dlq.queue_url().unwrap())
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap();
        create(format!("{name}{suffix}"))
            .attributes(
                QueueAttributeName::RedrivePolicy,
                serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}).to_string(),
            )
            .send()
            .await
            .unwrap();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real IPFS node (js-ipfs from tests/ipfs-node, installed by `scripts/bootstrap.sh --tests`)
/// with the Kubo RPC API and a gateway on 127.0.0.1, offline, in a fresh repo; stopped on drop.
pub struct IpfsNode {
    child: std::process::Child,
    _repo: tempfile::TempDir,
    /// `http://127.0.0.1:<port>`: the Kubo RPC API.
    pub api: String,
    /// `http://127.0.0.1:<port>`: the read-only gateway.
    pub gateway: String,
}

impl IpfsNode {
    /// Initialises a repo, binds the API and gateway to free local ports and waits for "ready".
    pub fn start() -> Self {
        use std::io::{BufRead, BufReader};
        let dir = repo_root().join("tests/ipfs-node");
        let bin = dir.join("node_modules/.bin/jsipfs");
        assert!(bin.exists(), "{} not found: run scripts/bootstrap.sh --tests", bin.display());
        let repo = tempfile::tempdir().expect("temp repo");
        let free = || std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let (api, gateway, rpc) = (free(), free(), free());
        let run = |args: &[&str]| {
            let out = std::process::Command::new(&bin)
                .args(args)
                .env("IPFS_PATH", repo.path())
                .env("NODE_OPTIONS", format!("--require {}", dir.join("polyfill.cjs").display()))
                .output()
                .expect("jsipfs runs");
            assert!(out.status.success(), "jsipfs {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(&["init", "--profile", "test"]);
        run(&["config", "--json", "Addresses.Swarm", "[]"]);
        run(&["config", "--json", "Bootstrap", "[]"]);
        run(&["config", "Addresses.API", &format!("/ip4/127.0.0.1/tcp/{api}")]);
        run(&["config", "Addresses.Gateway", &format!("/ip4/127.0.0.1/tcp/{gateway}")]);
        run(&["config", "--json", "Addresses.RPC", &format!("\"/ip4/127.0.0.1/tcp/{rpc}\"")]);
        let mut child = std::process::Command::new(&bin)
            .args(["daemon", "--offline", "--enable-preload=false"])
            .env("IPFS_PATH", repo.path())
            .env("NODE_OPTIONS", format!("--require {}", dir.join("polyfill.cjs").display()))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("jsipfs daemon starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("Daemon is ready") => break,
                Some(Ok(_)) => {}
                _ => panic!("the IPFS daemon exited before it was ready"),
            }
        }
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            _repo: repo,
            api: format!("http://127.0.0.1:{api}"),
            gateway: format!("http://127.0.0.1:{gateway}"),
        }
    }
}

impl Drop for IpfsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo model's world (models/shapes-sd: 8 colours, 4 shapes on a dark background) and an
/// independent judge of its images: a pixel classifier, no model.
pub mod shapes {
    /// The demo model (models/shapes-sd) loaded with `threads` threads.
    pub fn engine(threads: usize) -> latentmint_diffusion::Engine {
        let opts = latentmint_diffusion::EngineOptions {
            ort_library: Some(super::ort_library()),
            intra_threads: threads,
            cuda: false,
            parallel_cfg: None,
            loras: vec![],
        };
        latentmint_diffusion::Engine::load(&super::repo_root().join("models/shapes-sd"), &opts)
            .expect("the demo model loads")
    }

    /// `prompt` at the demo's settings: 32x32, 20 DDIM steps, guidance 4.
    pub fn request(prompt: &str, seed: u64) -> latentmint_diffusion::ImageRequest {
        latentmint_diffusion::ImageRequest {
            prompt: prompt.into(),
            negative_prompt: String::new(),
            seed,
            steps: 20,
            guidance: 4.0,
            width: 32,
            height: 32,
            scheduler: "ddim".into(),
            initial_latents: None,
            step_noise: None,
            init_image: None,
        }
    }

    /// The colours the demo model knows, with the RGB it was trained on.
    pub const COLOURS: [(&str, [f32; 3]); 8] = [
        ("red", [230.0, 40.0, 40.0]),
        ("green", [40.0, 200.0, 60.0]),
        ("blue", [50.0, 80.0, 240.0]),
        ("yellow", [240.0, 220.0, 40.0]),
        ("cyan", [40.0, 220.0, 230.0]),
        ("magenta", [220.0, 50.0, 220.0]),
        ("white", [240.0, 240.0, 240.0]),
        ("orange", [250.0, 140.0, 30.0]),
    ];
    /// The shapes the demo model knows.
    pub const SHAPES: [&str; 4] = ["circle", "square", "triangle", "ring"];

    /// (colour, shape) of a 32x32 RGB image of one shape on a dark background.
    pub fn classify(rgb: &[u8], w: usize, h: usize) -> (&'static str, &'static str) {
        let px = |x: usize, y: usize| {
            let i = (y * w + x) * 3;
            [f32::from(rgb[i]), f32::from(rgb[i + 1]), f32::from(rgb[i + 2])]
        };
        let bg = [18.0f32, 20.0, 28.0];
        let dist =
            |p: [f32; 3], q: [f32; 3]| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt();
        let mask: Vec<bool> =
            (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).map(|(x, y)| dist(px(x, y), bg) > 90.0).collect();
        let (mut sum, mut n) = ([0f32; 3], 0f32);
        let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
        for y in 0..h {
            for x in 0..w {
                if mask[y * w + x] {
                    let p = px(x, y);
                    (0..3).for_each(|c| sum[c] += p[c]);
                    n += 1.0;
                    (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
                }
            }
        }
        if n < 4.0 {
            return ("none", "none");
        }
        let mean = [sum[0] / n, sum[1] / n, sum[2] / n];
        let colour =
            COLOURS.iter().min_by(|a, b| dist(a.1, mean).total_cmp(&dist(b.1, mean))).map(|c| c.0).unwrap_or("none");
        let box_area = ((x1 - x0 + 1) * (y1 - y0 + 1)) as f32;
        let fill = n / box_area;
        let (cx, cy) = ((x0 + x1) / 2, (y0 + y1) / 2);
        let hole = (cy.saturating_sub(1)..=(cy + 1).min(h - 1))
            .all(|y| (cx.saturating_sub(1)..=(cx + 1).min(w - 1)).all(|x| !mask[y * w + x]));
        let shape = if hole {
            "ring"
        } else if fill > 0.88 {
            "square"
        } else if fill > 0.66 {
            "circle"
        } else {
            "triangle"
        };
        (colour, shape)
    }
}

/// What the benchmarks share: their arguments and the machine they ran on.
pub mod bench {
    /// The number after `name` on the command line, else `default`.
    pub fn arg(name: &str, default: usize) -> usize {
        let args: Vec<String> = std::env::args().collect();
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// The CPU model and core count, as the records name the machine.
    pub fn machine() -> String {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        format!("{cpu}, {cores} cores")
    }
}
