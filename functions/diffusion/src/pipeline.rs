//! The text-to-image pipeline: tokenize, encode text, denoise with classifier-free guidance,
//! decode, check, encode PNG. It follows diffusers' `OnnxStableDiffusionPipeline` step for
//! step, so the same model, prompt, latents and parameters give the same image.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use ndarray::{Array3, Array4, Axis, Ix3, Ix4, s};
use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{Tensor, TensorElementType, TensorRef};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};

use latentmint_core::job::GUIDANCE_RANGE;

use crate::error::{DiffusionError, Result, onnx, onnx_b};
use crate::model::ModelInfo;
use crate::png::encode_png;
use crate::schedulers::{self, NoiseSource, SchedulerConfig};
use crate::tensor::{Precision, output_f32};
use crate::tokenizer::ClipTokenizer;

/// How to run ONNX Runtime.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Path of `libonnxruntime.so`; `ORT_DYLIB_PATH` when absent.
    pub ort_library: Option<PathBuf>,
    /// Threads per operator (0: ONNX Runtime decides).
    pub intra_threads: usize,
    /// Use the CUDA execution provider (needs the `cuda` feature and a CUDA build of ONNX
    /// Runtime); without it, or if CUDA cannot start, sessions run on the CPU.
    pub cuda: bool,
    /// Run the two halves of classifier-free guidance on two UNet sessions in parallel, each
    /// with half the threads. Faster on CPU for small latents; costs a second copy of the UNet
    /// weights in memory, so it is off unless asked for (`None`: on when the UNet file is
    /// under 256 MB and there are at least two threads).
    pub parallel_cfg: Option<bool>,
    /// LoRA adapters merged into the UNet and text encoder at load.
    pub loras: Vec<crate::lora::LoraSpec>,
}

/// One image to make.
#[derive(Debug, Clone)]
pub struct ImageRequest {
    /// Prompt.
    pub prompt: String,
    /// Negative prompt ("" for none).
    pub negative_prompt: String,
    /// Noise seed.
    pub seed: u64,
    /// Denoising steps.
    pub steps: u32,
    /// Guidance scale; at or below 1 the unconditional pass is skipped.
    pub guidance: f32,
    /// Width in pixels (a multiple of [`crate::model::ModelInfo::size_multiple`]).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Scheduler name, one of [`crate::schedulers::NAMES`].
    pub scheduler: String,
    /// Initial latents (1 x C x h x w, row-major) instead of seeded noise: lets any other
    /// implementation's run be reproduced exactly.
    pub initial_latents: Option<Vec<f32>>,
    /// Noise for stochastic schedulers (Euler ancestral, LCM), one array per draw, instead of
    /// the seeded stream: the same purpose as `initial_latents`.
    pub step_noise: Option<Vec<Vec<f32>>>,
    /// Start from this image instead of pure noise (img2img).
    pub init_image: Option<InitImage>,
}

impl ImageRequest {
    /// A text-to-image request for `prompt` at `width` x `height` with diffusers' defaults
    /// (DDIM, 20 steps, guidance 7.5, seed 0, no negative prompt); set the rest with struct
    /// update syntax.
    pub fn new(prompt: impl Into<String>, width: u32, height: u32) -> Self {
        Self {
            prompt: prompt.into(),
            negative_prompt: String::new(),
            seed: 0,
            steps: 20,
            guidance: 7.5,
            width,
            height,
            scheduler: "ddim".into(),
            initial_latents: None,
            step_noise: None,
            init_image: None,
        }
    }
}

/// The image an img2img generation starts from.
#[derive(Debug, Clone)]
pub struct InitImage {
    /// RGB8 pixels, row-major, exactly the request's width x height.
    pub rgb: Vec<u8>,
    /// How much to change it: 0 keeps it, 1 ignores it. The last `round_down(steps *
    /// strength)` steps of the schedule run, starting from the image noised to that level.
    pub strength: f32,
}

/// A generated image.
#[derive(Debug, Clone)]
pub struct GeneratedImage {
    /// RGB8 pixels, row-major.
    pub rgb: Vec<u8>,
    /// Decoder output in 0..1 before quantization (NHWC), for parity checks.
    pub float_image: Vec<f32>,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// The seed this image was made with (`seed + k` for the k-th image of a batch).
    pub seed: u64,
    /// PNG bytes with the parameters in a text chunk.
    pub png: Vec<u8>,
    /// The prompt was cut to CLIP's 77 tokens.
    pub prompt_truncated: bool,
    /// Seconds spent inside ONNX Runtime (all three models). Timings cover the whole batch the
    /// image was made in.
    pub onnx_seconds: f64,
    /// Seconds in the denoising loop, and the part of it inside `unet.run`.
    pub loop_seconds: f64,
    /// Seconds inside `unet.run`.
    pub unet_seconds: f64,
    /// Total seconds.
    pub total_seconds: f64,
}

/// Most images one request may ask for.
pub const MAX_BATCH: usize = 16;

static ENV: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();

/// The process's ONNX Runtime environment, the library loaded on first use from `lib`, else
/// `ORT_DYLIB_PATH`. ONNX Runtime allows one environment per process: every model of the
/// process (the generator's, the QA models) opens its sessions in this one.
pub fn runtime(lib: Option<&Path>) -> Result<Environment> {
    let path = lib
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("libonnxruntime.so"));
    let got = ENV.get_or_init(|| {
        if !path.exists() {
            return Err(format!("{} does not exist", path.display()));
        }
        ort::init_from(&path).map_err(|e| e.to_string())?.with_name("latentmint").build().map_err(|e| e.to_string())
    });
    got.clone().map_err(|message| DiffusionError::Runtime { path, message })
}

/// A loaded model: sessions are created once (Lambda init) and reused for every image.
pub struct Engine {
    info: ModelInfo,
    tokenizer: ClipTokenizer,
    scheduler: SchedulerConfig,
    text: Session,
    unet: Session,
    /// A second UNet session, on its own thread, for the conditional half of
    /// classifier-free guidance.
    unet_cond: Option<crate::worker::UnetWorker>,
    vae: Session,
    vae_encoder: Option<Session>,
    ids_dtype: TensorElementType,
    timestep_dtype: TensorElementType,
    /// Float precision of the UNet, the VAE decoder and encoder inputs (fp32 or fp16 exports).
    unet_precision: Precision,
    vae_precision: Precision,
    vae_encoder_precision: Option<Precision>,
    loras: Vec<crate::lora::AppliedLora>,
}

#[cfg(feature = "cuda")]
fn with_cuda(
    b: ort::session::builder::SessionBuilder,
    component: &'static str,
) -> Result<ort::session::builder::SessionBuilder> {
    b.with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()]).map_err(onnx_b(component))
}

#[cfg(not(feature = "cuda"))]
fn with_cuda(
    _b: ort::session::builder::SessionBuilder,
    component: &'static str,
) -> Result<ort::session::builder::SessionBuilder> {
    Err(DiffusionError::Onnx {
        component,
        message: "this build has no CUDA support: build with --features cuda".into(),
    })
}

fn input_type(s: &Session, name: &str, component: &'static str) -> Result<TensorElementType> {
    s.inputs().iter().find(|o| o.name() == name).and_then(|o| o.dtype().tensor_type()).ok_or_else(|| {
        DiffusionError::Onnx { component, message: format!("the model has no tensor input named `{name}`") }
    })
}

impl Engine {
    /// Loads a model folder.
    pub fn load(dir: &Path, opts: &EngineOptions) -> Result<Self> {
        let info = ModelInfo::load(dir)?;
        let env = runtime(opts.ort_library.as_deref())?;
        let tokenizer = ClipTokenizer::from_dir(&dir.join("tokenizer"))?;
        let scheduler = SchedulerConfig::from_file(&dir.join("scheduler/scheduler_config.json"))?;
        let open_with = |rel: &str,
                         component: &'static str,
                         threads: usize,
                         overrides: &[crate::lora::Merged]|
         -> Result<Session> {
            let mut b = Session::builder(&env)
                .map_err(onnx(component))?
                .with_optimization_level(GraphOptimizationLevel::Level3)
                .map_err(onnx_b(component))?;
            if threads > 0 {
                b = b.with_intra_threads(threads).map_err(onnx_b(component))?;
            }
            // Idle pool threads of the text encoder and the VAE keep spinning for a while after
            // each run and steal the cores the UNet needs (6% of an image's time measured on 2
            // cores); only the UNet, which runs op after op, profits from spinning.
            if component != "unet" {
                b = b.with_intra_op_spinning(false).map_err(onnx_b(component))?;
            }
            if opts.cuda {
                b = with_cuda(b, component)?;
            }
            for (name, w, precision) in overrides {
                let v = match precision {
                    Precision::F32 => Tensor::from_array(w.clone()).map_err(onnx(component))?.into_dyn(),
                    Precision::F16 => {
                        Tensor::from_array(w.mapv(half::f16::from_f32)).map_err(onnx(component))?.into_dyn()
                    }
                };
                b = b.with_initializer(name, std::sync::Arc::new(v)).map_err(onnx_b(component))?;
            }
            b.commit_from_file(dir.join(rel)).map_err(onnx(component))
        };
        // LoRA: merged weights replace the targeted initializers; the files stay untouched.
        let mut loras = opts.loras.iter().map(crate::lora::Lora::load).collect::<Result<Vec<_>>>()?;
        let text_w = crate::lora::merge("text_encoder", &dir.join("text_encoder/model.onnx"), &mut loras)?;
        let unet_w = crate::lora::merge("unet", &dir.join("unet/model.onnx"), &mut loras)?;
        let applied: Vec<crate::lora::AppliedLora> = loras.into_iter().map(|l| l.applied).collect();
        let open = |rel: &str, component: &'static str| open_with(rel, component, opts.intra_threads, &[]);
        let text = open_with("text_encoder/model.onnx", "text_encoder", opts.intra_threads, &text_w)?;
        let threads = if opts.intra_threads > 0 {
            opts.intra_threads
        } else {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        };
        let unet_bytes = std::fs::metadata(dir.join("unet/model.onnx")).map(|m| m.len()).unwrap_or(u64::MAX);
        let parallel = opts.parallel_cfg.unwrap_or(threads >= 2 && unet_bytes < 256 << 20) && threads >= 2;
        let (unet, unet_cond) = if parallel {
            let half = threads / 2;
            (
                open_with("unet/model.onnx", "unet", half, &unet_w)?,
                Some(crate::worker::UnetWorker::spawn(open_with("unet/model.onnx", "unet", threads - half, &unet_w)?)?),
            )
        } else {
            (open_with("unet/model.onnx", "unet", opts.intra_threads, &unet_w)?, None)
        };
        let vae = open("vae_decoder/model.onnx", "vae_decoder")?;
        // Optional in the layout; only img2img needs it.
        let vae_encoder = if dir.join("vae_encoder/model.onnx").is_file() {
            Some(open("vae_encoder/model.onnx", "vae_encoder")?)
        } else {
            None
        };
        let ids_dtype = input_type(&text, "input_ids", "text_encoder")?;
        let timestep_dtype = input_type(&unet, "timestep", "unet")?;
        let unet_precision = Precision::of_input(&unet, "sample", "unet")?;
        let vae_precision = Precision::of_input(&vae, "latent_sample", "vae_decoder")?;
        let vae_encoder_precision =
            vae_encoder.as_ref().map(|e| Precision::of_input(e, "sample", "vae_encoder")).transpose()?;
        Ok(Self {
            info,
            tokenizer,
            scheduler,
            text,
            unet,
            unet_cond,
            vae,
            vae_encoder,
            ids_dtype,
            timestep_dtype,
            unet_precision,
            vae_precision,
            vae_encoder_precision,
            loras: applied,
        })
    }

    /// The model's facts and file hashes.
    pub fn model(&self) -> &ModelInfo {
        &self.info
    }

    /// Float precision of the UNet's tensors (how the model was exported).
    pub fn precision(&self) -> Precision {
        self.unet_precision
    }

    /// LoRA adapters merged at load, with their hashes.
    pub fn loras(&self) -> &[crate::lora::AppliedLora] {
        &self.loras
    }

    /// Token ids for `text` (for parity tests).
    pub fn tokenize(&self, text: &str) -> Result<crate::tokenizer::Tokens> {
        self.tokenizer.encode(text)
    }

    fn encode_text(&mut self, texts: &[&str]) -> Result<(Array3<f32>, bool)> {
        let mut ids = Vec::new();
        let mut truncated = false;
        for t in texts {
            let tok = self.tokenizer.encode(t)?;
            truncated |= tok.truncated;
            ids.extend(tok.ids);
        }
        let shape = [texts.len(), crate::tokenizer::MAX_LENGTH];
        let out = match self.ids_dtype {
            TensorElementType::Int32 => {
                let a = ndarray::Array::from_shape_vec(shape, ids.iter().map(|&i| i as i32).collect())
                    .map_err(|e| DiffusionError::BadOutput(e.to_string()))?;
                let outputs = self
                    .text
                    .run(ort::inputs!["input_ids" => TensorRef::from_array_view(&a).map_err(onnx("text_encoder"))?])
                    .map_err(onnx("text_encoder"))?;
                output_f32(&outputs[0], "text_encoder")?
            }
            TensorElementType::Int64 => {
                let a =
                    ndarray::Array::from_shape_vec(shape, ids).map_err(|e| DiffusionError::BadOutput(e.to_string()))?;
                let outputs = self
                    .text
                    .run(ort::inputs!["input_ids" => TensorRef::from_array_view(&a).map_err(onnx("text_encoder"))?])
                    .map_err(onnx("text_encoder"))?;
                output_f32(&outputs[0], "text_encoder")?
            }
            other => {
                return Err(DiffusionError::Onnx {
                    component: "text_encoder",
                    message: format!("input_ids of type {other:?} is not supported"),
                });
            }
        };
        let emb = out.into_dimensionality::<Ix3>().map_err(|e| DiffusionError::Onnx {
            component: "text_encoder",
            message: format!("unexpected output rank: {e}"),
        })?;
        Ok((emb, truncated))
    }

    /// The VAE encoder's latents of an init image, scaled for the UNet.
    fn encode_image(
        &mut self,
        init: &InitImage,
        width: u32,
        height: u32,
        (c, h, w): (usize, usize, usize),
    ) -> Result<Vec<f32>> {
        let (wu, hu) = (width as usize, height as usize);
        if init.rgb.len() != wu * hu * 3 {
            return Err(DiffusionError::Request {
                field: "init_image",
                message: format!(
                    "has {} bytes; a {width}x{height} RGB image has {}: resize it to the requested size",
                    init.rgb.len(),
                    wu * hu * 3
                ),
            });
        }
        let Some(encoder) = self.vae_encoder.as_mut() else {
            return Err(DiffusionError::MissingFile {
                path: self.info.dir.join("vae_encoder/model.onnx"),
                hint: "img2img needs the VAE encoder; export the model with it".into(),
            });
        };
        let mut img = Array4::<f32>::zeros((1, 3, hu, wu));
        for (i, &v) in init.rgb.iter().enumerate() {
            let (p, ch) = (i / 3, i % 3);
            img[[0, ch, p / wu, p % wu]] = f32::from(v) / 255.0 * 2.0 - 1.0;
        }
        let precision = self.vae_encoder_precision.unwrap_or(Precision::F32);
        let outputs = encoder
            .run(ort::inputs!["sample" => precision.input(img.view(), "vae_encoder")?])
            .map_err(onnx("vae_encoder"))?;
        let z = output_f32(&outputs[0], "vae_encoder")?;
        if z.len() != c * h * w {
            return Err(DiffusionError::Onnx {
                component: "vae_encoder",
                message: format!("returned {:?}, expected [1, {c}, {h}, {w}]", z.shape()),
            });
        }
        let s = self.info.scaling_factor;
        Ok(z.iter().map(|v| v * s).collect())
    }

    /// Generates one image.
    pub fn generate(&mut self, req: &ImageRequest) -> Result<GeneratedImage> {
        self.generate_traced(req, None)
    }

    /// Like [`Engine::generate`], also pushing the latents after every step into `trace`
    /// (for parity tests against a reference implementation).
    pub fn generate_traced(&mut self, req: &ImageRequest, trace: Option<&mut Vec<Vec<f32>>>) -> Result<GeneratedImage> {
        let mut images = self.run(req, 1, trace)?;
        images.pop().ok_or_else(|| DiffusionError::BadOutput("no image came out".into()))
    }

    /// Generates `count` images of one prompt in one pass: every UNet call carries the whole
    /// batch (what a GPU wants). Image `k` uses seed `req.seed + k` and is the image a single
    /// generation with that seed gives (within float rounding), so each stays reproducible on
    /// its own. `initial_latents`, when given, holds `count` arrays back to back.
    pub fn generate_batch(&mut self, req: &ImageRequest, count: usize) -> Result<Vec<GeneratedImage>> {
        self.run(req, count, None)
    }

    fn run(
        &mut self,
        req: &ImageRequest,
        count: usize,
        mut trace: Option<&mut Vec<Vec<f32>>>,
    ) -> Result<Vec<GeneratedImage>> {
        let started = Instant::now();
        if count == 0 || count > MAX_BATCH {
            return Err(DiffusionError::Request {
                field: "num_images",
                message: format!("{count} is out of range; ask for 1 to {MAX_BATCH} images per request"),
            });
        }
        if count > 1 && req.step_noise.is_some() {
            return Err(DiffusionError::Request {
                field: "step_noise",
                message: "reproduces a single image; generate one image per request with it".into(),
            });
        }
        self.info.check_size(req.width, req.height)?;
        if !GUIDANCE_RANGE.contains(&req.guidance) {
            return Err(DiffusionError::Request {
                field: "guidance",
                message: format!(
                    "{} is out of range; use a scale from {} to {} (7.5 is typical; 1 or less skips the unconditional pass)",
                    req.guidance,
                    GUIDANCE_RANGE.start(),
                    GUIDANCE_RANGE.end()
                ),
            });
        }
        let f = self.info.vae_scale_factor as u32;
        let cfg = req.guidance > 1.0;
        let mut onnx_s = 0f64;

        let t0 = Instant::now();
        let texts: Vec<&str> = if cfg { vec![&req.negative_prompt, &req.prompt] } else { vec![&req.prompt] };
        let (emb, truncated) = self.encode_text(&texts)?;
        onnx_s += t0.elapsed().as_secs_f64();

        let (c, h, w) = (self.info.latent_channels, (req.height / f) as usize, (req.width / f) as usize);
        let n = c * h * w;
        let seeds: Vec<u64> = (0..count as u64).map(|k| req.seed.wrapping_add(k)).collect();
        let mut scheds = seeds
            .iter()
            .map(|_| schedulers::build(&req.scheduler, &self.scheduler, req.steps as usize))
            .collect::<Result<Vec<_>>>()?;
        // One latent array per image, back to back.
        let mut latents: Vec<f32> = match &req.initial_latents {
            Some(l) if l.len() == count * n => l.clone(),
            Some(l) => {
                return Err(DiffusionError::Request {
                    field: "initial_latents",
                    message: format!(
                        "has {} values; {count} image(s) of this size need {count}x{c}x{h}x{w} = {}",
                        l.len(),
                        count * n
                    ),
                });
            }
            None => seeds
                .iter()
                .flat_map(|&seed| {
                    let mut rng = ChaCha20Rng::seed_from_u64(seed);
                    (0..n).map(move |_| StandardNormal.sample(&mut rng))
                })
                .collect(),
        };
        let start = match &req.init_image {
            None => {
                let sigma = scheds[0].init_noise_sigma();
                latents.iter_mut().for_each(|x| *x *= sigma);
                0
            }
            Some(init) => {
                // `latents` holds the noise; the image's latents, noised to the start step,
                // replace it.
                let run = ((req.steps as f32 * init.strength).floor() as usize).min(req.steps as usize);
                if !(0.0..=1.0).contains(&init.strength) || run == 0 {
                    return Err(DiffusionError::Request {
                        field: "strength",
                        message: format!(
                            "{} runs no step with {} steps; use a strength in (0, 1] with steps * strength >= 1",
                            init.strength, req.steps
                        ),
                    });
                }
                let start = req.steps as usize - run;
                let x0 = self.encode_image(init, req.width, req.height, (c, h, w))?;
                for (sched, noise) in scheds.iter().zip(latents.chunks_exact_mut(n)) {
                    let mut x = x0.clone();
                    sched.add_noise(&mut x, noise, start);
                    noise.copy_from_slice(&x);
                }
                start
            }
        };
        // Step noise comes from its own stream, so the initial latents do not depend on the
        // scheduler and a deterministic scheduler consumes nothing.
        let mut noises: Vec<NoiseSource> = seeds
            .iter()
            .map(|&seed| match &req.step_noise {
                Some(v) => NoiseSource::Fixed(v.iter().cloned().collect()),
                None => NoiseSource::seeded(seed ^ 0x5eed_5eed_5eed_5eed),
            })
            .collect();

        // Two UNet sessions: the unconditional and the conditional halves run side by side,
        // each on its own share of the threads (much better use of cores than one batch-2 run
        // on small latents). Otherwise one run with the unconditional rows first, as diffusers
        // batches them.
        let parallel = cfg && self.unet_cond.is_some();
        let repeat = |row: usize| -> Result<Array3<f32>> {
            let one = emb.slice(s![row..row + 1, .., ..]);
            ndarray::concatenate(Axis(0), &vec![one; count]).map_err(|e| DiffusionError::BadOutput(e.to_string()))
        };
        let (hidden, hidden_cond) = match (cfg, parallel) {
            (false, _) => (repeat(0)?, None),
            (true, true) => (repeat(0)?, Some(std::sync::Arc::new(repeat(1)?))),
            (true, false) => {
                let (u, t) = (repeat(0)?, repeat(1)?);
                (
                    ndarray::concatenate(Axis(0), &[u.view(), t.view()])
                        .map_err(|e| DiffusionError::BadOutput(e.to_string()))?,
                    None,
                )
            }
        };
        let rows = if cfg && !parallel { 2 * count } else { count };
        let mut input = Array4::<f32>::zeros((rows, c, h, w));
        let mut guided = vec![0f32; count * n];
        let timesteps = scheds[0].timesteps().to_vec();
        let loop_start = Instant::now();
        let mut unet_s = 0f64;
        let dtype = (self.timestep_dtype, self.unet_precision);
        for (i, &t) in timesteps.iter().enumerate().skip(start) {
            {
                let flat = input
                    .as_slice_mut()
                    .ok_or_else(|| DiffusionError::BadOutput("unet input not contiguous".into()))?;
                for (k, sched) in scheds.iter().enumerate() {
                    let row = &mut flat[k * n..(k + 1) * n];
                    row.copy_from_slice(&latents[k * n..(k + 1) * n]);
                    sched.scale_model_input(row, i);
                }
                // The same latents for the unconditional and the conditional half.
                if rows == 2 * count {
                    let (a, b) = flat.split_at_mut(count * n);
                    b.copy_from_slice(a);
                }
            }
            let t1 = Instant::now();
            let g = req.guidance;
            if let (Some(cond), Some(e_c)) = (self.unet_cond.as_ref(), hidden_cond.as_ref()) {
                cond.submit(input.view(), t, e_c, dtype)?;
                let u = crate::worker::run_unet(&mut self.unet, dtype, input.view(), t, hidden.view());
                // Collected before `u` can fail, so no result is left behind for the next step.
                let c = cond.wait();
                let (u, c) = (u?, c?);
                guided.iter_mut().zip(u.iter().zip(&c)).for_each(|(o, (u, t))| *o = u + g * (t - u));
            } else {
                let flat = crate::worker::run_unet(&mut self.unet, dtype, input.view(), t, hidden.view())?;
                if cfg {
                    let (uncond, text) = flat.split_at(count * n);
                    guided.iter_mut().zip(uncond.iter().zip(text)).for_each(|(o, (u, t))| *o = u + g * (t - u));
                } else {
                    guided.copy_from_slice(&flat);
                }
            }
            let dt = t1.elapsed().as_secs_f64();
            onnx_s += dt;
            unet_s += dt;
            for (k, (sched, noise)) in scheds.iter_mut().zip(noises.iter_mut()).enumerate() {
                sched.step(&guided[k * n..(k + 1) * n], i, &mut latents[k * n..(k + 1) * n], noise)?;
            }
            if let Some(trace) = trace.as_deref_mut() {
                trace.push(latents.clone());
            }
        }
        let loop_s = loop_start.elapsed().as_secs_f64();

        // The decoder runs one image at a time, as diffusers' ONNX pipeline does: its memory
        // grows with the batch and the cost per image is the same.
        let mut images = Vec::with_capacity(count);
        for (k, &seed) in seeds.iter().enumerate() {
            let t2 = Instant::now();
            let (rgb, float_image) = self.decode(&latents[k * n..(k + 1) * n], (c, h, w), req)?;
            onnx_s += t2.elapsed().as_secs_f64();
            let params = format!(
                "{}\nNegative prompt: {}\nSteps: {}, Sampler: {}, CFG scale: {}, Seed: {}, Size: {}x{}, Model: {}, Model hash: {}",
                req.prompt,
                req.negative_prompt,
                req.steps,
                req.scheduler,
                req.guidance,
                seed,
                req.width,
                req.height,
                self.info.id,
                &self.info.digest()[..12]
            );
            let png = encode_png(&rgb, req.width, req.height, &params)?;
            images.push(GeneratedImage {
                rgb,
                float_image,
                width: req.width,
                height: req.height,
                seed,
                png,
                prompt_truncated: truncated,
                onnx_seconds: 0.0,
                loop_seconds: loop_s,
                unet_seconds: unet_s,
                total_seconds: 0.0,
            });
        }
        let total = started.elapsed().as_secs_f64();
        for img in &mut images {
            img.onnx_seconds = onnx_s;
            img.total_seconds = total;
        }
        Ok(images)
    }

    /// Decodes one image's latents to RGB8 and to floats in 0..1; NaN and all-black are errors.
    fn decode(
        &mut self,
        latents: &[f32],
        (c, h, w): (usize, usize, usize),
        req: &ImageRequest,
    ) -> Result<(Vec<u8>, Vec<f32>)> {
        let scaled: Vec<f32> = latents.iter().map(|x| x / self.info.scaling_factor).collect();
        let z = Array4::from_shape_vec((1, c, h, w), scaled).map_err(|e| DiffusionError::BadOutput(e.to_string()))?;
        let decoded = {
            let input = self.vae_precision.input(z.view(), "vae_decoder")?;
            let outputs = self.vae.run(ort::inputs!["latent_sample" => input]).map_err(onnx("vae_decoder"))?;
            output_f32(&outputs[0], "vae_decoder")?
        };
        let shape = decoded.shape().to_vec();
        let decoded = decoded
            .into_dimensionality::<Ix4>()
            .map_err(|e| DiffusionError::BadOutput(format!("vae_decoder output: {e}")))?;
        if shape[1] != 3 || shape[2] != req.height as usize || shape[3] != req.width as usize {
            return Err(DiffusionError::BadOutput(format!(
                "vae_decoder returned shape {shape:?}, expected [1, 3, {}, {}]",
                req.height, req.width
            )));
        }
        let chw = decoded.index_axis(Axis(0), 0);
        let hwc = chw.permuted_axes([1, 2, 0]);
        let mut float_image = Vec::with_capacity(hwc.len());
        let mut rgb = Vec::with_capacity(hwc.len());
        let mut nan = 0usize;
        for &v in hwc.iter() {
            if !v.is_finite() {
                nan += 1;
            }
            let x = (v / 2.0 + 0.5).clamp(0.0, 1.0);
            float_image.push(x);
            rgb.push((x * 255.0).round() as u8);
        }
        if nan > 0 {
            return Err(DiffusionError::BadOutput(format!(
                "{nan} pixel values are NaN or infinite (a broken model export or fp16 overflow)"
            )));
        }
        if rgb.iter().all(|&v| v == 0) {
            return Err(DiffusionError::BadOutput(
                "the image is entirely black (a safety filter or a broken model)".into(),
            ));
        }
        Ok((rgb, float_image))
    }
}
