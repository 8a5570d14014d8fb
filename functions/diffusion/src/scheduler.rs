//! The DDIM scheduler (Song et al. 2020, eta = 0), configured from `scheduler_config.json`
//! exactly as diffusers' `DDIMScheduler` reads it.

use std::path::Path;

use serde::Deserialize;

use crate::error::{DiffusionError, Result};

/// The fields of `scheduler_config.json` that DDIM uses, with diffusers' defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerConfig {
    /// diffusers class name (`DDIMScheduler`, `PNDMScheduler`, ...).
    #[serde(rename = "_class_name", default)]
    pub class_name: String,
    /// Training timesteps.
    #[serde(default = "d_train")]
    pub num_train_timesteps: usize,
    /// First beta.
    #[serde(default = "d_bstart")]
    pub beta_start: f64,
    /// Last beta.
    #[serde(default = "d_bend")]
    pub beta_end: f64,
    /// `linear` or `scaled_linear`.
    #[serde(default = "d_schedule")]
    pub beta_schedule: String,
    /// Clamp predicted x0.
    #[serde(default)]
    pub clip_sample: bool,
    /// Clamp range.
    #[serde(default = "d_clip_range")]
    pub clip_sample_range: f32,
    /// Use alpha = 1 for the final step.
    #[serde(default = "d_true")]
    pub set_alpha_to_one: bool,
    /// Offset added to inference timesteps.
    #[serde(default)]
    pub steps_offset: usize,
    /// `epsilon`, `v_prediction` or `sample`.
    #[serde(default = "d_pred")]
    pub prediction_type: String,
    /// `leading`, `trailing` or `linspace`.
    #[serde(default = "d_spacing")]
    pub timestep_spacing: String,
}

fn d_train() -> usize {
    1000
}
fn d_bstart() -> f64 {
    0.0001
}
fn d_bend() -> f64 {
    0.02
}
fn d_schedule() -> String {
    "linear".into()
}
fn d_clip_range() -> f32 {
    1.0
}
fn d_true() -> bool {
    true
}
fn d_pred() -> String {
    "epsilon".into()
}
fn d_spacing() -> String {
    "leading".into()
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
}

/// DDIM with its timesteps for one generation.
#[derive(Debug, Clone)]
pub struct Ddim {
    cfg: SchedulerConfig,
    alphas_cumprod: Vec<f32>,
    final_alpha_cumprod: f32,
    timesteps: Vec<usize>,
    step_ratio: usize,
}

impl Ddim {
    /// Builds the noise schedule and the `steps` inference timesteps.
    pub fn new(cfg: SchedulerConfig, steps: usize) -> Result<Self> {
        let n = cfg.num_train_timesteps;
        if steps == 0 || steps > n {
            return Err(DiffusionError::Request {
                field: "steps",
                message: format!("{steps} is out of range; use 1 to {n}"),
            });
        }
        // diffusers builds the schedule in float32; so do we, to match it bit for bit.
        let betas: Vec<f32> = match cfg.beta_schedule.as_str() {
            "linear" => linspace(cfg.beta_start as f32, cfg.beta_end as f32, n),
            "scaled_linear" => linspace((cfg.beta_start as f32).sqrt(), (cfg.beta_end as f32).sqrt(), n)
                .into_iter()
                .map(|b| b * b)
                .collect(),
            other => {
                return Err(DiffusionError::Config {
                    file: "scheduler/scheduler_config.json".into(),
                    message: format!("beta_schedule `{other}` is not supported; use linear or scaled_linear"),
                });
            }
        };
        let mut alphas_cumprod = Vec::with_capacity(n);
        let mut acc = 1f32;
        for b in &betas {
            acc *= 1.0 - b;
            alphas_cumprod.push(acc);
        }
        let final_alpha_cumprod = if cfg.set_alpha_to_one { 1.0 } else { alphas_cumprod[0] };
        let (timesteps, step_ratio) = match cfg.timestep_spacing.as_str() {
            "leading" => {
                let r = n / steps;
                ((0..steps).rev().map(|i| i * r + cfg.steps_offset).collect(), r)
            }
            "trailing" => {
                let r = n as f64 / steps as f64;
                let mut t: Vec<usize> =
                    (1..=steps).rev().map(|i| ((i as f64 * r).round() as usize).saturating_sub(1)).collect();
                t.dedup();
                (t, n / steps)
            }
            "linspace" => {
                let t = linspace(0.0, (n - 1) as f32, steps).into_iter().rev().map(|x| x.round() as usize).collect();
                (t, n / steps)
            }
            other => {
                return Err(DiffusionError::Config {
                    file: "scheduler/scheduler_config.json".into(),
                    message: format!("timestep_spacing `{other}` is not supported; use leading, trailing or linspace"),
                });
            }
        };
        if !matches!(cfg.prediction_type.as_str(), "epsilon" | "v_prediction" | "sample") {
            return Err(DiffusionError::Config {
                file: "scheduler/scheduler_config.json".into(),
                message: format!("prediction_type `{}` is not supported", cfg.prediction_type),
            });
        }
        Ok(Self { cfg, alphas_cumprod, final_alpha_cumprod, timesteps, step_ratio })
    }

    /// Timesteps in the order they are denoised.
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// Scale of the initial noise (1 for DDIM).
    pub fn init_noise_sigma(&self) -> f32 {
        1.0
    }

    /// One DDIM update of `sample` in place, from the model's output at timestep `t`.
    pub fn step(&self, model_output: &[f32], t: usize, sample: &mut [f32]) {
        let prev_t = t as i64 - self.step_ratio as i64;
        let a_t = self.alphas_cumprod[t.min(self.alphas_cumprod.len() - 1)];
        let a_prev = if prev_t >= 0 { self.alphas_cumprod[prev_t as usize] } else { self.final_alpha_cumprod };
        let b_t = 1.0 - a_t;
        let (sa, sb) = (a_t.sqrt(), b_t.sqrt());
        let (sa_prev, sdir) = (a_prev.sqrt(), (1.0 - a_prev).sqrt());
        let clip = self.cfg.clip_sample.then_some(self.cfg.clip_sample_range);
        let pred = self.cfg.prediction_type.as_str();
        for (x, &m) in sample.iter_mut().zip(model_output) {
            let (mut x0, eps) = match pred {
                "v_prediction" => (sa * *x - sb * m, sa * m + sb * *x),
                "sample" => (m, (*x - sa * m) / sb),
                _ => ((*x - sb * m) / sa, m),
            };
            if let Some(r) = clip {
                x0 = x0.clamp(-r, r);
            }
            *x = sa_prev * x0 + sdir * eps;
        }
    }
}

fn linspace(a: f32, b: f32, n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![a];
    }
    // torch.linspace computes start + i * step for the first half and end - (n-1-i) * step
    // for the second; matching it keeps the schedule identical to diffusers'.
    let step = (b - a) / (n - 1) as f32;
    let half = n / 2;
    (0..n).map(|i| if i < half { a + step * i as f32 } else { b - step * (n - 1 - i) as f32 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd_config() -> SchedulerConfig {
        serde_json::from_str(
            r#"{"_class_name":"DDIMScheduler","beta_start":0.00085,"beta_end":0.012,"beta_schedule":"scaled_linear",
                "clip_sample":false,"set_alpha_to_one":false,"steps_offset":1,"num_train_timesteps":1000}"#,
        )
        .unwrap()
    }

    #[test]
    fn leading_timesteps_match_diffusers() {
        let d = Ddim::new(sd_config(), 4).unwrap();
        // DDIMScheduler.set_timesteps(4) with steps_offset=1 gives [751, 501, 251, 1].
        assert_eq!(d.timesteps(), &[751, 501, 251, 1]);
    }

    #[test]
    fn alphas_cumprod_endpoints() {
        let d = Ddim::new(sd_config(), 10).unwrap();
        assert!((d.alphas_cumprod[0] - 0.99915).abs() < 1e-6);
        // Known value of SD's schedule at t = 999.
        assert!((d.alphas_cumprod[999] - 0.004_660_8).abs() < 1e-5, "{}", d.alphas_cumprod[999]);
    }

    #[test]
    fn perfect_noise_prediction_recovers_x0() {
        // If the model predicts the exact noise, one step to t=-1 lands on x0.
        let d = Ddim::new(SchedulerConfig { set_alpha_to_one: true, ..sd_config() }, 1).unwrap();
        let t = d.timesteps()[0];
        let a = d.alphas_cumprod[t];
        let (x0, eps) = (0.3f32, -1.2f32);
        let mut x = [a.sqrt() * x0 + (1.0 - a).sqrt() * eps];
        d.step(&[eps], t, &mut x);
        assert!((x[0] - x0).abs() < 1e-5, "{}", x[0]);
    }

    #[test]
    fn bad_steps_are_refused() {
        assert!(Ddim::new(sd_config(), 0).is_err());
        assert!(Ddim::new(sd_config(), 1001).is_err());
    }
}
