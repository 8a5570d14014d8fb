//! Noise schedulers, configured from `scheduler/scheduler_config.json` the way diffusers'
//! `<Scheduler>.from_config(config)` reads it: keys present in the file win, each scheduler's
//! own defaults fill the rest. Each one follows the diffusers implementation step for step,
//! in float32, and is checked against it (tests/engine_parity.rs).

mod ddim;
mod dpm;
mod euler;
mod lcm;
mod schedule;

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Deserialize;

use crate::error::{DiffusionError, Result};

pub use ddim::Ddim;
pub use dpm::DpmSolverPp2M;
pub use euler::Euler;
pub use lcm::Lcm;

/// Scheduler names accepted in requests and collection files.
pub const NAMES: &[&str] = &["ddim", "euler", "euler_a", "dpmpp_2m", "lcm"];

/// The fields of `scheduler_config.json` the schedulers read. `None` means "not in the
/// file": the scheduler's own default applies.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct SchedulerConfig {
    /// diffusers class name of the export's scheduler.
    #[serde(rename = "_class_name", default)]
    pub class_name: String,
    /// Training timesteps (1000).
    pub num_train_timesteps: Option<usize>,
    /// First beta.
    pub beta_start: Option<f64>,
    /// Last beta.
    pub beta_end: Option<f64>,
    /// `linear` or `scaled_linear`.
    pub beta_schedule: Option<String>,
    /// Clamp predicted x0 (DDIM, LCM).
    pub clip_sample: Option<bool>,
    /// Clamp range.
    pub clip_sample_range: Option<f32>,
    /// Final alpha is 1 (DDIM, LCM).
    pub set_alpha_to_one: Option<bool>,
    /// Offset added to `leading` timesteps.
    pub steps_offset: Option<usize>,
    /// `epsilon`, `v_prediction` or `sample`.
    pub prediction_type: Option<String>,
    /// `leading`, `trailing` or `linspace`.
    pub timestep_spacing: Option<String>,
    /// LCM: the distillation schedule's step count.
    pub original_inference_steps: Option<usize>,
    /// LCM: boundary-condition timestep scaling.
    pub timestep_scaling: Option<f32>,
}

impl SchedulerConfig {
    /// Reads a `scheduler_config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|_| DiffusionError::MissingFile {
            path: path.to_path_buf(),
            hint: "the layout needs scheduler/scheduler_config.json".into(),
        })?;
        serde_json::from_str(&text)
            .map_err(|e| DiffusionError::Config { file: path.to_path_buf(), message: e.to_string() })
    }

    pub(crate) fn prediction(&self) -> Result<Prediction> {
        match self.prediction_type.as_deref().unwrap_or("epsilon") {
            "epsilon" => Ok(Prediction::Epsilon),
            "v_prediction" => Ok(Prediction::V),
            "sample" => Ok(Prediction::Sample),
            other => Err(config_error(format!(
                "prediction_type `{other}` is not supported; use epsilon, v_prediction or sample"
            ))),
        }
    }
}

pub(crate) fn config_error(message: String) -> DiffusionError {
    DiffusionError::Config { file: "scheduler/scheduler_config.json".into(), message }
}

/// What the UNet predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prediction {
    Epsilon,
    V,
    Sample,
}

/// Where a stochastic scheduler's per-step noise comes from.
pub enum NoiseSource {
    /// Standard normal noise from a seeded ChaCha20 stream (reproducible across platforms).
    Seeded(Box<ChaCha20Rng>),
    /// Given arrays, one per call, in order (to reproduce another implementation exactly).
    Fixed(std::collections::VecDeque<Vec<f32>>),
}

impl NoiseSource {
    /// A seeded source.
    pub fn seeded(seed: u64) -> Self {
        Self::Seeded(Box::new(ChaCha20Rng::seed_from_u64(seed)))
    }

    /// Fills `out` with standard normal noise.
    pub fn fill(&mut self, out: &mut [f32]) -> Result<()> {
        match self {
            Self::Seeded(rng) => out.iter_mut().for_each(|x| *x = StandardNormal.sample(rng.as_mut())),
            Self::Fixed(q) => {
                let v = q.pop_front().ok_or_else(|| DiffusionError::Request {
                    field: "step_noise",
                    message: "fewer noise arrays than the scheduler draws".into(),
                })?;
                if v.len() != out.len() {
                    return Err(DiffusionError::Request {
                        field: "step_noise",
                        message: format!("a noise array has {} values, the latents {}", v.len(), out.len()),
                    });
                }
                out.copy_from_slice(&v);
            }
        }
        Ok(())
    }
}

/// A scheduler for one generation: timesteps, input scaling and the update rule.
pub trait Scheduler: Send {
    /// Timesteps in denoising order (float32 values, as diffusers keeps them).
    fn timesteps(&self) -> &[f32];
    /// Scale of the initial noise.
    fn init_noise_sigma(&self) -> f32;
    /// Scales the UNet input at step `i` in place (Euler divides by sqrt(sigma^2 + 1)).
    fn scale_model_input(&self, _sample: &mut [f32], _i: usize) {}
    /// Advances `sample` from step `i` to `i + 1` given the model output.
    fn step(&mut self, model_output: &[f32], i: usize, sample: &mut [f32], noise: &mut NoiseSource) -> Result<()>;
    /// Noises clean latents `x0` in place to the level of step `i` (img2img starts there).
    fn add_noise(&self, x0: &mut [f32], noise: &[f32], i: usize);
}

/// `sqrt(a) * x0 + sqrt(1 - a) * noise`, the variance-preserving forward process.
pub(crate) fn add_noise_vp(alphas_cumprod: &[f32], t: usize, x0: &mut [f32], noise: &[f32]) {
    let a = alphas_cumprod[t.min(alphas_cumprod.len() - 1)];
    let (sa, sb) = (a.sqrt(), (1.0 - a).sqrt());
    x0.iter_mut().zip(noise).for_each(|(x, n)| *x = sa * *x + sb * n);
}

/// Builds scheduler `name` for `steps` inference steps.
pub fn build(name: &str, cfg: &SchedulerConfig, steps: usize) -> Result<Box<dyn Scheduler>> {
    let n_train = cfg.num_train_timesteps.unwrap_or(1000);
    if steps == 0 || steps > n_train {
        return Err(DiffusionError::Request {
            field: "steps",
            message: format!("{steps} is out of range; use 1 to {n_train}"),
        });
    }
    let sched = build_unchecked(name, cfg, steps)?;
    if !valid_timesteps(sched.timesteps(), n_train) {
        // Near the training count some spacings (diffusers' too) step past the last training
        // timestep or repeat one; DPM-Solver then divides by a zero step and makes NaN.
        let most = (1..steps)
            .rev()
            .find(|&s| build_unchecked(name, cfg, s).is_ok_and(|x| valid_timesteps(x.timesteps(), n_train)))
            .unwrap_or(1);
        return Err(DiffusionError::Request {
            field: "steps",
            message: format!(
                "{steps} steps of `{name}` with this model's schedule ({} spacing) fall outside its {n_train} training timesteps or repeat one; use at most {most} steps",
                cfg.timestep_spacing.as_deref().unwrap_or("default")
            ),
        });
    }
    Ok(sched)
}

/// Each timestep a training timestep, each below the one before.
fn valid_timesteps(ts: &[f32], n_train: usize) -> bool {
    ts.iter().all(|&t| t.is_finite() && t >= 0.0 && t <= (n_train - 1) as f32) && ts.windows(2).all(|w| w[1] < w[0])
}

fn build_unchecked(name: &str, cfg: &SchedulerConfig, steps: usize) -> Result<Box<dyn Scheduler>> {
    Ok(match name {
        "ddim" => Box::new(Ddim::new(cfg, steps)?),
        "euler" => Box::new(Euler::new(cfg, steps, false)?),
        "euler_a" => Box::new(Euler::new(cfg, steps, true)?),
        "dpmpp_2m" => Box::new(DpmSolverPp2M::new(cfg, steps)?),
        "lcm" => Box::new(Lcm::new(cfg, steps)?),
        other => {
            return Err(DiffusionError::Request {
                field: "scheduler",
                message: format!("`{other}` is not a known scheduler; use one of {}", NAMES.join(", ")),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(spacing: &str) -> SchedulerConfig {
        serde_json::from_str(&format!(
            r#"{{"beta_start":0.00085,"beta_end":0.012,"beta_schedule":"scaled_linear","steps_offset":1,
                "num_train_timesteps":1000,"timestep_spacing":"{spacing}","original_inference_steps":50}}"#
        ))
        .unwrap()
    }

    #[test]
    fn step_counts_that_leave_the_training_range_are_refused_with_the_most_that_works() {
        // diffusers' DPM-Solver "leading" spacing starts at timestep 1000 for 999 steps (one past
        // the last) and repeats timestep 1 for 1000; the engine made NaN from both.
        let cfg = config("leading");
        for steps in [999, 1000] {
            let err = build("dpmpp_2m", &cfg, steps).err().expect("refused").to_string();
            assert!(err.starts_with(&format!("steps: {steps} steps of `dpmpp_2m`")), "{err}");
            assert!(err.ends_with("use at most 998 steps"), "{err}");
        }
        build("dpmpp_2m", &cfg, 998).unwrap();
        let err = build("ddim", &cfg, 1000).err().expect("refused").to_string();
        assert!(err.ends_with("use at most 999 steps"), "{err}");
    }

    #[test]
    fn every_scheduler_and_spacing_is_valid_at_usual_step_counts() {
        for spacing in ["leading", "trailing", "linspace"] {
            for name in NAMES {
                for steps in 1..=50 {
                    let s = build(name, &config(spacing), steps)
                        .unwrap_or_else(|e| panic!("{name} {spacing} {steps}: {e}"));
                    assert!(valid_timesteps(s.timesteps(), 1000), "{name} {spacing} {steps}");
                }
            }
        }
    }
}
