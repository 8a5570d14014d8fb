//! `latentmint-lambda`: one binary for every stage function of the SAM stack. The stage comes
//! from `LATENTMINT_STAGE`; the adapters from the stack's resources, named in environment
//! variables that template.yaml sets:
//!
//! | variable | what |
//! | --- | --- |
//! | `LATENTMINT_STAGE` | `intake` (HTTP API, dropped files, schedule), `generate`, `review`, `publish` or `mint` (SQS), `live` (schedule) |
//! | `LATENTMINT_QUEUE_PREFIX` | stage queues are `<prefix><stage>` (`latentmint-dev-`) |
//! | `LATENTMINT_MINT_GROUP` | message group of the FIFO mint queue (the wallet) |
//! | `LATENTMINT_JOBS_TABLE` | DynamoDB job table |
//! | `LATENTMINT_BUCKET` | S3 bucket for images |
//! | `LATENTMINT_ENDPOINT` | generate: SageMaker endpoint (optional) |
//! | `LATENTMINT_MODEL_DIR`, `ORT_DYLIB_PATH` | generate, live: ONNX model folder and ONNX Runtime for the CPU fallback (the stack's `GenerationLayer`, under `/opt`) |
//! | `LATENTMINT_CREDENTIALS_KMS_KEY_ID`, `LATENTMINT_CREDENTIALS_CHAIN` | generate, live: the KMS key (ECC_NIST_P256) that signs each image's Content Credentials, and the bucket object with its PEM certificate chain (key empty: no credentials) |
//! | `LATENTMINT_QA_CLIP_DIR`, `LATENTMINT_QA_SAFETY_DIR`, `LATENTMINT_QA_REFERENCES` | review: the image-text model, the safety checker (else the one `LATENTMINT_MODEL_DIR`'s model ships), and the bucket prefix of the brand's reference images (empty: no drift check) |
//! | `LATENTMINT_IPFS_API` | publish: Kubo RPC API of the IPFS node or pinning service |
//! | `LATENTMINT_METADATA_KMS_KEY_ID`, `LATENTMINT_CHAIN_ID`, `LATENTMINT_CONTRACT` | publish: signs provenance records (EIP-712) with the records' key (METADATA_ROLE), never the minting key |
//! | `LATENTMINT_RPC_URLS`, `LATENTMINT_CHAIN_ID`, `LATENTMINT_CONTRACT`, `LATENTMINT_KMS_KEY_ID` | mint |
//! | `LATENTMINT_EDITION_COPIES`, `LATENTMINT_EDITION_MAX_SUPPLY` | mint, intake: copies of each ERC-1155 edition and its cap (0 or unset: ERC-721 tokens; 0 cap: open editions) |
//! | `LATENTMINT_MINT_BATCH` | mint: the most jobs of one event minted in one transaction (`MintBatchSize`); intake: named to files that ask otherwise |
//! | `LATENTMINT_CHAIN_ID`, `LATENTMINT_CONTRACT` | intake: submitted collections must agree |
//! | `LATENTMINT_LIVING_ENABLED` | intake: whether the live function runs (`true`), so a file's `[living]` is compared with the `LATENTMINT_LIVING_*` settings |
//! | `LATENTMINT_WEBHOOK_SECRET_ARN` | intake: the Secrets Manager secret holding the HMAC key of the shops' order webhooks (unset: no webhooks) |
//! | `LATENTMINT_EVOLUTIONS_TABLE`, `LATENTMINT_METADATA_KMS_KEY_ID` | live: evolution records; the key holding `METADATA_ROLE` |
//! | `LATENTMINT_LIVING_STRENGTH`, `LATENTMINT_LIVING_PROMPT`, `LATENTMINT_LIVING_MAX_GENERATIONS` | live, intake: the collection's `[living]` |
//! | `LATENTMINT_LIVING_ORACLE` | live, intake: the collection's `[living.oracle]` as JSON (empty: evolve on transfers) |
//! | `LATENTMINT_FROM_BLOCK` | live: the contract's deployment block, where the watches start |
//!
//! Adapters are created once per Lambda instance (init), not per event. A function is built
//! with its stage's adapters alone (`latentmint_stages::ports`): it holds nothing its stage
//! does not use.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use latentmint_aws::{
    DynamoEvolutionStore, DynamoJobStore, KmsSigner, S3BlobStore, SageMakerGenerator, SharedSecret, SqsQueue,
    generator_stack, kms_stamper,
};
use latentmint_chain::{Chain, CollectionMinter, EvmProvenanceSigner, SendPolicy};
use latentmint_core::collection::{ChainSection, EditionsSection, LivingSection};
use latentmint_core::living::EvolutionState;
use latentmint_core::ports::{BlobStore, Generator, Minter, ProvenanceSigner};
use latentmint_core::{EvmAddress, Stage};
use latentmint_credentials::Credentialed;
use latentmint_diffusion::{EngineOptions, OnnxGenerator};
use latentmint_ipfs::KuboPinner;
use latentmint_lambda::intake::{StackChain, WebhookKeys, handle_file, handle_http, handle_webhook};
use latentmint_stages::evolve::{self, EvolvePorts, Watch};
use latentmint_stages::ports::{self, StagePorts};

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set: the stack's template.yaml sets it for each function"))
}

/// The stack's `[editions]`: `LATENTMINT_EDITION_COPIES` copies of each edition (0 or unset:
/// the stack mints ERC-721 tokens), capped at `LATENTMINT_EDITION_MAX_SUPPLY` (0 or unset: open).
fn editions() -> anyhow::Result<Option<EditionsSection>> {
    let number = |name: &str| -> anyhow::Result<u64> {
        match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => {
                v.trim().parse().with_context(|| format!("{name}: `{v}` is not a whole number"))
            }
            _ => Ok(0),
        }
    };
    let copies = number("LATENTMINT_EDITION_COPIES")?;
    if copies == 0 {
        return Ok(None);
    }
    let cap = number("LATENTMINT_EDITION_MAX_SUPPLY")?;
    let e = EditionsSection { copies, max_supply: (cap > 0).then_some(cap) };
    e.check().map_err(|err| anyhow::anyhow!("LATENTMINT_EDITION_COPIES / LATENTMINT_EDITION_MAX_SUPPLY: {err}"))?;
    Ok(Some(e))
}

/// The generator of the generate and live functions: SageMaker first, the ONNX fallback, and
/// Content Credentials on every image when a KMS key is configured for them.
async fn generator(cfg: &aws_config::SdkConfig) -> anyhow::Result<Arc<dyn Generator>> {
    let generator = uncredentialed().await?;
    let key = std::env::var("LATENTMINT_CREDENTIALS_KMS_KEY_ID").unwrap_or_default();
    if key.is_empty() {
        tracing::warn!("LATENTMINT_CREDENTIALS_KMS_KEY_ID is empty: images carry no Content Credentials");
        return Ok(generator);
    }
    let chain_key = env("LATENTMINT_CREDENTIALS_CHAIN")?;
    let bucket = S3BlobStore::new(aws_sdk_s3::Client::new(cfg), env("LATENTMINT_BUCKET")?, "");
    let stamper = kms_stamper(aws_sdk_kms::Client::new(cfg), &key, &bucket, &chain_key)
        .await
        .context("LATENTMINT_CREDENTIALS_KMS_KEY_ID, LATENTMINT_CREDENTIALS_CHAIN")?;
    Ok(Arc::new(Credentialed::new(generator, Arc::new(stamper))))
}

async fn uncredentialed() -> anyhow::Result<Arc<dyn Generator>> {
    let onnx = match std::env::var("LATENTMINT_MODEL_DIR") {
        Ok(dir) => Some(Arc::new(
            OnnxGenerator::load(dir.as_ref(), &EngineOptions::default())
                .with_context(|| format!("LATENTMINT_MODEL_DIR ({dir})"))?,
        ) as Arc<dyn Generator>),
        Err(_) => None,
    };
    let endpoint = std::env::var("LATENTMINT_ENDPOINT").ok().filter(|e| !e.is_empty());
    if endpoint.is_none() && onnx.is_none() {
        bail!("set LATENTMINT_ENDPOINT (SageMaker) or LATENTMINT_MODEL_DIR (ONNX fallback), or both");
    }
    let endpoint = match endpoint {
        Some(ep) => Some((ep.clone(), Arc::new(SageMakerGenerator::from_env(ep).await) as Arc<dyn Generator>)),
        None => None,
    };
    // The same stack as `latentmint run`'s: the endpoint first, the local engine as its fallback.
    Ok(generator_stack(endpoint, onnx)?)
}

/// The review function's checks: statistics and the perceptual hash, the image-text model in
/// `LATENTMINT_QA_CLIP_DIR` (a folder of the generation layer) when set, with the brand's
/// reference images under the bucket prefix `LATENTMINT_QA_REFERENCES` (brand drift), and the
/// safety checker in `LATENTMINT_QA_SAFETY_DIR`, or else the one the model in
/// `LATENTMINT_MODEL_DIR` ships.
async fn inspector(cfg: &aws_config::SdkConfig) -> anyhow::Result<Arc<latentmint_qa::ImageInspector>> {
    let clip = match std::env::var("LATENTMINT_QA_CLIP_DIR").ok().filter(|d| !d.trim().is_empty()) {
        Some(dir) => Some(
            latentmint_qa::clip::ClipScorer::load(dir.as_ref())
                .with_context(|| format!("LATENTMINT_QA_CLIP_DIR ({dir})"))?,
        ),
        None => None,
    };
    let set = |name: &str| std::env::var(name).ok().filter(|d| !d.trim().is_empty());
    let safety = match (set("LATENTMINT_QA_SAFETY_DIR"), set("LATENTMINT_MODEL_DIR")) {
        (Some(dir), _) => Some(("LATENTMINT_QA_SAFETY_DIR", dir)),
        (None, Some(model)) if latentmint_qa::safety::SafetyChecker::present(model.as_ref()) => {
            Some(("LATENTMINT_MODEL_DIR", model))
        }
        _ => None,
    };
    let safety = match safety {
        Some((var, dir)) => Some(
            latentmint_qa::safety::SafetyChecker::load_with(dir.as_ref(), None)
                .with_context(|| format!("{var} ({dir})"))?,
        ),
        None => None,
    };
    let inspector = latentmint_qa::ImageInspector::new().with_clip(clip).with_safety(safety);
    let Some(prefix) = set("LATENTMINT_QA_REFERENCES") else { return Ok(Arc::new(inspector)) };
    let var = "LATENTMINT_QA_REFERENCES";
    let bucket = S3BlobStore::new(aws_sdk_s3::Client::new(cfg), env("LATENTMINT_BUCKET")?, "");
    let keys = bucket
        .keys_under(&prefix, latentmint_core::collection::MAX_REFERENCES)
        .await
        .with_context(|| format!("{var} ({prefix}): listing the brand's reference images"))?;
    let keys: Vec<String> = keys.into_iter().filter(|k| k.to_ascii_lowercase().ends_with(".png")).collect();
    if keys.is_empty() {
        bail!(
            "{var} ({prefix}): no .png under this prefix of the bucket; upload the brand's reference images there, or set BrandReferences to empty"
        );
    }
    let mut pngs = Vec::with_capacity(keys.len());
    for key in &keys {
        pngs.push(bucket.get(key).await.with_context(|| format!("{var}: reading {key}"))?);
    }
    let inspector = inspector.with_references(&pngs).with_context(|| {
        format!("{var} ({prefix}): {} reference images, each a PNG, read by LATENTMINT_QA_CLIP_DIR's model", keys.len())
    })?;
    tracing::info!(references = keys.len(), prefix = %prefix, "brand reference images loaded");
    Ok(Arc::new(inspector))
}

/// The stack's chain, from its parameters (`LATENTMINT_RPC_URLS`, `LATENTMINT_CHAIN_ID`,
/// `LATENTMINT_CONTRACT`, `LATENTMINT_MAX_FEE_GWEI`): read the same way by the mint and the
/// living functions.
struct StackChainEnv {
    urls: Vec<String>,
    chain_id: u64,
    contract: EvmAddress,
    /// The policy `latentmint run` builds from a collection's `[chain]` section
    /// ([`SendPolicy::for_chain`]): the network preset's confirmations and L1 fee model, the
    /// fee cap. Four sends of 45 s fit the functions' 240 s timeout; past that the message is
    /// retried, and the retry reads the chain first.
    policy: SendPolicy,
}

fn stack_chain_env() -> anyhow::Result<StackChainEnv> {
    let urls: Vec<String> = env("LATENTMINT_RPC_URLS")?.split(',').map(|u| u.trim().to_string()).collect();
    let chain_id: u64 = env("LATENTMINT_CHAIN_ID")?.parse().context("LATENTMINT_CHAIN_ID: not a number")?;
    let contract = EvmAddress::parse_any_case(&env("LATENTMINT_CONTRACT")?).context("LATENTMINT_CONTRACT")?;
    let max_fee_gwei = match std::env::var("LATENTMINT_MAX_FEE_GWEI").ok().filter(|g| !g.trim().is_empty()) {
        Some(g) => Some(g.trim().parse::<f64>().ok().filter(|g| g.is_finite() && *g > 0.0).with_context(|| {
            format!("LATENTMINT_MAX_FEE_GWEI `{g}`: give a positive number of gwei, or leave it empty for no cap")
        })?),
        None => None,
    };
    let section = ChainSection { chain_id: Some(chain_id), max_fee_gwei, ..ChainSection::default() };
    let policy = SendPolicy::for_chain(&section).with_stuck_after(Duration::from_secs(45), 3);
    Ok(StackChainEnv { urls, chain_id, contract, policy })
}

async fn minter(cfg: &aws_config::SdkConfig) -> anyhow::Result<Arc<dyn Minter>> {
    let StackChainEnv { urls, chain_id, contract, policy } = stack_chain_env()?;
    // AWS mode signs through KMS only: no raw key is read here.
    let signer = KmsSigner::new(aws_sdk_kms::Client::new(cfg), env("LATENTMINT_KMS_KEY_ID")?, Some(chain_id)).await?;
    let chain = Chain::connect_signer(&urls, signer, chain_id).await?;
    let editions = editions()?;
    // A contract of the other kind would refuse every mint; say so once, at init.
    if chain.is_editions(contract).await? != editions.is_some() {
        bail!(
            "LATENTMINT_CONTRACT: {contract} is not a {} contract; deploy one with `latentmint deploy` and set ContractAddress, or change EditionCopies",
            if editions.is_some() { "LatentEditions (ERC-1155)" } else { "LatentCollection (ERC-721)" }
        );
    }
    Ok(chain.minter_for(contract, editions.map(Into::into), policy).port())
}

/// `LATENTMINT_MINT_BATCH`: the most jobs of one SQS event the mint function mints in one
/// transaction (1 when unset).
fn mint_batch() -> anyhow::Result<usize> {
    let Ok(text) = std::env::var("LATENTMINT_MINT_BATCH") else { return Ok(1) };
    let n: usize = text.trim().parse().with_context(|| format!("LATENTMINT_MINT_BATCH `{text}`: not a number"))?;
    if !(1..=latentmint_core::batch::MAX_BATCH).contains(&n) {
        bail!("LATENTMINT_MINT_BATCH {n}: use 1 (each job alone) to {}", latentmint_core::batch::MAX_BATCH);
    }
    if n > 1 && editions()?.is_some() {
        bail!(
            "LATENTMINT_MINT_BATCH {n}: editions are minted one job at a time; set MintBatchSize to 1, or EditionCopies to 0"
        );
    }
    Ok(n)
}

/// The stack's common adapters: the stage queues (the mint queue FIFO, one message group per
/// wallet), the job table and the bucket's stage prefix.
struct Common {
    queue: Arc<SqsQueue>,
    jobs: Arc<DynamoJobStore>,
    blobs: Arc<S3BlobStore>,
}

async fn common(cfg: &aws_config::SdkConfig) -> anyhow::Result<Common> {
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(cfg), env("LATENTMINT_QUEUE_PREFIX")?)
        .with_fifo(Stage::Mint.queue(), env("LATENTMINT_MINT_GROUP")?);
    Ok(Common {
        queue: Arc::new(queue),
        jobs: Arc::new(DynamoJobStore::new(aws_sdk_dynamodb::Client::new(cfg), env("LATENTMINT_JOBS_TABLE")?)),
        blobs: Arc::new(S3BlobStore::stage_blobs(aws_sdk_s3::Client::new(cfg), env("LATENTMINT_BUCKET")?)),
    })
}

/// Serves `ports`' stage: each SQS event through [`latentmint_lambda::handle`].
async fn serve<P: StagePorts>(ports: P) -> Result<(), lambda_runtime::Error> {
    // The mint queue is FIFO: a failure holds back the rest of its message group.
    let fifo = P::STAGE == Stage::Mint;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let ports = &ports;
        async move { Ok::<_, lambda_runtime::Error>(latentmint_lambda::handle(ports, event.payload, fifo).await) }
    }))
    .await
}

/// Builds `stage`'s function, with its stage's adapters and no others, and serves it.
async fn stage_function(stage: Stage) -> Result<(), lambda_runtime::Error> {
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let Common { queue, jobs, blobs } = common(&cfg).await?;
    match stage {
        Stage::Generate => serve(ports::Generate { queue, jobs, blobs, generator: generator(&cfg).await? }).await,
        Stage::Review => serve(ports::Review { queue, jobs, blobs, inspector: inspector(&cfg).await? }).await,
        Stage::Publish => {
            let pinner =
                Arc::new(KuboPinner::new(&env("LATENTMINT_IPFS_API")?, std::env::var("LATENTMINT_IPFS_AUTH").ok())?);
            serve(ports::Publish { queue, jobs, blobs, pinner, signer: provenance_signer(&cfg).await? }).await
        }
        Stage::Mint => {
            let batch = mint_batch()?;
            // Pins a batch's metadata directory, and reads back the content of a token the
            // chain already holds for a job.
            let pinner =
                Arc::new(KuboPinner::new(&env("LATENTMINT_IPFS_API")?, std::env::var("LATENTMINT_IPFS_AUTH").ok())?);
            let ports = ports::Mint { queue, jobs, blobs, pinner, minter: minter(&cfg).await? };
            if batch <= 1 {
                return serve(ports).await;
            }
            lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
                let ports = &ports;
                async move {
                    Ok::<_, lambda_runtime::Error>(
                        latentmint_lambda::handle_mint_batch(ports, event.payload, batch).await,
                    )
                }
            }))
            .await
        }
    }
}

/// The publisher's signature on provenance records: the records' key in KMS (its wallet holds
/// METADATA_ROLE), never the minting key, which only the mint function may use.
async fn provenance_signer(cfg: &aws_config::SdkConfig) -> anyhow::Result<Arc<dyn ProvenanceSigner>> {
    let chain_id: u64 = env("LATENTMINT_CHAIN_ID")?.parse().context("LATENTMINT_CHAIN_ID: not a number")?;
    let contract = EvmAddress::parse_any_case(&env("LATENTMINT_CONTRACT")?).context("LATENTMINT_CONTRACT")?;
    let kms =
        KmsSigner::new(aws_sdk_kms::Client::new(cfg), env("LATENTMINT_METADATA_KMS_KEY_ID")?, Some(chain_id)).await?;
    Ok(Arc::new(EvmProvenanceSigner::new(Arc::new(kms), chain_id, latentmint_chain::to_alloy(contract))))
}

/// How long the webhook secret is kept after a read, and how soon a signature that matches no
/// cached version may read it again (a rotation takes effect within seconds, forged requests
/// cost at most one Secrets Manager call per this interval).
const WEBHOOK_SECRET_TTL: Duration = Duration::from_secs(300);
const WEBHOOK_SECRET_MIN_REFRESH: Duration = Duration::from_secs(30);

/// The intake function's adapters.
struct IntakeFunction {
    /// The job table and the generate queue.
    ports: ports::Intake,
    stack: StackChain,
    /// The bucket it reads dropped collection files from.
    files: S3BlobStore,
    /// The shops' webhook secret; `None`: no webhooks.
    webhook_keys: Option<SharedSecret>,
}

async fn intake_function() -> anyhow::Result<IntakeFunction> {
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&cfg), env("LATENTMINT_QUEUE_PREFIX")?);
    let stack = StackChain {
        chain_id: env("LATENTMINT_CHAIN_ID")?.parse().context("LATENTMINT_CHAIN_ID: not a number")?,
        contract: EvmAddress::parse_any_case(&env("LATENTMINT_CONTRACT")?).context("LATENTMINT_CONTRACT")?,
        editions: editions()?,
        living: match std::env::var("LATENTMINT_LIVING_ENABLED").as_deref() {
            Ok("true") => Some(living_settings()?),
            _ => None,
        },
        mint_batch: mint_batch()? as u32,
    };
    let ports = ports::Intake {
        queue: Arc::new(queue),
        jobs: Arc::new(DynamoJobStore::new(aws_sdk_dynamodb::Client::new(&cfg), env("LATENTMINT_JOBS_TABLE")?)),
    };
    // Keys as the events name them (`collections/...`): no prefix.
    let files = S3BlobStore::new(aws_sdk_s3::Client::new(&cfg), env("LATENTMINT_BUCKET")?, "");
    // Read on the first order, not here: a stack without webhooks never calls Secrets Manager.
    let webhook_keys = std::env::var("LATENTMINT_WEBHOOK_SECRET_ARN").ok().filter(|arn| !arn.is_empty()).map(|arn| {
        SharedSecret::new(
            aws_sdk_secretsmanager::Client::new(&cfg),
            arn,
            WEBHOOK_SECRET_TTL,
            WEBHOOK_SECRET_MIN_REFRESH,
        )
    });
    Ok(IntakeFunction { ports, stack, files, webhook_keys })
}

/// One intake event: an HTTP API request, an S3 "Object Created" event from EventBridge (a
/// file dropped under `collections/`), or a schedule's `{"collection": "<key>"}`.
async fn intake_event(
    f: &IntakeFunction,
    event: serde_json::Value,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    let IntakeFunction { ports, stack, files, webhook_keys } = f;
    if event.get("requestContext").is_some() {
        let req: ApiGatewayV2httpRequest = serde_json::from_value(event)?;
        let response = if req.raw_path.as_deref().unwrap_or_default().starts_with("/webhooks/") {
            let keys = webhook_keys.as_ref().map(|k| k as &dyn WebhookKeys);
            handle_webhook(ports, stack, files, keys, req).await
        } else {
            handle_http(ports, stack, req).await
        };
        return Ok(serde_json::to_value(response)?);
    }
    let key = event.pointer("/detail/object/key").or_else(|| event.get("collection")).and_then(|k| k.as_str()).ok_or(
        "the intake function takes an HTTP API request, an S3 Object Created event, or {\"collection\": \"<key>\"}",
    )?;
    Ok(handle_file(ports, stack, files, key).await?)
}

/// The living-NFT watcher: everything [`evolve::scan`] needs, built once per instance.
struct Live {
    generator: Arc<dyn Generator>,
    pinner: KuboPinner,
    minter: CollectionMinter,
    store: DynamoEvolutionStore,
    signer: EvmProvenanceSigner,
    living: LivingSection,
    chain_id: u64,
    confirmations: u64,
    /// Where the watches start when they have no cursor yet: the contract's deployment block.
    from_block: u64,
}

async fn live() -> anyhow::Result<Live> {
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let StackChainEnv { urls, chain_id, contract, policy } = stack_chain_env()?;
    if editions()?.is_some() {
        bail!(
            "LATENTMINT_EDITION_COPIES: living NFTs evolve ERC-721 tokens (ERC-4906), and this stack mints ERC-1155 editions; set EditionCopies to 0 or LivingEnabled to false"
        );
    }
    // Its own wallet (METADATA_ROLE), so its setTokenURI never races the mint function's nonces.
    let key = env("LATENTMINT_METADATA_KMS_KEY_ID")?;
    let signer = KmsSigner::new(aws_sdk_kms::Client::new(&cfg), key, Some(chain_id)).await?;
    let chain = Chain::connect_signer(&urls, signer, chain_id).await?;
    let confirmations = policy.confirmations;
    let minter = chain.minter(contract, policy);
    let number = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let living = living_settings()?;
    Ok(Live {
        generator: generator(&cfg).await?,
        pinner: KuboPinner::new(&env("LATENTMINT_IPFS_API")?, std::env::var("LATENTMINT_IPFS_AUTH").ok())?,
        signer: chain.provenance_signer(contract),
        minter,
        store: DynamoEvolutionStore::new(aws_sdk_dynamodb::Client::new(&cfg), env("LATENTMINT_EVOLUTIONS_TABLE")?),
        living,
        chain_id,
        confirmations,
        from_block: number("LATENTMINT_FROM_BLOCK", "0")
            .parse()
            .context("LATENTMINT_FROM_BLOCK: not a block number")?,
    })
}

/// The stack's `[living]`, from the `LATENTMINT_LIVING_*` variables (the template's `Living*`
/// parameters), checked as a collection file's section is.
fn living_settings() -> anyhow::Result<LivingSection> {
    let number = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let living = LivingSection {
        strength: number("LATENTMINT_LIVING_STRENGTH", "0.5").parse().context("LATENTMINT_LIVING_STRENGTH")?,
        prompt: number("LATENTMINT_LIVING_PROMPT", "{prompt}"),
        max_generations: number("LATENTMINT_LIVING_MAX_GENERATIONS", "16")
            .parse()
            .context("LATENTMINT_LIVING_MAX_GENERATIONS")?,
        oracle: living_oracle(std::env::var("LATENTMINT_LIVING_ORACLE").ok().as_deref())?,
    };
    // The same rules as a collection file's [living]; each token's own steps apply later.
    living.check(None).map_err(|e| anyhow::anyhow!("LATENTMINT_LIVING_*: {e}"))?;
    Ok(living)
}

/// `LATENTMINT_LIVING_ORACLE`: a collection file's `[living.oracle]` as JSON
/// (`{"feed": "0x…", "moods": [{"below": 2000, "words": "…"}, {"words": "…"}]}`); empty or
/// unset: the tokens live by their transfers.
fn living_oracle(json: Option<&str>) -> anyhow::Result<Option<latentmint_core::collection::OracleSection>> {
    match json.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => serde_json::from_str(text).map(Some).context(
            "LATENTMINT_LIVING_ORACLE: not {\"feed\": \"0x…\", \"moods\": [{\"below\": 2000, \"words\": \"…\"}, {\"words\": \"…\"}]}",
        ),
    }
}

/// One scheduled tick: evolve the tokens transferred since the last one (or, with an oracle,
/// every token when the feed's answer moved into another mood), stopping a minute before the
/// invocation's deadline (the cursor keeps the rest for the next tick).
async fn tick(l: &Live, deadline_ms: u64) -> Result<serde_json::Value, lambda_runtime::Error> {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64)?;
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(Duration::from_secs(60));
    let ports = EvolvePorts {
        generator: l.generator.as_ref(),
        pinner: &l.pinner,
        chain: &l.minter,
        store: &l.store,
        signer: &l.signer,
    };
    let watch = Watch {
        source: &l.minter,
        cursor: format!("{}:{}", l.chain_id, l.minter.address()),
        chain_id: l.chain_id,
        lag: l.confirmations.saturating_sub(1),
        from_block: l.from_block,
    };
    let feed = match &l.living.oracle {
        Some(o) => Some(latentmint_chain::FeedReader::new(
            l.minter.contract().provider().clone(),
            o.feed_address().map_err(|e| anyhow::anyhow!("LATENTMINT_LIVING_ORACLE: {e}"))?,
        )),
        None => None,
    };
    let deadline = Some(std::time::Instant::now() + left);
    let feed = feed.as_ref().map(|f| f as &dyn latentmint_core::ports::OracleSource);
    let done =
        evolve::scan_collection(&ports, &l.living, &watch, feed, deadline).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let evolved: Vec<&str> =
        done.iter().filter(|(_, s)| matches!(s, EvolutionState::Updated { .. })).map(|(t, _)| t.as_str()).collect();
    tracing::info!(evolved = evolved.len(), handled = done.len(), "living tick");
    Ok(serde_json::json!({ "handled": done.len(), "evolved": evolved }))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // JSON lines for CloudWatch; Lambda adds the timestamp.
    // URLs redacted on the way out: an RPC provider's key in its URL never reaches CloudWatch.
    tracing_subscriber::fmt()
        .json()
        .without_time()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(|| latentmint_core::redact::Redacting::new(std::io::stdout()))
        .init();
    let name = env("LATENTMINT_STAGE")?;
    if name == "live" {
        let l = live().await?;
        return lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
            let l = &l;
            async move { tick(l, event.context.deadline).await }
        }))
        .await;
    }
    if name == "intake" {
        let f = intake_function().await?;
        return lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
            let f = &f;
            async move { intake_event(f, event.payload).await }
        }))
        .await;
    }
    let stage: Stage = name.parse().map_err(|e: String| anyhow::anyhow!("LATENTMINT_STAGE: {e}, or intake"))?;
    stage_function(stage).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oracle_comes_as_json_and_is_checked_with_the_rest_of_living() {
        assert_eq!(living_oracle(None).unwrap(), None);
        assert_eq!(living_oracle(Some(" ")).unwrap(), None, "the template's empty default");
        let json = r#"{"feed": "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419",
                       "moods": [{"below": 2000, "words": "under a stormy sky"}, {"words": "in bright sunshine"}]}"#;
        let oracle = living_oracle(Some(json)).unwrap().expect("an oracle");
        assert_eq!(oracle.mood_of(2500.0), 1);
        let living = LivingSection {
            strength: 0.5,
            prompt: "{prompt}, {mood}".into(),
            max_generations: 4,
            oracle: Some(oracle),
        };
        assert!(living.check(None).is_ok());
        let e = living_oracle(Some(r#"{"feed": "0x1"}"#)).unwrap_err();
        assert!(format!("{e:#}").contains("LATENTMINT_LIVING_ORACLE"), "{e:#}");
        let without_mood = LivingSection { prompt: "{prompt}".into(), ..living };
        assert!(without_mood.check(None).unwrap_err().to_string().contains("has no {mood}"));
    }
}
