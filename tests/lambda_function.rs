//! The stage functions as `sam deploy` makes them: the real `latentmint-lambda` binary, started
//! with exactly the environment template.yaml gives each function (read from what SAM's own
//! translator makes of the template), polling a stand-in of the Lambda Runtime API, against
//! moto's SQS, S3, DynamoDB and KMS over the wire, a real IPFS node and a real anvil. This is
//! the wiring from environment variables to adapters in `functions/lambda/src/main.rs`, which
//! the other suites bypass.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alloy::providers::Provider;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use latentmint_aws::{DynamoJobStore, KmsClaimSigner, KmsSigner, S3BlobStore, SqsQueue};
use latentmint_chain::{Chain, LocalNode, SendPolicy, to_alloy};
use latentmint_core::collection::Collection;
use latentmint_core::metadata::TokenMetadata;
use latentmint_core::network::LOCAL_CHAIN_ID;
use latentmint_core::ports::{BlobStore, Delivery, JobStore, Queue};
use latentmint_core::{EvmAddress, Job, JobState, Stage, StageMessage};
use latentmint_credentials::{ClaimSigner, Validation, development_chain_for, read};
use latentmint_e2e::runtime_api::{Answer, RuntimeApi};
use latentmint_e2e::{
    Container, IpfsNode, Moto, anvil, fund_and_grant, lambda_bin, ort_library, repo_root, tools_python,
};
use sha2::Digest;

/// The stack's name (template parameter `Stage`).
const STAGE: &str = "fn";
const TABLE: &str = "latentmint-fn-jobs";
const BUCKET: &str = "latentmint-fn-images";
const CHAIN_KEY: &str = "credentials/c2pa-chain.pem";
/// Anvil's second dev account: the collection's recipient, whose key passes the token on.
const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

/// The template after SAM's transform, as CloudFormation receives it (Globals merged into
/// each function).
fn translated_template() -> serde_json::Value {
    static T: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let out = tempfile::NamedTempFile::new().unwrap();
        let status = Command::new(tools_python())
            .arg(repo_root().join("infra/sam/translate.py"))
            .arg(repo_root().join("template.yaml"))
            .arg(out.path())
            .stdout(Stdio::null())
            .status()
            .expect("python runs");
        assert!(status.success(), "SAM's translator refused template.yaml");
        serde_json::from_slice(&std::fs::read(out.path()).unwrap()).unwrap()
    })
    .clone()
}

/// Every stage queue's dead-letter queue (found from the queues' redrive policies, so a new
/// stage is covered too) has an alarm that fires on its first message, a stalled job, and tells
/// the stack's alarm topic; so do errors of the functions no queue retries (intake's file
/// events, live's ticks). Mail is subscribed only when `AlarmEmail` is set.
#[test]
fn a_stalled_job_or_a_failing_function_raises_an_alarm_on_the_stack_topic() {
    let t = translated_template();
    let resources = t["Resources"].as_object().unwrap();
    let of_type = |ty: &'static str| resources.iter().filter(move |(_, r)| r["Type"] == ty);
    let alarms: Vec<&serde_json::Value> = of_type("AWS::CloudWatch::Alarm").map(|(_, r)| &r["Properties"]).collect();
    let alarm_on = |dimension: serde_json::Value, metric: &str| {
        let found = alarms.iter().find(|a| a["Dimensions"][0]["Value"] == dimension && a["MetricName"] == metric);
        let a = found.unwrap_or_else(|| panic!("no {metric} alarm on {dimension}"));
        assert_eq!(
            (&a["Threshold"], &a["ComparisonOperator"]),
            (&serde_json::json!(0), &serde_json::json!("GreaterThanThreshold"))
        );
        assert_eq!(a["AlarmActions"], serde_json::json!([{"Ref": "AlarmTopic"}]), "{dimension}");
        assert_eq!(a["TreatMissingData"], "notBreaching", "a quiet stack is not alarming");
    };
    let dlqs: Vec<&str> = of_type("AWS::SQS::Queue")
        .filter_map(|(_, q)| q.pointer("/Properties/RedrivePolicy/deadLetterTargetArn/Fn::GetAtt/0")?.as_str())
        .collect();
    assert_eq!(dlqs.len(), Stage::ALL.len(), "one dead-letter queue per stage: {dlqs:?}");
    for dlq in dlqs {
        alarm_on(serde_json::json!({"Fn::GetAtt": [dlq, "QueueName"]}), "ApproximateNumberOfMessagesVisible");
    }
    for function in ["IntakeFunction", "LiveFunction"] {
        alarm_on(serde_json::json!({"Ref": function}), "Errors");
    }
    assert_eq!(resources["AlarmMailSubscription"]["Condition"], "AlarmMail");
    assert_eq!(t["Outputs"]["AlarmTopic"]["Value"], serde_json::json!({"Ref": "AlarmTopic"}));
}

/// The S3 actions `function`'s role allows, as `(action, resource)` with the bucket and
/// partition filled in (conditional statements counted as if their condition held).
fn s3_grants(t: &serde_json::Value, function: &str) -> Vec<(String, String)> {
    let role = t["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0].as_str().unwrap().to_string();
    let mut grants = Vec::new();
    for policy in t["Resources"][&role]["Properties"]["Policies"].as_array().unwrap() {
        let policy = policy.get("Fn::If").map_or(policy, |branches| &branches[1]);
        for st in policy["PolicyDocument"]["Statement"].as_array().into_iter().flatten() {
            let list = |v: &serde_json::Value| match v {
                serde_json::Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            for action in list(&st["Action"]).iter().filter_map(|a| a.as_str()).filter(|a| a.starts_with("s3:")) {
                for resource in list(&st["Resource"]) {
                    let text = resource.get("Fn::Sub").and_then(|s| s.as_str()).or(resource.as_str()).unwrap_or("");
                    let text = text.replace("${AWS::Partition}", "aws").replace("${ImageBucket}", BUCKET);
                    grants.push((action.to_string(), text));
                }
            }
        }
    }
    grants
}

/// Whether `pattern` (IAM's `*` wildcard) matches `text`.
fn iam_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.starts_with(head) && (0..=text.len() - head.len()).any(|i| iam_match(tail, &text[head.len() + i..]))
        }
    }
}

/// Every object a stage function reads or writes in the bucket, at the key the stage code
/// makes under the stage prefix, is one its role may touch: moto does not enforce IAM, so
/// the functions' end-to-end run cannot show this.
#[test]
fn each_stage_function_may_touch_the_objects_its_stage_reads_and_writes() {
    let t = translated_template();
    let id = job_for("a red circle").id();
    let image = latentmint_stages::generate::image_key(id, &"ab".repeat(32));
    let metadata = format!("metadata/{id}.json");
    let batch = latentmint_core::batch::BatchPlan::key(latentmint_core::batch::BatchId::of(&[id]));
    let needs = [
        ("GenerateFunction", "s3:PutObject", &image),
        ("ReviewFunction", "s3:GetObject", &image),
        ("PublishFunction", "s3:GetObject", &image),
        ("PublishFunction", "s3:GetObject", &metadata),
        ("PublishFunction", "s3:PutObject", &metadata),
        ("MintFunction", "s3:GetObject", &metadata),
        ("MintFunction", "s3:GetObject", &batch),
        ("MintFunction", "s3:PutObject", &batch),
    ];
    for (function, action, key) in needs {
        let arn = format!("arn:aws:s3:::{BUCKET}/{}{key}", latentmint_aws::STAGE_PREFIX);
        let grants = s3_grants(&t, function);
        assert!(
            grants.iter().any(|(a, r)| a == action && iam_match(r, &arn)),
            "{function} may not {action} {arn}; its grants: {grants:?}"
        );
    }
    // The brand's reference images, when the stack names a prefix for them.
    let grants = s3_grants(&t, "ReviewFunction");
    assert!(grants.iter().any(|(a, r)| a == "s3:ListBucket" && r == &format!("arn:aws:s3:::{BUCKET}")), "{grants:?}");
}

/// `function`'s environment in the template, each `Ref` and `Fn::Sub` resolved from `refs`
/// (the stack's resources and parameters as this test made them) or a parameter's default. A
/// variable the test cannot resolve fails the test with its name, so a new one in the template
/// is noticed here.
fn template_environment(function: &str, refs: &HashMap<&str, String>) -> Vec<(String, String)> {
    let template = translated_template();
    let vars = template
        .pointer(&format!("/Resources/{function}/Properties/Environment/Variables"))
        .and_then(|v| v.as_object())
        .unwrap_or_else(|| panic!("template.yaml has no environment for {function}"))
        .clone();
    // What the test made (resources, chosen parameters), else the parameter's default, as a
    // `sam deploy` without overrides would use.
    let lookup = |name: &str, var: &str| {
        refs.get(name).cloned().unwrap_or_else(|| match template.pointer(&format!("/Parameters/{name}/Default")) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v @ serde_json::Value::Number(_)) => v.to_string(),
            _ => panic!("{function}'s {var} refers to {name}: give this test a value for it"),
        })
    };
    vars.into_iter()
        .map(|(var, value)| {
            let resolved = match &value {
                serde_json::Value::String(s) => s.clone(),
                v if v.get("Ref").is_some() => lookup(v["Ref"].as_str().unwrap(), &var),
                v if v.get("Fn::Sub").and_then(|s| s.as_str()).is_some() => {
                    let mut s = v["Fn::Sub"].as_str().unwrap().to_string();
                    while let Some(start) = s.find("${") {
                        let end = start + s[start..].find('}').expect("closing brace");
                        let name = s[start + 2..end].to_string();
                        s.replace_range(start..=end, &lookup(&name, &var));
                    }
                    s
                }
                other => panic!("{function}'s {var} is {other}: teach this test that intrinsic"),
            };
            (var, resolved)
        })
        .collect()
}

/// Where the generation layer (infra/lambda-layer) puts what the template's `/opt` paths name:
/// the test points them at the same files in this checkout.
fn layer_paths(env: &mut [(String, String)]) {
    for (var, value) in env.iter_mut() {
        match var.as_str() {
            "LATENTMINT_MODEL_DIR" => {
                assert_eq!(value, "/opt/model", "the layer unpacks the model at /opt/model");
                *value = repo_root().join("models/shapes-sd").display().to_string();
            }
            "LATENTMINT_QA_CLIP_DIR" => {
                assert_eq!(value, "/opt/qa-clip", "the layer unpacks the QA model at /opt/qa-clip");
                *value = repo_root().join("models/shapes-clip").display().to_string();
            }
            "ORT_DYLIB_PATH" => {
                let ours = ort_library();
                assert_eq!(
                    Path::new(value.as_str()).file_name(),
                    ours.file_name(),
                    "template.yaml names another ONNX Runtime than scripts/bootstrap.sh installs"
                );
                *value = ours.display().to_string();
            }
            _ => assert!(!value.starts_with("/opt"), "{var}={value}: a layer path this test does not map"),
        }
    }
}

/// A function's process; killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary as Lambda would for `function`: the template's environment (and nothing
/// else of this process's), AWS credentials and endpoint, the Runtime API's address; its
/// output goes to `log`.
fn spawn(function: &str, env: &[(String, String)], moto: &Moto, api: &RuntimeApi, log: &Path) -> Process {
    // Lambda sends both streams to CloudWatch; here both go to one file.
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(lambda_bin())
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3008")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ENDPOINT_URL", &moto.url)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("latentmint-lambda starts");
    Process(child)
}

/// An SQS event of one record, the message `d` received from `queue`, as Lambda's event source
/// mapping delivers it (its receipt handle too: a function that retries it sets its visibility).
fn sqs_event(queue: &str, d: &Delivery) -> serde_json::Value {
    sqs_batch_event(queue, std::slice::from_ref(d))
}

/// An SQS event of the messages `ds`, in order.
fn sqs_batch_event(queue: &str, ds: &[Delivery]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = ds.iter().map(|d| sqs_record(queue, d)).collect();
    serde_json::json!({ "Records": records })
}

fn sqs_record(queue: &str, d: &Delivery) -> serde_json::Value {
    serde_json::json!({
        "messageId": d.message_id,
        "receiptHandle": d.receipt,
        "body": d.body,
        "attributes": {"ApproximateReceiveCount": d.receive_count.to_string(), "SentTimestamp": "0"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{queue}"),
        "awsRegion": "us-east-1"
    })
}

/// The collection a studio POSTs: one prompt, the stack's chain (none named).
const COLLECTION: &str = r#"
[collection]
name = "Fn"
symbol = "FN"
recipient = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

[generation]
model = "shapes-sd"
steps = 6
width = 64
height = 64
seed = 11

[[prompts]]
text = "a red circle"
"#;

/// The job COLLECTION makes with `prompt` in place of its own, as intake records it.
fn job_for(prompt: &str) -> Job {
    let text = COLLECTION.replace("a red circle", prompt);
    Job::new(Collection::from_toml("fn.toml", &text).unwrap().jobs().unwrap().remove(0))
}

/// The jobs COLLECTION makes with `prompts` in place of its own: one file, so each job has a
/// position of its own, as the jobs of one collection do.
fn jobs_for(prompts: &[&str]) -> Vec<Job> {
    let list: String = prompts.iter().map(|p| format!("[[prompts]]\ntext = \"{p}\"\n")).collect();
    let text = COLLECTION.replace("[[prompts]]\ntext = \"a red circle\"\n", &list);
    Collection::from_toml("fn.toml", &text).unwrap().jobs().unwrap().into_iter().map(Job::new).collect()
}

struct Stack {
    moto: Moto,
    refs: HashMap<&'static str, String>,
    ca_pem: String,
    dir: tempfile::TempDir,
    /// Variables added to every function's environment after the template's (SDK endpoint URLs).
    extra_env: Vec<(String, String)>,
}

/// moto with the stack's queues, job table and bucket, and a P-256 KMS key whose development
/// certificate chain is in the bucket (uploaded unless `upload_chain` is false).
async fn stack(upload_chain: bool) -> Stack {
    let moto = Moto::start();
    for stage in Stage::ALL {
        let suffix = if stage == Stage::Mint { ".fifo" } else { "" };
        moto.queue_with_dlq(&format!("latentmint-{STAGE}-{}", stage.queue()), suffix).await;
    }
    moto.jobs_table(TABLE).await;
    moto.s3().create_bucket().bucket(BUCKET).send().await.unwrap();
    let kms = moto.kms();
    let key = kms.create_key().key_spec(KeySpec::EccNistP256).key_usage(KeyUsageType::SignVerify).send().await.unwrap();
    let arn = key.key_metadata().unwrap().arn().unwrap().to_string();
    let public_key = *KmsClaimSigner::new(kms, &arn).await.unwrap().public_key();
    let (chain_pem, ca_pem) = development_chain_for(&public_key, "Fn Studio").unwrap();
    if upload_chain {
        S3BlobStore::new(moto.s3(), BUCKET, "").put(CHAIN_KEY, chain_pem.into_bytes()).await.unwrap();
    }
    let refs = HashMap::from([
        ("Stage", STAGE.to_string()),
        ("MintWallet", "wallet-1".to_string()),
        ("JobsTable", TABLE.to_string()),
        ("ImageBucket", BUCKET.to_string()),
        // The template's default: no SageMaker endpoint, the CPU fallback only.
        ("SageMakerEndpoint", String::new()),
        ("ContentCredentialsKmsKeyArn", arn),
        ("ContentCredentialsChainKey", CHAIN_KEY.to_string()),
    ]);
    Stack { moto, refs, ca_pem, dir: tempfile::tempdir().unwrap(), extra_env: Vec::new() }
}

impl Stack {
    fn environment(&self, function: &str) -> Vec<(String, String)> {
        let mut env = template_environment(function, &self.refs);
        layer_paths(&mut env);
        env.extend(self.extra_env.iter().cloned());
        env
    }

    fn log_path(&self, function: &str) -> PathBuf {
        self.dir.path().join(format!("{function}.log"))
    }

    fn log(&self, function: &str) -> String {
        std::fs::read_to_string(self.log_path(function)).unwrap_or_default()
    }

    /// The stack's queues, named and grouped as the functions name them.
    fn queues(&self) -> SqsQueue {
        SqsQueue::new(self.moto.sqs(), format!("latentmint-{STAGE}-")).with_fifo(Stage::Mint.queue(), "wallet-1")
    }

    /// Starts `function` (a template resource): one instance, for as many events as
    /// [`Instance::invoke`] hands it.
    async fn start(&self, function: &str) -> Instance {
        let api = RuntimeApi::start(function).await;
        let log = self.log_path(function);
        let process = spawn(function, &self.environment(function), &self.moto, &api, &log);
        Instance { api, _process: process, function: function.to_string(), log }
    }

    /// Starts `function` and waits for it to stop at init, before taking any event: its log.
    async fn init_failure(&self, function: &str) -> String {
        let api = RuntimeApi::start(function).await;
        let mut f = spawn(function, &self.environment(function), &self.moto, &api, &self.log_path(function));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = f.0.try_wait().unwrap() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "still running: {}", self.log(function));
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(!status.success(), "{function} started: {}", self.log(function));
        self.log(function)
    }

    /// One event for a fresh instance of `function`: its answer and log.
    async fn invoke(&self, function: &str, event: serde_json::Value) -> (serde_json::Value, String) {
        self.start(function).await.invoke(event).await
    }

    /// Hands `function` the one message waiting in `stage`'s queue, as Lambda's event source
    /// mapping would, checks that no record failed, and deletes the message.
    async fn deliver(&self, function: &str, stage: Stage) -> String {
        let queue = stage.queue();
        let got = self.queues().receive(queue, 10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(got.len(), 1, "one message waits for {function}");
        let fifo = if stage == Stage::Mint { ".fifo" } else { "" };
        let event = sqs_event(&format!("latentmint-{STAGE}-{queue}{fifo}"), &got[0]);
        let (response, log) = self.invoke(function, event).await;
        assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{function}: {log}");
        self.queues().ack(queue, &got[0].receipt).await.unwrap();
        log
    }
}

/// A running function instance.
struct Instance {
    api: RuntimeApi,
    _process: Process,
    function: String,
    log: PathBuf,
}

impl Instance {
    /// Hands it `event` through the Runtime API; returns its answer and its log so far, which
    /// must be JSON lines (CloudWatch) without key material.
    async fn invoke(&self, event: serde_json::Value) -> (serde_json::Value, String) {
        let answer = self.api.invoke(event, Duration::from_secs(180)).await;
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let Some(Answer::Response(response)) = answer else { panic!("{}: {answer:?}\n{log}", self.function) };
        assert!(log.lines().all(|l| l.starts_with('{')), "{log}");
        assert!(!log.contains("PRIVATE KEY"), "{log}");
        (response, log)
    }
}

/// A collection file POSTed to `/collections`, as API Gateway's HTTP API hands it to the intake
/// function (payload format 2.0).
fn posted_collection(body: &str) -> serde_json::Value {
    http_request("POST /collections", "/collections", serde_json::json!({"content-type": "application/toml"}), body)
}

/// A shop's order to `POST /webhooks/{collection}`, signed now with the collection's key under
/// the stack's secret `secret`, as delivery `d-<hash of the body>`.
fn signed_order(collection: &str, body: &str, secret: &[u8]) -> serde_json::Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let path = format!("/webhooks/{collection}");
    let key = latentmint_core::webhook::collection_key(secret, collection);
    let signature = latentmint_core::webhook::signature_header(&key, now, "POST", &path, body.as_bytes());
    let delivery = format!("d-{}", &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body.as_bytes()))[..12]);
    let headers = serde_json::json!({
        "content-type": "application/json",
        "x-latentmint-signature": signature,
        "x-latentmint-delivery": delivery,
    });
    let mut event = http_request("POST /webhooks/{collection}", &path, headers, body);
    event["pathParameters"] = serde_json::json!({"collection": collection});
    event
}

fn http_request(route: &str, path: &str, headers: serde_json::Value, body: &str) -> serde_json::Value {
    serde_json::json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example",
            "requestId": "req",
            "routeKey": route,
            "stage": "$default",
            "time": "02/Dec/2026:18:00:00 +0000",
            "timeEpoch": 1_796_234_400_000_i64,
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"}
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// A secp256k1 KMS key that holds `role` on the collection and some ETH: its ARN and address.
async fn wallet_in_kms(
    moto: &Moto,
    admin: &Chain,
    contract: EvmAddress,
    role: &str,
) -> (String, alloy::primitives::Address) {
    let kms = moto.kms();
    let key =
        kms.create_key().key_spec(KeySpec::EccSecgP256K1).key_usage(KeyUsageType::SignVerify).send().await.unwrap();
    let arn = key.key_metadata().unwrap().arn().unwrap().to_string();
    let address = KmsSigner::new(kms, &arn, Some(LOCAL_CHAIN_ID)).await.unwrap().address();
    fund_and_grant(admin, contract, address, role).await;
    (arn, address)
}

/// A collection file goes through every function of the stack, each started from the
/// template's environment and handed what the previous one queued: the intake function takes
/// it from the HTTP API; the generate function makes the image with the layer's ONNX fallback
/// and stamps Content Credentials signed in KMS under the studio's chain from the bucket; the
/// review function runs QA; the publish function pins the metadata to a real IPFS node with its
/// provenance signed in KMS (EIP-712); the mint function mints on anvil with its KMS key, once;
/// after a transfer, the live function's tick evolves the token with its own KMS key.
#[tokio::test(flavor = "multi_thread")]
async fn a_prompt_goes_through_every_function_as_the_template_deploys_them() {
    let mut s = stack(true).await;
    s.moto.evolutions_table("latentmint-fn-evolutions").await;
    let jobs = DynamoJobStore::new(s.moto.dynamodb(), TABLE);

    // The chain: a collection deployed by a dev key; the minting wallet and the records' wallet
    // (METADATA_ROLE: provenance records and the living NFTs' updates) are keys in KMS.
    let node = LocalNode::spawn(&anvil(), LOCAL_CHAIN_ID, None).await.unwrap();
    let admin = Chain::connect(&node.rpc_url, node.dev_key(0).unwrap(), LOCAL_CHAIN_ID).await.unwrap();
    let contract = admin.deploy("Fn", "FN").await.unwrap();
    let deployed_at = admin.provider().get_block_number().await.unwrap();
    let (minting_key, wallet) = wallet_in_kms(&s.moto, &admin, contract, "MINTER_ROLE").await;
    let (metadata_key, metadata_wallet) = wallet_in_kms(&s.moto, &admin, contract, "METADATA_ROLE").await;
    let ipfs = IpfsNode::start();
    s.refs.extend([
        ("ChainId", LOCAL_CHAIN_ID.to_string()),
        ("RpcUrls", node.rpc_url.clone()),
        ("ContractAddress", contract.to_string()),
        // The live function reads events from the deployment on, not from genesis.
        ("ContractDeployBlock", deployed_at.to_string()),
        ("KmsKeyArn", minting_key),
        ("MetadataKmsKeyArn", metadata_key),
        ("IpfsApiUrl", ipfs.api.clone()),
        ("EvolutionsTable", "latentmint-fn-evolutions".to_string()),
    ]);

    let (response, log) = s.invoke("IntakeFunction", posted_collection(COLLECTION)).await;
    assert_eq!(response["statusCode"], 202, "{response}\n{log}");
    let accepted: serde_json::Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(accepted["queued"], 1, "{accepted}");
    let id: latentmint_core::JobId = accepted["job_ids"][0].as_str().unwrap().parse().unwrap();

    let log = s.deliver("GenerateFunction", Stage::Generate).await;
    assert!(log.contains("stage done"), "{log}");
    let stored = jobs.get(id).await.unwrap().expect("job in the table");
    assert_eq!(stored.state, JobState::Generated);
    let record = stored.generation.clone().expect("generation record");
    assert_eq!(record.backend, "onnx-cpu", "no endpoint: the layer's ONNX fallback made it");
    let png = S3BlobStore::stage_blobs(s.moto.s3(), BUCKET)
        .get(stored.image_key.as_deref().expect("image key"))
        .await
        .expect("image in the bucket");
    let report = read(&png, Some(&s.ca_pem)).unwrap().expect("Content Credentials in the image");
    assert_eq!(report.validation, Validation::Trusted, "{:?}", report.failures);
    assert_eq!(report.generation.expect("generation assertion").job_id, id.to_string());

    // The brand's look: two reference images under the prefix the stack names.
    s.refs.insert("BrandReferences", "brand/".into());
    let files = S3BlobStore::new(s.moto.s3(), BUCKET, "");
    files.put("brand/red-disc.png", disc_png([230, 40, 40])).await.unwrap();
    files.put("brand/blue-disc.png", disc_png([40, 60, 230])).await.unwrap();
    let log = s.deliver("ReviewFunction", Stage::Review).await;
    assert!(log.contains("stage done") && log.contains("brand reference images loaded"), "{log}");
    let reviewed = jobs.get(id).await.unwrap().unwrap();
    let report = reviewed.qa.as_ref().expect("QA ran on the stored image");
    let drift = report.checks.iter().find(|c| c.check == "drift").expect("the brand-drift check ran");
    assert!(drift.detail.contains("reference"), "{drift:?}");
    if reviewed.state == JobState::AwaitingReview {
        // Unsure: the operator approves it, as the dashboard does on a stack.
        latentmint_stages::operator::decide(&jobs, &s.queues(), id, true, "ada").await.unwrap();
    }
    assert_eq!(jobs.get(id).await.unwrap().unwrap().state, JobState::Approved);

    let log = s.deliver("PublishFunction", Stage::Publish).await;
    assert!(log.contains("stage done"), "{log}");
    let published = jobs.get(id).await.unwrap().unwrap();
    assert_eq!(published.state, JobState::Published);
    let metadata_cid = published.metadata_cid.clone().expect("metadata CID");
    let ipfs_api = latentmint_ipfs::KuboPinner::new(&ipfs.api, None).unwrap();
    let metadata = latentmint_core::ports::ContentSource::fetch(&ipfs_api, &metadata_cid).await.unwrap();
    let metadata: TokenMetadata = serde_json::from_slice(&metadata).unwrap();
    let signer = latentmint_chain::provenance::verify(&metadata.provenance).expect("a valid provenance signature");
    assert_eq!(to_alloy(signer), metadata_wallet, "provenance signed in KMS by the records' key, not the minting key");

    let log = s.deliver("MintFunction", Stage::Mint).await;
    assert!(log.contains("stage done"), "{log}");
    let minted = jobs.get(id).await.unwrap().unwrap();
    assert_eq!(minted.state, JobState::Minted);
    let token = minted.token_id.clone().expect("token id");
    let collection = admin.minter(contract, SendPolicy::confirmations(1));
    assert_eq!(collection.owner_of(&token).await.unwrap(), EvmAddress::parse_checksummed(RECIPIENT).unwrap());
    assert_eq!(collection.token_uri(&token).await.unwrap(), format!("ipfs://{metadata_cid}"));
    let tx = admin.provider().get_transaction_by_hash(minted.tx_hash.unwrap().parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(tx.inner.signer(), wallet, "sent by the mint function's KMS key");

    // The same mint message delivered again (at-least-once): nothing is sent.
    s.queues().send(Stage::Mint.queue(), &StageMessage::new(Stage::Mint, id).to_body()).await.unwrap();
    s.deliver("MintFunction", Stage::Mint).await;
    assert_eq!(collection.total_supply().await.unwrap(), 1);
    assert_eq!(admin.provider().get_transaction_count(wallet).await.unwrap(), 1, "one transaction from the wallet");

    // A living NFT: the owner passes the token on; the live function's next tick evolves it.
    let owner = Chain::connect(&node.rpc_url, node.dev_key(1).unwrap(), LOCAL_CHAIN_ID).await.unwrap();
    let bob = alloy::primitives::Address::repeat_byte(0xb0);
    let token_id: alloy::primitives::U256 = token.parse().unwrap();
    owner
        .minter(contract, SendPolicy::confirmations(1))
        .contract()
        .transferFrom(to_alloy(owner.sender()), bob, token_id)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let (tick, log) = s.invoke("LiveFunction", serde_json::json!({"source": "aws.scheduler"})).await;
    assert_eq!(tick["evolved"], serde_json::json!([token]), "{tick}\n{log}");
    let evolved = collection.token_uri(&token).await.unwrap();
    assert!(evolved.starts_with("ipfs://") && evolved != format!("ipfs://{metadata_cid}"), "{evolved}");
    // The evolved image, from IPFS: an edit of the minted image, stamped by the live function.
    let fetch = |cid: String| {
        let api = &ipfs_api;
        async move { latentmint_core::ports::ContentSource::fetch(api, &cid).await.unwrap() }
    };
    let new_metadata: TokenMetadata =
        serde_json::from_slice(&fetch(evolved.trim_start_matches("ipfs://").to_string()).await).unwrap();
    let new_png = fetch(new_metadata.image.trim_start_matches("ipfs://").to_string()).await;
    let report = read(&new_png, Some(&s.ca_pem)).unwrap().expect("Content Credentials on the evolved image");
    assert_eq!(report.validation, Validation::Trusted, "{:?}", report.failures);
    let parent = fetch(metadata.image.trim_start_matches("ipfs://").to_string()).await;
    let assertion = report.generation.expect("generation assertion");
    assert_eq!(
        assertion.init_image_sha256,
        Some(hex::encode(sha2::Sha256::digest(&parent))),
        "made from the minted image"
    );
    assert_eq!(
        admin.provider().get_transaction_count(metadata_wallet).await.unwrap(),
        1,
        "setTokenURI from the living wallet"
    );
    // The next tick finds nothing new.
    let (tick, log) = s.invoke("LiveFunction", serde_json::json!({"source": "aws.scheduler"})).await;
    assert_eq!(tick["evolved"], serde_json::json!([]), "{tick}\n{log}");

    // The same stack deployed with LivingOracle: the tokens live by a price feed (the
    // stand-in from infra/contracts, placed on anvil), and an answer in a new mood evolves them.
    let artifact: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(latentmint_e2e::repo_root().join("infra/contracts/artifacts/PriceFeedStub.json"))
            .unwrap(),
    )
    .unwrap();
    let feed = alloy::primitives::Address::repeat_byte(0xfe);
    let code = artifact["deployedBytecode"]["object"].as_str().unwrap();
    let _: serde_json::Value = admin.provider().raw_request("anvil_setCode".into(), (feed, code)).await.unwrap();
    alloy::sol! {
        #[sol(rpc)]
        contract PriceFeedStub {
            function updateAnswer(int256 answer) external;
        }
    }
    PriceFeedStub::new(feed, admin.provider().clone())
        .updateAnswer(alloy::primitives::I256::try_from(150_000_000_000i64).unwrap())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    s.refs.extend([
        ("LivingPrompt", "{prompt}, {mood}".to_string()),
        (
            "LivingOracle",
            serde_json::json!({"feed": feed.to_string(), "moods": [
                {"below": 2000, "words": "under a stormy sky"}, {"words": "in bright sunshine"}]})
            .to_string(),
        ),
    ]);
    let (tick, log) = s.invoke("LiveFunction", serde_json::json!({"source": "aws.scheduler"})).await;
    assert_eq!(tick["evolved"], serde_json::json!([token]), "{tick}\n{log}");
    let by_feed: TokenMetadata = serde_json::from_slice(
        &fetch(collection.token_uri(&token).await.unwrap().trim_start_matches("ipfs://").to_string()).await,
    )
    .unwrap();
    assert!(by_feed.provenance.prompt.ends_with(", under a stormy sky"), "{}", by_feed.provenance.prompt);
    let reading = by_feed.provenance.evolution.and_then(|e| e.oracle).expect("the feed's answer in the record");
    assert_eq!((reading.answer.as_str(), reading.decimals), ("150000000000", 8));
    let (tick, log) = s.invoke("LiveFunction", serde_json::json!({"source": "aws.scheduler"})).await;
    assert_eq!(tick["evolved"], serde_json::json!([]), "one answer, one evolution\n{tick}\n{log}");
}

/// With a Content Credentials key configured but its certificate chain not uploaded, the
/// generate function stops at init and says which object to upload, before taking any event.
#[tokio::test(flavor = "multi_thread")]
async fn the_generate_function_stops_at_init_naming_a_missing_certificate_chain() {
    let s = stack(false).await;
    let log = s.init_failure("GenerateFunction").await;
    assert!(log.contains(CHAIN_KEY) && log.contains("LATENTMINT_CREDENTIALS_CHAIN"), "{log}");
}

/// A disc of `rgb` on the demo world's dark background, as PNG bytes.
fn disc_png(rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_fn(32, 32, |x, y| {
        let (dx, dy) = (x as f32 - 15.5, y as f32 - 15.5);
        image::Rgb(if dx * dx + dy * dy <= 81.0 { rgb } else { [18, 20, 28] })
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// `BrandReferences` names a prefix with no image under it (a typo, an upload not made): the
/// review function stops at init naming the variable and what to upload, rather than running
/// without the drift check the stack asked for.
#[tokio::test(flavor = "multi_thread")]
async fn the_review_function_stops_at_init_when_the_brand_references_are_missing() {
    let mut s = stack(true).await;
    s.refs.insert("BrandReferences", "brand/".into());
    S3BlobStore::new(s.moto.s3(), BUCKET, "").put("brand/notes.txt", b"not an image".to_vec()).await.unwrap();
    let log = s.init_failure("ReviewFunction").await;
    assert!(log.contains("LATENTMINT_QA_REFERENCES (brand/)") && log.contains("no .png under this prefix"), "{log}");
}

/// The intake function's other doors, on one instance: a collection file dropped in the bucket
/// (the S3 event EventBridge delivers), the same file named by a schedule (its jobs are queued
/// again, not duplicated), a shop's order signed with the secret in Secrets Manager (a
/// repeated order is the same job; a forged signature is refused), and a file whose `[living]`
/// the stack, deployed without living NFTs, does not follow (named in the answer).
#[tokio::test(flavor = "multi_thread")]
async fn the_intake_function_takes_dropped_files_schedules_and_signed_orders() {
    let mut s = stack(true).await;
    let secret = s.moto.secretsmanager().create_secret().name("latentmint/fn-webhook").secret_string("shop-secret");
    let secret = secret.send().await.unwrap().arn().unwrap().to_string();
    s.refs.insert("WebhookSecretArn", secret);
    S3BlobStore::new(s.moto.s3(), BUCKET, "")
        .put("collections/shop.toml", COLLECTION.as_bytes().to_vec())
        .await
        .unwrap();
    let intake = s.start("IntakeFunction").await;

    let dropped = serde_json::json!({
        "version": "0", "source": "aws.s3", "detail-type": "Object Created",
        "detail": {"bucket": {"name": BUCKET}, "object": {"key": "collections/shop.toml", "size": COLLECTION.len()}}
    });
    let (accepted, log) = intake.invoke(dropped).await;
    assert_eq!((accepted["jobs"].clone(), accepted["queued"].clone()), (1.into(), 1.into()), "{accepted}\n{log}");
    let (again, log) = intake.invoke(serde_json::json!({"collection": "collections/shop.toml"})).await;
    assert_eq!((again["queued"].clone(), again["requeued"].clone()), (0.into(), 1.into()), "{again}\n{log}");
    assert_eq!(again["job_ids"], accepted["job_ids"], "the same job");

    let order = r#"{"order_id": "o-1001", "prompt": "a blue square"}"#;
    let (response, log) = intake.invoke(signed_order("shop", order, b"shop-secret")).await;
    assert_eq!(response["statusCode"], 202, "{response}\n{log}");
    let body: serde_json::Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["state"], "queued", "{body}");
    // The shop's retry of that delivery: its first answer, from the record in the bucket.
    let (response, _) = intake.invoke(signed_order("shop", order, b"shop-secret")).await;
    assert_eq!(response["statusCode"], 200, "{response}");
    let repeated: serde_json::Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(repeated["job_id"], body["job_id"], "the shop's retry is the same job");
    assert_eq!(repeated["replayed"], true, "{repeated}");
    let (forged, _) = intake.invoke(signed_order("shop", order, b"guessed")).await;
    assert_eq!(forged["statusCode"], 401, "{forged}");

    let jobs = DynamoJobStore::new(s.moto.dynamodb(), TABLE);
    assert_eq!(jobs.list(Some(JobState::Queued)).await.unwrap().len(), 2, "one job per file prompt and per order");
    let queued = s.queues().receive(Stage::Generate.queue(), 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(queued.len(), 3, "file, schedule, order: the repeated delivery sent nothing");

    // A file asking for living NFTs, on a stack deployed without them: taken, and told so.
    let living = format!("{COLLECTION}\n[living]\nstrength = 0.5\n");
    S3BlobStore::new(s.moto.s3(), BUCKET, "").put("collections/living.toml", living.into_bytes()).await.unwrap();
    let (told, log) = intake.invoke(serde_json::json!({"collection": "collections/living.toml"})).await;
    assert_eq!(told["not_used"][0]["field"], "living", "{told}\n{log}");
    assert!(told["not_used"][0]["fix"].as_str().unwrap().contains("LivingEnabled=true"), "{told}");
}

/// With the `SageMakerEndpoint` parameter set, the generate function asks the endpoint first:
/// here the container's real `serve` binary, reached through the SDK's endpoint URL for
/// SageMaker Runtime. When the endpoint is down, the same function falls back to the layer's
/// ONNX engine and the record says why. Both images carry Content Credentials.
#[tokio::test(flavor = "multi_thread")]
async fn the_generate_function_asks_the_sagemaker_endpoint_first_and_falls_back_when_it_is_down() {
    let mut s = stack(true).await;
    s.refs.insert("SageMakerEndpoint", "latentmint-fn".to_string());
    let container = Container::start(&repo_root().join("models/shapes-sd"));
    let dead = format!(
        "http://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    );
    let jobs = DynamoJobStore::new(s.moto.dynamodb(), TABLE);
    for (endpoint_url, prompt) in [(&container.url, "a red circle"), (&dead, "a green square")] {
        let job = job_for(prompt);
        jobs.insert_if_absent(&job).await.unwrap();
        s.queues()
            .send(Stage::Generate.queue(), &StageMessage::new(Stage::Generate, job.id()).to_body())
            .await
            .unwrap();
        s.extra_env = vec![("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME".into(), endpoint_url.clone())];
        s.deliver("GenerateFunction", Stage::Generate).await;

        let stored = jobs.get(job.id()).await.unwrap().unwrap();
        let record = stored.generation.clone().expect("generated");
        if endpoint_url == &container.url {
            assert!(record.backend.starts_with("sagemaker:latentmint-fn"), "{}", record.backend);
            assert_eq!(record.fallback_reason, None);
        } else {
            assert_eq!(record.backend, "onnx-cpu");
            let why = record.fallback_reason.expect("why the fallback made it");
            assert!(why.contains("latentmint-fn"), "{why}");
        }
        let png =
            S3BlobStore::stage_blobs(s.moto.s3(), BUCKET).get(stored.image_key.as_deref().unwrap()).await.unwrap();
        let report = read(&png, Some(&s.ca_pem)).unwrap().expect("Content Credentials");
        assert_eq!(report.validation, Validation::Trusted, "{:?}", report.failures);
    }
}

/// A published job (as the publish function leaves it) with its mint message received from the
/// queue, a collection on anvil with the mint function's KMS wallet as minter, and automine off:
/// every transaction waits in the mempool until the test mines.
struct MintRig {
    _node: LocalNode,
    admin: Chain,
    contract: EvmAddress,
    wallet: alloy::primitives::Address,
    job: Job,
    jobs: DynamoJobStore,
    /// The mint message as the event source mapping delivers it.
    event: serde_json::Value,
}

async fn mint_rig(s: &mut Stack) -> MintRig {
    let node = LocalNode::spawn(&anvil(), LOCAL_CHAIN_ID, None).await.unwrap();
    let admin = Chain::connect(&node.rpc_url, node.dev_key(0).unwrap(), LOCAL_CHAIN_ID).await.unwrap();
    let contract = admin.deploy("Fn", "FN").await.unwrap();
    let (minting_key, wallet) = wallet_in_kms(&s.moto, &admin, contract, "MINTER_ROLE").await;
    s.refs.extend([
        ("ChainId", LOCAL_CHAIN_ID.to_string()),
        ("RpcUrls", node.rpc_url.clone()),
        ("ContractAddress", contract.to_string()),
        ("KmsKeyArn", minting_key),
    ]);
    let mut job = job_for("a red circle");
    job.state = JobState::Published;
    job.metadata_cid = Some(latentmint_core::cid::cid_of_bytes(b"{\"name\": \"Fn #1\"}"));
    let jobs = DynamoJobStore::new(s.moto.dynamodb(), TABLE);
    jobs.insert_if_absent(&job).await.unwrap();
    s.queues().send(Stage::Mint.queue(), &StageMessage::new(Stage::Mint, job.id()).to_body()).await.unwrap();
    let got = s.queues().receive(Stage::Mint.queue(), 10, Duration::from_secs(60)).await.unwrap();
    let event = sqs_event(&format!("latentmint-{STAGE}-mint.fifo"), &got[0]);
    let rig = MintRig { _node: node, admin, contract, wallet, job, jobs, event };
    rig.rpc("evm_setAutomine", serde_json::json!([false])).await;
    rig
}

impl MintRig {
    async fn rpc(&self, method: &'static str, params: serde_json::Value) {
        let _: serde_json::Value = self.admin.provider().raw_request(method.into(), params).await.unwrap();
    }

    /// Starts a mint function, hands it the mint message and returns once its transaction is
    /// in the mempool.
    async fn send_and_wait_in_mempool(&self, s: &Stack) -> Instance {
        let f = s.start("MintFunction").await;
        f.api.send(self.event.clone());
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.admin.provider().get_transaction_count(self.wallet).pending().await.unwrap() == 0 {
            assert!(std::time::Instant::now() < deadline, "no transaction sent: {}", s.log("MintFunction"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        f
    }

    /// One job minted, one token, one transaction from the wallet.
    async fn assert_minted_once(&self, log: &str) {
        let minted = self.jobs.get(self.job.id()).await.unwrap().unwrap();
        assert_eq!(minted.state, JobState::Minted, "{log}");
        let want = latentmint_core::ledger::single_token_id(self.job.metadata_cid.as_deref().unwrap());
        assert_eq!(minted.token_id, want, "the token id is the metadata's digest");
        assert_eq!(self.admin.minter(self.contract, SendPolicy::confirmations(1)).total_supply().await.unwrap(), 1);
        let sent = self.admin.provider().get_transaction_count(self.wallet).await.unwrap();
        assert_eq!(sent, 1, "one transaction: {log}");
    }
}

/// The mint function killed while its transaction waits in the mempool (Lambda's timeout, an
/// instance lost), then the same SQS message delivered to a fresh instance once the transaction
/// is mined: the new instance reads the token from the chain and records it, sending nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_mint_function_killed_mid_send_mints_once_when_the_message_comes_back() {
    let mut s = stack(true).await;
    let rig = mint_rig(&mut s).await;
    drop(rig.send_and_wait_in_mempool(&s).await);
    let job = rig.jobs.get(rig.job.id()).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Published, "killed before recording");
    rig.rpc("evm_setAutomine", serde_json::json!([true])).await;
    rig.rpc("evm_mine", serde_json::json!([])).await;

    let (response, log) = s.invoke("MintFunction", rig.event.clone()).await;
    assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{log}");
    rig.assert_minted_once(&log).await;
}

/// The same, but the message comes back while the first transaction is still unmined (a fee
/// spike): the new instance's mint takes the same nonce and replaces it instead of queueing a
/// second mint behind it, which would be mined after the first and revert.
#[tokio::test(flavor = "multi_thread")]
async fn a_mint_message_back_while_its_transaction_is_unmined_replaces_it() {
    let mut s = stack(true).await;
    let rig = mint_rig(&mut s).await;
    drop(rig.send_and_wait_in_mempool(&s).await);
    let second = s.start("MintFunction").await;
    let answer = {
        let invoke = second.invoke(rig.event.clone());
        tokio::pin!(invoke);
        // Let the second instance send its replacement, then mine.
        let early = tokio::time::timeout(Duration::from_secs(10), &mut invoke).await;
        assert!(early.is_err(), "the second instance waits for its transaction: {:?}", early.ok());
        rig.rpc("evm_setAutomine", serde_json::json!([true])).await;
        rig.rpc("evm_mine", serde_json::json!([])).await;
        invoke.await
    };
    let (response, log) = answer;
    assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{log}");
    rig.assert_minted_once(&log).await;
}

/// A stack deployed with `EditionCopies`: the mint function makes the job's ERC-1155 edition
/// on a LatentEditions contract and mints its copies to the recipient, once; the same stack
/// pointed at an ERC-721 contract stops at init and says which parameter to change.
#[tokio::test(flavor = "multi_thread")]
async fn an_editions_stack_mints_each_job_as_an_edition_of_its_copies() {
    let mut s = stack(true).await;
    let node = LocalNode::spawn(&anvil(), LOCAL_CHAIN_ID, None).await.unwrap();
    let admin = Chain::connect(&node.rpc_url, node.dev_key(0).unwrap(), LOCAL_CHAIN_ID).await.unwrap();
    let editions = admin.deploy_editions(&Default::default()).await.unwrap().address;
    let (minting_key, _) = wallet_in_kms(&s.moto, &admin, editions, "MINTER_ROLE").await;
    s.refs.extend([
        ("ChainId", LOCAL_CHAIN_ID.to_string()),
        ("RpcUrls", node.rpc_url.clone()),
        ("ContractAddress", editions.to_string()),
        ("KmsKeyArn", minting_key),
        ("EditionCopies", "3".to_string()),
        ("EditionMaxSupply", "10".to_string()),
    ]);
    let mut job = job_for("a red circle");
    job.state = JobState::Published;
    job.metadata_cid = Some(latentmint_core::cid::cid_of_bytes(b"{\"name\": \"Fn edition\"}"));
    let jobs = DynamoJobStore::new(s.moto.dynamodb(), TABLE);
    jobs.insert_if_absent(&job).await.unwrap();
    let message = StageMessage::new(Stage::Mint, job.id()).to_body();
    s.queues().send(Stage::Mint.queue(), &message).await.unwrap();
    let got = s.queues().receive(Stage::Mint.queue(), 10, Duration::from_secs(60)).await.unwrap();
    let event = sqs_event(&format!("latentmint-{STAGE}-mint.fifo"), &got[0]);
    let (response, log) = s.invoke("MintFunction", event.clone()).await;
    assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{log}");
    let minted = jobs.get(job.id()).await.unwrap().unwrap();
    assert_eq!((minted.state, minted.token_id.as_deref()), (JobState::Minted, Some("1")), "{log}");
    let e = latentmint_chain::contract::LatentEditions::new(to_alloy(editions), admin.provider().clone());
    let one = alloy::primitives::U256::from(1);
    let recipient = to_alloy(EvmAddress::parse_checksummed(RECIPIENT).unwrap());
    assert_eq!(e.balanceOf(recipient, one).call().await.unwrap(), alloy::primitives::U256::from(3));
    assert_eq!(e.editions(one).call().await.unwrap().maxSupply, 10);

    // The message again (SQS is at least once), to a fresh instance: nothing more is minted.
    let (response, log) = s.invoke("MintFunction", event).await;
    assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{log}");
    assert_eq!(e.totalSupply(one).call().await.unwrap(), alloy::primitives::U256::from(3), "{log}");

    // An ERC-721 contract under an editions stack: refused at init, before any event.
    let erc721 = admin.deploy("Fn", "FN").await.unwrap();
    s.refs.insert("ContractAddress", erc721.to_string());
    let log = s.init_failure("MintFunction").await;
    assert!(log.contains("LATENTMINT_CONTRACT") && log.contains("EditionCopies"), "{log}");
}

/// A stack deployed with `MintBatchSize`: the published jobs of one SQS event are minted in one
/// transaction from the mint function's KMS wallet, token `first + i` for the plan's job `i`,
/// their metadata pinned as one directory on the IPFS node; the same event again sends nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_batching_stack_mints_the_jobs_of_one_event_in_one_transaction() {
    let mut s = stack(true).await;
    let node = LocalNode::spawn(&anvil(), LOCAL_CHAIN_ID, None).await.unwrap();
    let admin = Chain::connect(&node.rpc_url, node.dev_key(0).unwrap(), LOCAL_CHAIN_ID).await.unwrap();
    let contract = admin.deploy("Fn", "FN").await.unwrap();
    let (minting_key, wallet) = wallet_in_kms(&s.moto, &admin, contract, "MINTER_ROLE").await;
    let ipfs = IpfsNode::start();
    s.refs.extend([
        ("ChainId", LOCAL_CHAIN_ID.to_string()),
        ("RpcUrls", node.rpc_url.clone()),
        ("ContractAddress", contract.to_string()),
        ("KmsKeyArn", minting_key),
        ("IpfsApiUrl", ipfs.api.clone()),
        ("MintBatchSize", "5".to_string()),
    ]);
    // Three jobs as the publish function leaves them: signed metadata kept in the bucket.
    let blobs = S3BlobStore::stage_blobs(s.moto.s3(), BUCKET);
    let jobs = DynamoJobStore::new(s.moto.dynamodb(), TABLE);
    for (i, mut job) in jobs_for(&["a red circle", "a blue square", "a green ring"]).into_iter().enumerate() {
        let metadata = format!("{{\"name\": \"Fn #{i}\"}}").into_bytes();
        job.state = JobState::Published;
        job.metadata_cid = Some(latentmint_core::cid::cid_of_bytes(&metadata));
        blobs.put(&format!("metadata/{}.json", job.id()), metadata).await.unwrap();
        jobs.insert_if_absent(&job).await.unwrap();
        s.queues().send(Stage::Mint.queue(), &StageMessage::new(Stage::Mint, job.id()).to_body()).await.unwrap();
    }
    let got = s.queues().receive(Stage::Mint.queue(), 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(got.len(), 3, "one event of three records");
    let event = sqs_batch_event(&format!("latentmint-{STAGE}-mint.fifo"), &got);
    let (response, log) = s.invoke("MintFunction", event.clone()).await;
    assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{log}");
    assert!(log.contains("batch minted"), "{log}");

    let minted = jobs.list(Some(JobState::Minted)).await.unwrap();
    assert_eq!(minted.len(), 3, "{log}");
    assert_eq!(admin.provider().get_transaction_count(wallet).await.unwrap(), 1, "one transaction for the three");
    let collection = admin.minter(contract, SendPolicy::confirmations(1));
    let pinner = latentmint_ipfs::KuboPinner::new(&ipfs.api, None).unwrap();
    let slot = minted[0].batch.expect("minted in a batch");
    let first = latentmint_core::ports::Minter::minted_batch(&collection, slot.batch).await.unwrap().unwrap().first;
    for job in &minted {
        let slot = job.batch.expect("minted in a batch");
        let token = (first + u64::from(slot.index)).to_string();
        assert_eq!(job.token_id.as_deref(), Some(token.as_str()));
        let uri = collection.token_uri(&token).await.unwrap();
        let (dir, entry) = uri.trim_start_matches("ipfs://").split_once('/').expect("ipfs://<dir>/<i>");
        assert_eq!(entry, slot.index.to_string());
        let block = latentmint_core::ports::ContentSource::fetch_block(&pinner, dir).await.unwrap();
        let links = latentmint_core::cid::directory_links(dir, &block).unwrap();
        assert!(links.contains(&(entry.to_string(), job.metadata_cid.clone().unwrap())), "{links:?}");
    }

    // The same event to a fresh instance (SQS is at least once): nothing more is sent.
    let (response, log) = s.invoke("MintFunction", event).await;
    assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{log}");
    assert_eq!(admin.provider().get_transaction_count(wallet).await.unwrap(), 1);
    assert_eq!(collection.total_supply().await.unwrap(), 3);
}

/// Least privilege, checked on what SAM's translator makes of the template: every function's
/// role may do exactly its stage's actions on its own resources, and a function that gains an
/// action or a resource outside its list fails this test. (Conditional statements are counted
/// as present: a stack may enable them.)
#[test]
fn every_function_holds_only_its_stages_permissions() {
    let t = translated_template();
    let resources = t["Resources"].as_object().unwrap();
    let sqs = |queue: &str, actions: &[&'static str]| -> Vec<(&'static str, String)> {
        actions
            .iter()
            .map(|a| {
                (*a, format!("arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:${{{queue}.QueueName}}"))
            })
            .collect()
    };
    const POLL: &[&str] = &[
        "sqs:ChangeMessageVisibility",
        "sqs:ChangeMessageVisibilityBatch",
        "sqs:DeleteMessage",
        "sqs:DeleteMessageBatch",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
    ];
    let bucket = |action: &'static str, prefix: &str| {
        (action, format!("arn:${{AWS::Partition}}:s3:::${{ImageBucket}}/{prefix}"))
    };
    let jobs = |actions: &[&'static str]| -> Vec<(&'static str, String)> {
        actions.iter().map(|a| (*a, "${JobsTable.Arn}".to_string())).collect()
    };
    let key = |param: &str| vec![("kms:GetPublicKey", format!("${{{param}}}")), ("kms:Sign", format!("${{{param}}}"))];
    let endpoint = (
        "sagemaker:InvokeEndpoint",
        "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:endpoint/${SageMakerEndpoint}".to_string(),
    );
    let chain = bucket("s3:GetObject", "${ContentCredentialsChainKey}");
    let allowed: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "IntakeFunction",
            [
                jobs(&["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]),
                sqs("GenerateQueue", &["sqs:SendMessage*"]),
                vec![
                    bucket("s3:GetObject", "collections/*"),
                    bucket("s3:GetObject", "webhooks/deliveries/*"),
                    bucket("s3:PutObject", "webhooks/deliveries/*"),
                    ("secretsmanager:GetSecretValue", "${WebhookSecretArn}".into()),
                ],
            ]
            .concat(),
        ),
        (
            "GenerateFunction",
            [
                jobs(&["dynamodb:GetItem", "dynamodb:UpdateItem"]),
                sqs("GenerateQueue", POLL),
                sqs("ReviewQueue", &["sqs:SendMessage*"]),
                vec![bucket("s3:PutObject", "blobs/images/*"), endpoint.clone(), chain.clone()],
                key("ContentCredentialsKmsKeyArn"),
            ]
            .concat(),
        ),
        (
            "ReviewFunction",
            [
                jobs(&["dynamodb:GetItem", "dynamodb:Scan", "dynamodb:UpdateItem"]),
                sqs("ReviewQueue", POLL),
                sqs("PublishQueue", &["sqs:SendMessage*"]),
                vec![
                    bucket("s3:GetObject", "blobs/images/*"),
                    // The brand's reference images (BrandReferences), when the stack names them.
                    ("s3:ListBucket", "arn:${AWS::Partition}:s3:::${ImageBucket}".into()),
                    bucket("s3:GetObject", "${BrandReferences}*"),
                ],
            ]
            .concat(),
        ),
        (
            "PublishFunction",
            [
                jobs(&["dynamodb:GetItem", "dynamodb:UpdateItem"]),
                sqs("PublishQueue", POLL),
                sqs("MintQueue", &["sqs:SendMessage*"]),
                vec![
                    bucket("s3:GetObject", "blobs/images/*"),
                    bucket("s3:GetObject", "blobs/metadata/*"),
                    bucket("s3:PutObject", "blobs/metadata/*"),
                ],
                // The records' key only: the publish function cannot sign a mint.
                key("MetadataKmsKeyArn"),
            ]
            .concat(),
        ),
        (
            "MintFunction",
            [
                jobs(&["dynamodb:GetItem", "dynamodb:UpdateItem"]),
                sqs("MintQueue", POLL),
                vec![
                    bucket("s3:GetObject", "blobs/metadata/*"),
                    bucket("s3:GetObject", "blobs/batches/*"),
                    bucket("s3:PutObject", "blobs/batches/*"),
                ],
                // The minting key only.
                key("KmsKeyArn"),
            ]
            .concat(),
        ),
        (
            "LiveFunction",
            [
                vec![
                    ("dynamodb:GetItem", "${EvolutionsTable.Arn}".to_string()),
                    ("dynamodb:PutItem", "${EvolutionsTable.Arn}".to_string()),
                    endpoint,
                    chain,
                ],
                key("MetadataKmsKeyArn"),
                key("ContentCredentialsKmsKeyArn"),
            ]
            .concat(),
        ),
    ];
    // AWS's managed policies SAM attaches: logs for every function, and for SQS event sources
    // the poller's (which names no queue: the one exception, see docs/threat-model.md).
    let managed_ok = [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
    ];
    let mut seen = 0;
    for (name, r) in resources.iter().filter(|(_, r)| r["Type"] == "AWS::Lambda::Function") {
        let allow = &allowed
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name}: a function with no permission list here: add one"))
            .1;
        let role = r["Properties"]["Role"]["Fn::GetAtt"][0].as_str().unwrap();
        let props = &resources[role]["Properties"];
        for arn in props["ManagedPolicyArns"].as_array().into_iter().flatten() {
            assert!(managed_ok.contains(&arn.as_str().unwrap()), "{name}: managed policy {arn}");
        }
        let mut granted = Vec::new();
        for policy in props["Policies"].as_array().into_iter().flatten() {
            for s in statements(present(policy).map(|p| &p["PolicyDocument"])) {
                assert_eq!(s["Effect"], "Allow", "{name}: {s}");
                for action in one_or_many(&s["Action"]) {
                    for resource in one_or_many(&s["Resource"]) {
                        granted.push((action.as_str().unwrap().to_string(), resolved(resource)));
                    }
                }
            }
        }
        let extra: Vec<_> = granted.iter().filter(|(a, r)| !allow.iter().any(|(aa, rr)| aa == a && rr == r)).collect();
        assert!(extra.is_empty(), "{name} holds permissions outside its stage's list: {extra:#?}");
        for (a, r) in allow {
            assert!(
                granted.iter().any(|(ga, gr)| ga == a && gr == r),
                "{name} lacks {a} on {r}, which its stage needs"
            );
        }
        seen += 1;
    }
    assert_eq!(seen, allowed.len(), "every listed function is in the template");

    // The bucket refuses anything but TLS.
    let policy = resources.values().find(|r| r["Type"] == "AWS::S3::BucketPolicy").expect("a bucket policy");
    let deny = &policy["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!((&deny["Effect"], &deny["Condition"]["Bool"]["aws:SecureTransport"]), (&"Deny".into(), &"false".into()));
}

/// A value present in the template: the first branch of an `Fn::If` (`None` for AWS::NoValue).
fn present(v: &serde_json::Value) -> Option<&serde_json::Value> {
    match v.get("Fn::If") {
        Some(branches) => present(&branches[1]),
        None if v.get("Ref").is_some_and(|r| r == "AWS::NoValue") => None,
        None => Some(v),
    }
}

fn statements(doc: Option<&serde_json::Value>) -> Vec<&serde_json::Value> {
    let Some(doc) = doc.and_then(present) else { return vec![] };
    one_or_many(&doc["Statement"]).into_iter().filter_map(present).collect()
}

fn one_or_many(v: &serde_json::Value) -> Vec<&serde_json::Value> {
    match v.as_array() {
        Some(a) => a.iter().collect(),
        None => vec![v],
    }
}

/// A resource as text: `${Param}` for a Ref, `${Res.Attr}` for a GetAtt, a Sub's template with
/// its variables put in.
fn resolved(v: &serde_json::Value) -> String {
    if let Some(s) = v.as_str() {
        return s.to_string();
    }
    if let Some(r) = v.get("Ref").and_then(|r| r.as_str()) {
        return format!("${{{r}}}");
    }
    if let Some(g) = v.get("Fn::GetAtt").and_then(|g| g.as_array()) {
        return format!("${{{}}}", g.iter().filter_map(|p| p.as_str()).collect::<Vec<_>>().join("."));
    }
    match v.get("Fn::Sub") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(parts)) => {
            let mut s = parts[0].as_str().unwrap_or_default().to_string();
            for (k, val) in parts[1].as_object().into_iter().flatten() {
                s = s.replace(&format!("${{{k}}}"), &resolved(val));
            }
            s
        }
        _ => v.to_string(),
    }
}
