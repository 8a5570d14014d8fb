//! How a run's adapters are built from its collection file: the generator stack (a SageMaker
//! endpoint first, the local ONNX engine as the fallback, Content Credentials on every image)
//! and the chain connection (a KMS key, or a local dev key on a local chain).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use latentmint_aws::{AsyncInvocation, KmsSigner, S3Location, SageMakerGenerator, generator_stack};
use latentmint_chain::Chain;
use latentmint_core::collection::{ChainSection, Collection};
use latentmint_core::ports::{Generator, Inspector};
use latentmint_credentials::{Credentialed, LocalIdentity, Stamper};
use latentmint_diffusion::{EngineOptions, LoraSpec, OnnxGenerator};
use tracing::info;

use crate::args::RunArgs;
use crate::workspace::Workspace;

/// The review stage's checks: statistics and the perceptual hash always, the image-text
/// model `[qa] clip` names and the safety checker `[qa] safety_checker` names (folders relative
/// to the collection file), or else the one the generation model's folder ships.
pub(crate) async fn build_inspector(args: &RunArgs, collection: &Collection) -> anyhow::Result<Arc<dyn Inspector>> {
    let clip = match &collection.file.qa.clip {
        Some(dir) => {
            let dir = args.collection.parent().unwrap_or(Path::new(".")).join(dir);
            let shown = dir.display().to_string();
            let lib = args.ort_library.clone();
            let scorer = tokio::task::spawn_blocking(move || latentmint_qa::clip::ClipScorer::load_with(&dir, lib.as_deref()))
                .await?
                .with_context(|| format!("qa.clip ({shown}): give the folder of a CLIP export (text_model.onnx, vision_model.onnx, tokenizer.json, latentmint_qa.json), relative to the collection file"))?;
            info!(model = %scorer.model(), "QA image-text model loaded");
            Some(scorer)
        }
        None => None,
    };
    let base = args.collection.parent().unwrap_or(Path::new("."));
    let mut references = Vec::new();
    for (i, r) in collection.file.qa.references.iter().enumerate() {
        let path = base.join(r);
        references.push(std::fs::read(&path).with_context(|| {
            format!(
                "qa.references[{i}]: {} cannot be read; give a PNG file, relative to the collection file",
                path.display()
            )
        })?);
    }
    let safety = match &collection.file.qa.safety_checker {
        Some(dir) => Some(("qa.safety_checker", base.join(dir))),
        None => {
            let model = base.join(&collection.file.generation.model);
            latentmint_qa::safety::SafetyChecker::present(&model).then_some(("generation.model", model))
        }
    };
    let safety = match safety {
        Some((field, dir)) => {
            let shown = dir.display().to_string();
            let lib = args.ort_library.clone();
            let checker = tokio::task::spawn_blocking(move || latentmint_qa::safety::SafetyChecker::load_with(&dir, lib.as_deref()))
                .await?
                .with_context(|| format!("{field} ({shown}): give the folder of a safety checker as diffusers exports it (safety_checker/model.onnx, feature_extractor/preprocessor_config.json), relative to the collection file"))?;
            info!(model = %checker.model(), from = field, "QA safety checker loaded");
            Some(checker)
        }
        None => None,
    };
    let inspector = latentmint_qa::ImageInspector::new().with_clip(clip).with_safety(safety);
    let inspector = if references.is_empty() {
        inspector
    } else {
        inspector.with_references(&references).context("qa.references: each must be a PNG file")?
    };
    Ok(Arc::new(inspector))
}

/// The collection's generator: the SageMaker endpoint first when one is configured, the local
/// ONNX engine (the fallback) always.
pub(crate) async fn build_generator(args: &RunArgs, collection: &Collection) -> anyhow::Result<Arc<dyn Generator>> {
    let base = args.collection.parent().unwrap_or(Path::new("."));
    let model_dir = base.join(&collection.file.generation.model);

    let opts = EngineOptions {
        ort_library: args.ort_library.clone(),
        intra_threads: args.threads,
        cuda: false,
        parallel_cfg: None,
        loras: collection
            .file
            .generation
            .lora
            .iter()
            .map(|l| LoraSpec { path: base.join(&l.path), scale: l.scale })
            .collect(),
    };
    // Each adapter file first, under its own field: a missing one is not a model problem.
    for (i, l) in collection.file.generation.lora.iter().enumerate() {
        let path = base.join(&l.path);
        if !path.is_file() {
            bail!(
                "generation.lora[{i}].path: {} does not exist; give the adapter's .safetensors file, relative to the collection file",
                path.display()
            );
        }
    }
    let model_for_load = model_dir.clone();
    let onnx = tokio::task::spawn_blocking(move || OnnxGenerator::load(&model_for_load, &opts))
        .await?
        .with_context(|| format!("generation.model ({})", model_dir.display()))?;
    let g = &collection.file.generation;
    onnx.check_size(g.width, g.height).map_err(|e| anyhow::anyhow!("generation.{e}"))?;
    let endpoint = match &collection.file.generation.endpoint {
        Some(ep) => {
            Some((ep.clone(), Arc::new(sagemaker(ep, &collection.file.generation).await?) as Arc<dyn Generator>))
        }
        None => None,
    };
    // The same stack as the Lambda functions': the endpoint first, the local engine as its
    // fallback, and provenance says which ran.
    Ok(generator_stack(endpoint, Some(Arc::new(onnx)))?)
}

/// Where a run keeps its Content Credentials identity (development CA and signing certificate).
pub(crate) fn credentials_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("c2pa")
}

/// `generator` with Content Credentials: each image leaves generation with a C2PA manifest
/// signed by the run's own development identity (made on the first run, reused on resume).
pub(crate) fn with_credentials(
    generator: Arc<dyn Generator>,
    ws: &Workspace,
    collection: &Collection,
) -> anyhow::Result<Arc<dyn Generator>> {
    let identity = LocalIdentity::load_or_create(&credentials_dir(&ws.dir), &collection.file.collection.name)?;
    let stamper = Stamper::local(Arc::new(identity), "latentmint")?;
    Ok(Arc::new(Credentialed::new(generator, Arc::new(stamper))))
}

/// The SageMaker generator for `endpoint`: real-time, or asynchronous through S3 when the
/// collection names a staging location.
pub(crate) async fn sagemaker(
    endpoint: &str,
    g: &latentmint_core::collection::GenerationSection,
) -> anyhow::Result<SageMakerGenerator> {
    let sm = SageMakerGenerator::from_env(endpoint).await;
    let Some(url) = &g.endpoint_async_input else { return Ok(sm) };
    let input = S3Location::parse("generation.endpoint_async_input", url)?;
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let s3 = aws_sdk_s3::Client::new(&cfg);
    Ok(sm.with_async(AsyncInvocation::new(s3, input, Duration::from_secs(g.endpoint_async_timeout_secs))))
}

/// The raw key for a local dev chain, from the environment (never from a file, never logged).
pub(crate) fn local_signer_key(chain_cfg: &ChainSection) -> anyhow::Result<String> {
    if !chain_cfg.is_local() {
        bail!(
            "chain.kms_key_id: chain {} is not a local dev chain, so transactions are signed through AWS KMS; set chain.kms_key_id to an ECC_SECG_P256K1 key (raw private keys are for local chains only)",
            chain_cfg.id()
        );
    }
    std::env::var("LATENTMINT_SIGNER_KEY")
        .context("chain.rpc_url is set, so a signer is needed: export LATENTMINT_SIGNER_KEY (a local dev key, e.g. one anvil prints)")
}

/// Connects with the KMS key when one is configured, else with the local key.
pub(crate) async fn connect(chain_cfg: &ChainSection, urls: &[String], key: &str) -> anyhow::Result<Chain> {
    Ok(match &chain_cfg.kms_key_id {
        Some(id) => {
            let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
            let signer = KmsSigner::new(aws_sdk_kms::Client::new(&cfg), id.clone(), Some(chain_cfg.id())).await?;
            info!(address = %signer.address(), "signing through KMS");
            Chain::connect_signer(urls, signer, chain_cfg.id()).await?
        }
        None => Chain::connect_any(urls, key, chain_cfg.id()).await?,
    })
}
