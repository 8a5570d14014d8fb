//! Euler and Euler ancestral (Karras et al. 2022 sampling in sigma space), as diffusers'
//! `EulerDiscreteScheduler` and `EulerAncestralDiscreteScheduler` with their defaults
//! (linear interpolation of sigmas, final sigma zero, no churn).

use super::schedule::{alphas_cumprod, interp, spaced_timesteps};
use super::{NoiseSource, Prediction, Scheduler, SchedulerConfig};
use crate::error::Result;

/// Euler (deterministic) or Euler ancestral (adds noise each step).
#[derive(Debug, Clone)]
pub struct Euler {
    sigmas: Vec<f32>,
    timesteps: Vec<f32>,
    init_sigma: f32,
    prediction: Prediction,
    ancestral: bool,
}

impl Euler {
    /// Builds the sigma schedule for `steps` steps.
    pub fn new(cfg: &SchedulerConfig, steps: usize, ancestral: bool) -> Result<Self> {
        let n = cfg.num_train_timesteps.unwrap_or(1000);
        let ac = alphas_cumprod(cfg)?;
        // Computed in float32, as torch does, then interpolated in float64, as numpy does.
        let train_sigmas: Vec<f64> = ac.iter().map(|&a| f64::from(((1.0 - a) / a).sqrt())).collect();
        let spacing = cfg.timestep_spacing.as_deref().unwrap_or("linspace");
        let ts = spaced_timesteps(spacing, n, steps, cfg.steps_offset.unwrap_or(0))?;
        let mut sigmas: Vec<f32> = ts.iter().map(|&t| interp(t, &train_sigmas) as f32).collect();
        sigmas.push(0.0);
        let max = sigmas.iter().copied().fold(0f32, f32::max);
        let init_sigma = if matches!(spacing, "linspace" | "trailing") { max } else { (max * max + 1.0).sqrt() };
        Ok(Self {
            sigmas,
            timesteps: ts.iter().map(|&t| t as f32).collect(),
            init_sigma,
            prediction: cfg.prediction()?,
            ancestral,
        })
    }
}

impl Scheduler for Euler {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        self.init_sigma
    }

    fn scale_model_input(&self, sample: &mut [f32], i: usize) {
        let s = self.sigmas[i];
        let d = (s * s + 1.0).sqrt();
        sample.iter_mut().for_each(|x| *x /= d);
    }

    fn step(&mut self, model_output: &[f32], i: usize, sample: &mut [f32], noise: &mut NoiseSource) -> Result<()> {
        let (sigma, next) = (self.sigmas[i], self.sigmas[i + 1]);
        let x0 = |x: f32, m: f32| match self.prediction {
            Prediction::Epsilon => x - sigma * m,
            Prediction::V => m * (-sigma / (sigma * sigma + 1.0).sqrt()) + x / (sigma * sigma + 1.0),
            Prediction::Sample => m,
        };
        if !self.ancestral {
            let dt = next - sigma;
            for (x, &m) in sample.iter_mut().zip(model_output) {
                let derivative = (*x - x0(*x, m)) / sigma;
                *x += derivative * dt;
            }
            return Ok(());
        }
        let sigma_up = (next * next * (sigma * sigma - next * next) / (sigma * sigma)).sqrt();
        let sigma_down = (next * next - sigma_up * sigma_up).sqrt();
        let dt = sigma_down - sigma;
        for (x, &m) in sample.iter_mut().zip(model_output) {
            let derivative = (*x - x0(*x, m)) / sigma;
            *x += derivative * dt;
        }
        // diffusers draws noise on every step, the last (sigma_up = 0) included.
        let mut z = vec![0f32; sample.len()];
        noise.fill(&mut z)?;
        sample.iter_mut().zip(&z).for_each(|(x, n)| *x += n * sigma_up);
        Ok(())
    }

    fn add_noise(&self, x0: &mut [f32], noise: &[f32], i: usize) {
        let sigma = self.sigmas[i];
        x0.iter_mut().zip(noise).for_each(|(x, n)| *x += n * sigma);
    }
}
