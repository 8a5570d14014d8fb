//! The training noise schedule shared by all schedulers, computed in float32 as diffusers does.

use super::{SchedulerConfig, config_error};
use crate::error::Result;

/// `alphas_cumprod` over the training timesteps.
pub(crate) fn alphas_cumprod(cfg: &SchedulerConfig) -> Result<Vec<f32>> {
    let n = cfg.num_train_timesteps.unwrap_or(1000);
    let (start, end) = (cfg.beta_start.unwrap_or(0.0001) as f32, cfg.beta_end.unwrap_or(0.02) as f32);
    let betas: Vec<f32> = match cfg.beta_schedule.as_deref().unwrap_or("linear") {
        "linear" => linspace_f32(start, end, n),
        "scaled_linear" => linspace_f32(start.sqrt(), end.sqrt(), n).into_iter().map(|b| b * b).collect(),
        other => {
            return Err(config_error(format!("beta_schedule `{other}` is not supported; use linear or scaled_linear")));
        }
    };
    let mut acc = 1f32;
    Ok(betas
        .iter()
        .map(|b| {
            acc *= 1.0 - b;
            acc
        })
        .collect())
}

/// `torch.linspace` in float32: start + i*step for the first half, end - (n-1-i)*step after.
pub(crate) fn linspace_f32(a: f32, b: f32, n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![a];
    }
    let step = (b - a) / (n - 1) as f32;
    let half = n / 2;
    (0..n).map(|i| if i < half { a + step * i as f32 } else { b - step * (n - 1 - i) as f32 }).collect()
}

/// `numpy.linspace` in float64.
pub(crate) fn linspace_f64(a: f64, b: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![a];
    }
    let step = (b - a) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| a + i as f64 * step).collect();
    v[n - 1] = b;
    v
}

/// `numpy.interp(x, arange(len(ys)), ys)` in float64.
pub(crate) fn interp(x: f64, ys: &[f64]) -> f64 {
    if x <= 0.0 {
        return ys[0];
    }
    let last = ys.len() - 1;
    if x >= last as f64 {
        return ys[last];
    }
    let i = x.floor() as usize;
    let f = x - i as f64;
    ys[i] + (ys[i + 1] - ys[i]) * f
}

/// Timesteps for a spacing, as diffusers' Euler/DPM `set_timesteps` computes them (float64).
pub(crate) fn spaced_timesteps(spacing: &str, n_train: usize, steps: usize, offset: usize) -> Result<Vec<f64>> {
    Ok(match spacing {
        "linspace" => linspace_f64(0.0, (n_train - 1) as f64, steps).into_iter().rev().collect(),
        "leading" => {
            let r = n_train / steps;
            (0..steps).rev().map(|i| ((i * r) as f64).round() + offset as f64).collect()
        }
        "trailing" => {
            let r = n_train as f64 / steps as f64;
            // np.round(np.arange(n_train, 0, -r)) - 1
            let mut v = Vec::new();
            let mut x = n_train as f64;
            while x > 0.0 && v.len() < steps {
                v.push(round_half_even(x) - 1.0);
                x -= r;
            }
            v
        }
        other => {
            return Err(config_error(format!(
                "timestep_spacing `{other}` is not supported; use leading, trailing or linspace"
            )));
        }
    })
}

/// numpy rounds half to even.
pub(crate) fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 { r - x.signum() } else { r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_helpers() {
        assert_eq!(linspace_f64(0.0, 999.0, 4), [0.0, 333.0, 666.0, 999.0]);
        assert_eq!(interp(1.5, &[0.0, 2.0, 4.0]), 3.0);
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(3.5), 4.0);
        assert_eq!(spaced_timesteps("trailing", 1000, 4, 0).unwrap(), [999.0, 749.0, 499.0, 249.0]);
        assert_eq!(spaced_timesteps("leading", 1000, 4, 1).unwrap(), [751.0, 501.0, 251.0, 1.0]);
    }
}
