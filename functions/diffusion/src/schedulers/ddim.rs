//! DDIM (Song et al. 2020) with eta = 0, as diffusers' `DDIMScheduler`.

use super::schedule::{alphas_cumprod, linspace_f64, round_half_even};
use super::{NoiseSource, Prediction, Scheduler, SchedulerConfig, config_error};
use crate::error::Result;

/// DDIM.
#[derive(Debug, Clone)]
pub struct Ddim {
    alphas_cumprod: Vec<f32>,
    final_alpha_cumprod: f32,
    timesteps: Vec<f32>,
    step_ratio: usize,
    prediction: Prediction,
    clip: Option<f32>,
}

impl Ddim {
    /// DDIM for `steps` steps (DDIMScheduler defaults where the config is silent).
    pub fn new(cfg: &SchedulerConfig, steps: usize) -> Result<Self> {
        let n = cfg.num_train_timesteps.unwrap_or(1000);
        let alphas_cumprod = alphas_cumprod(cfg)?;
        let final_alpha_cumprod = if cfg.set_alpha_to_one.unwrap_or(true) { 1.0 } else { alphas_cumprod[0] };
        let step_ratio = n / steps;
        let offset = cfg.steps_offset.unwrap_or(0);
        let timesteps: Vec<usize> = match cfg.timestep_spacing.as_deref().unwrap_or("leading") {
            "leading" => (0..steps).rev().map(|i| i * step_ratio + offset).collect(),
            "trailing" => {
                let r = n as f64 / steps as f64;
                (0..steps).map(|i| (round_half_even(n as f64 - i as f64 * r) as usize).saturating_sub(1)).collect()
            }
            "linspace" => linspace_f64(0.0, (n - 1) as f64, steps)
                .into_iter()
                .rev()
                .map(|x| round_half_even(x) as usize)
                .collect(),
            other => return Err(config_error(format!("timestep_spacing `{other}` is not supported"))),
        };
        Ok(Self {
            alphas_cumprod,
            final_alpha_cumprod,
            timesteps: timesteps.into_iter().map(|t| t as f32).collect(),
            step_ratio,
            prediction: cfg.prediction()?,
            clip: cfg.clip_sample.unwrap_or(true).then_some(cfg.clip_sample_range.unwrap_or(1.0)),
        })
    }
}

impl Scheduler for Ddim {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        1.0
    }

    fn step(&mut self, model_output: &[f32], i: usize, sample: &mut [f32], _noise: &mut NoiseSource) -> Result<()> {
        let t = self.timesteps[i] as usize;
        let prev_t = t as i64 - self.step_ratio as i64;
        let a_t = self.alphas_cumprod[t.min(self.alphas_cumprod.len() - 1)];
        let a_prev = if prev_t >= 0 { self.alphas_cumprod[prev_t as usize] } else { self.final_alpha_cumprod };
        let b_t = 1.0 - a_t;
        let (sa, sb) = (a_t.sqrt(), b_t.sqrt());
        let (sa_prev, sdir) = (a_prev.sqrt(), (1.0 - a_prev).sqrt());
        for (x, &m) in sample.iter_mut().zip(model_output) {
            let (mut x0, mut eps) = match self.prediction {
                Prediction::Epsilon => ((*x - sb * m) / sa, m),
                Prediction::V => (sa * *x - sb * m, sa * m + sb * *x),
                Prediction::Sample => (m, (*x - sa * m) / sb),
            };
            if let Some(r) = self.clip {
                x0 = x0.clamp(-r, r);
                // diffusers re-derives epsilon from the clipped x0.
                eps = (*x - sa * x0) / sb;
            }
            *x = sa_prev * x0 + sdir * eps;
        }
        Ok(())
    }

    fn add_noise(&self, x0: &mut [f32], noise: &[f32], i: usize) {
        super::add_noise_vp(&self.alphas_cumprod, self.timesteps[i] as usize, x0, noise);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sd_config() -> SchedulerConfig {
        serde_json::from_str(
            r#"{"_class_name":"DDIMScheduler","beta_start":0.00085,"beta_end":0.012,"beta_schedule":"scaled_linear",
                "clip_sample":false,"set_alpha_to_one":false,"steps_offset":1,"num_train_timesteps":1000}"#,
        )
        .unwrap()
    }

    #[test]
    fn leading_timesteps_match_diffusers() {
        let d = Ddim::new(&sd_config(), 4).unwrap();
        assert_eq!(d.timesteps(), &[751.0, 501.0, 251.0, 1.0]);
    }

    #[test]
    fn alphas_cumprod_endpoints() {
        let d = Ddim::new(&sd_config(), 10).unwrap();
        assert!((d.alphas_cumprod[0] - 0.99915).abs() < 1e-6);
        assert!((d.alphas_cumprod[999] - 0.004_660_8).abs() < 1e-5, "{}", d.alphas_cumprod[999]);
    }

    #[test]
    fn perfect_noise_prediction_recovers_x0() {
        let cfg = SchedulerConfig { set_alpha_to_one: Some(true), ..sd_config() };
        let mut d = Ddim::new(&cfg, 1).unwrap();
        let t = d.timesteps()[0] as usize;
        let a = d.alphas_cumprod[t];
        let (x0, eps) = (0.3f32, -1.2f32);
        let mut x = [a.sqrt() * x0 + (1.0 - a).sqrt() * eps];
        d.step(&[eps], 0, &mut x, &mut NoiseSource::seeded(0)).unwrap();
        assert!((x[0] - x0).abs() < 1e-5, "{}", x[0]);
    }
}
