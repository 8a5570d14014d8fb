//! DPM-Solver++ 2M (Lu et al. 2022), as diffusers' `DPMSolverMultistepScheduler` with its
//! defaults: data prediction, second order, midpoint, lower order on the final step(s).

use super::schedule::{alphas_cumprod, interp, linspace_f64, round_half_even};
use super::{NoiseSource, Prediction, Scheduler, SchedulerConfig, config_error};
use crate::error::Result;

/// DPM-Solver++ 2M.
#[derive(Debug, Clone)]
pub struct DpmSolverPp2M {
    sigmas: Vec<f32>,
    timesteps: Vec<f32>,
    prediction: Prediction,
    /// Data predictions of the last two steps, newest last.
    outputs: Vec<Vec<f32>>,
    lower_order_nums: usize,
}

fn alpha_sigma(sigma: f32) -> (f32, f32) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

impl DpmSolverPp2M {
    /// Builds the schedule for `steps` steps.
    pub fn new(cfg: &SchedulerConfig, steps: usize) -> Result<Self> {
        let n = cfg.num_train_timesteps.unwrap_or(1000);
        let ac = alphas_cumprod(cfg)?;
        let offset = cfg.steps_offset.unwrap_or(0);
        let ts: Vec<i64> = match cfg.timestep_spacing.as_deref().unwrap_or("linspace") {
            "linspace" => linspace_f64(0.0, (n - 1) as f64, steps + 1)
                .into_iter()
                .map(round_half_even)
                .rev()
                .take(steps)
                .map(|x| x as i64)
                .collect(),
            "leading" => {
                let r = n / (steps + 1);
                (0..=steps).rev().take(steps).map(|i| (i * r + offset) as i64).collect()
            }
            "trailing" => {
                let r = n as f64 / steps as f64;
                (0..steps).map(|i| round_half_even(n as f64 - i as f64 * r) as i64 - 1).collect()
            }
            other => return Err(config_error(format!("timestep_spacing `{other}` is not supported"))),
        };
        let train_sigmas: Vec<f64> = ac.iter().map(|&a| f64::from(((1.0 - a) / a).sqrt())).collect();
        let mut sigmas: Vec<f32> = ts.iter().map(|&t| interp(t as f64, &train_sigmas) as f32).collect();
        sigmas.push(0.0);
        Ok(Self {
            sigmas,
            timesteps: ts.iter().map(|&t| t as f32).collect(),
            prediction: cfg.prediction()?,
            outputs: Vec::new(),
            lower_order_nums: 0,
        })
    }
}

impl Scheduler for DpmSolverPp2M {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        1.0
    }

    fn step(&mut self, model_output: &[f32], i: usize, sample: &mut [f32], _noise: &mut NoiseSource) -> Result<()> {
        let (alpha_s0, sigma_s0) = alpha_sigma(self.sigmas[i]);
        // Convert the model output to a data (x0) prediction.
        let x0: Vec<f32> = sample
            .iter()
            .zip(model_output)
            .map(|(&x, &m)| match self.prediction {
                Prediction::Epsilon => (x - sigma_s0 * m) / alpha_s0,
                Prediction::V => alpha_s0 * x - sigma_s0 * m,
                Prediction::Sample => m,
            })
            .collect();
        if self.outputs.len() == 2 {
            self.outputs.remove(0);
        }
        self.outputs.push(x0);

        let n = self.timesteps.len();
        let lower_order_final = i == n - 1; // final sigma is zero: always first order at the end
        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[i + 1]);
        let lambda_t = alpha_t.ln() - sigma_t.ln();
        let lambda_s0 = alpha_s0.ln() - sigma_s0.ln();
        let h = lambda_t - lambda_s0;
        let ratio = sigma_t / sigma_s0;
        let coef = alpha_t * ((-h).exp() - 1.0);
        let m0 = &self.outputs[self.outputs.len() - 1];
        if self.lower_order_nums < 1 || lower_order_final {
            for (x, &d0) in sample.iter_mut().zip(m0) {
                *x = ratio * *x - coef * d0;
            }
        } else {
            let m1 = &self.outputs[self.outputs.len() - 2];
            let (alpha_s1, sigma_s1) = alpha_sigma(self.sigmas[i - 1]);
            let lambda_s1 = alpha_s1.ln() - sigma_s1.ln();
            let h0 = lambda_s0 - lambda_s1;
            let r0 = h0 / h;
            for ((x, &d0), &p) in sample.iter_mut().zip(m0).zip(m1) {
                let d1 = (1.0 / r0) * (d0 - p);
                *x = ratio * *x - coef * d0 - 0.5 * coef * d1;
            }
        }
        if self.lower_order_nums < 2 {
            self.lower_order_nums += 1;
        }
        Ok(())
    }

    fn add_noise(&self, x0: &mut [f32], noise: &[f32], i: usize) {
        let (alpha, sigma) = alpha_sigma(self.sigmas[i]);
        x0.iter_mut().zip(noise).for_each(|(x, n)| *x = alpha * *x + sigma * n);
    }
}
