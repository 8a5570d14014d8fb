//! Latent Consistency Model sampling (Luo et al. 2023), as diffusers' `LCMScheduler`: one to
//! eight steps for LCM-distilled models and LCM-LoRA.

use super::schedule::alphas_cumprod;
use super::{NoiseSource, Prediction, Scheduler, SchedulerConfig, config_error};
use crate::error::Result;

const SIGMA_DATA: f32 = 0.5;

/// LCM.
#[derive(Debug, Clone)]
pub struct Lcm {
    alphas_cumprod: Vec<f32>,
    timesteps: Vec<f32>,
    scaling: f32,
    prediction: Prediction,
}

impl Lcm {
    /// The LCM schedule for `steps` steps.
    pub fn new(cfg: &SchedulerConfig, steps: usize) -> Result<Self> {
        let n = cfg.num_train_timesteps.unwrap_or(1000);
        let ac = alphas_cumprod(cfg)?;
        let original = cfg.original_inference_steps.unwrap_or(50);
        let k = n / original;
        // The distillation grid [k-1, 2k-1, ..., n-1], newest first, sampled evenly.
        let origin: Vec<usize> = (1..=original).rev().map(|i| i * k - 1).collect();
        if origin.len() / steps < 1 {
            return Err(config_error(format!(
                "LCM can take at most {original} steps (original_inference_steps); asked for {steps}"
            )));
        }
        let timesteps = (0..steps).map(|i| origin[(i * origin.len()) / steps] as f32).collect();
        Ok(Self {
            alphas_cumprod: ac,
            timesteps,
            scaling: cfg.timestep_scaling.unwrap_or(10.0),
            prediction: cfg.prediction()?,
        })
    }
}

impl Scheduler for Lcm {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        1.0
    }

    fn step(&mut self, model_output: &[f32], i: usize, sample: &mut [f32], noise: &mut NoiseSource) -> Result<()> {
        let t = self.timesteps[i] as usize;
        let last = i + 1 == self.timesteps.len();
        let prev_t = if last { t } else { self.timesteps[i + 1] as usize };
        let a_t = self.alphas_cumprod[t];
        let a_prev = self.alphas_cumprod[prev_t];
        let (b_t, b_prev) = (1.0 - a_t, 1.0 - a_prev);
        let scaled = t as f32 * self.scaling;
        let c_skip = SIGMA_DATA * SIGMA_DATA / (scaled * scaled + SIGMA_DATA * SIGMA_DATA);
        let c_out = scaled / (scaled * scaled + SIGMA_DATA * SIGMA_DATA).sqrt();
        for (x, &m) in sample.iter_mut().zip(model_output) {
            let x0 = match self.prediction {
                Prediction::Epsilon => (*x - b_t.sqrt() * m) / a_t.sqrt(),
                Prediction::V => a_t.sqrt() * *x - b_t.sqrt() * m,
                Prediction::Sample => m,
            };
            *x = c_out * x0 + c_skip * *x;
        }
        if !last {
            let mut z = vec![0f32; sample.len()];
            noise.fill(&mut z)?;
            for (x, n) in sample.iter_mut().zip(&z) {
                *x = a_prev.sqrt() * *x + b_prev.sqrt() * n;
            }
        }
        Ok(())
    }

    fn add_noise(&self, x0: &mut [f32], noise: &[f32], i: usize) {
        super::add_noise_vp(&self.alphas_cumprod, self.timesteps[i] as usize, x0, noise);
    }
}
