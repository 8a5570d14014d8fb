//! Automatic QA: cheap image statistics that catch what a broken generation looks like
//! (flat, blown out, black) and a score that decides auto-approve / staging / auto-reject.

use serde::{Deserialize, Serialize};

use crate::pipeline::JobState;

/// `[review]`: automatic QA thresholds on the 0..1 quality score.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewSection {
    /// Score at or above which an image is approved without a human.
    #[serde(default = "default_approve")]
    pub auto_approve_at: f32,
    /// Score below which an image is rejected without a human.
    #[serde(default = "default_reject")]
    pub auto_reject_below: f32,
}

fn default_approve() -> f32 {
    0.5
}
fn default_reject() -> f32 {
    0.15
}

impl Default for ReviewSection {
    fn default() -> Self {
        Self { auto_approve_at: default_approve(), auto_reject_below: default_reject() }
    }
}

/// Statistics of one image and the score derived from them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QaReport {
    /// Mean luma (0..255).
    pub mean_luma: f32,
    /// Standard deviation of luma: near 0 means a flat image.
    pub luma_std: f32,
    /// Share of pixels that are almost black.
    pub black_fraction: f32,
    /// Share of pixels that are almost white.
    pub white_fraction: f32,
    /// Hasler–Süsstrunk colourfulness.
    pub colourfulness: f32,
    /// Overall quality score in 0..1.
    pub score: f32,
}

impl QaReport {
    /// Measures an RGB8 image (`pixels.len() == width * height * 3`).
    pub fn measure(pixels: &[u8], width: u32, height: u32) -> Option<Self> {
        let n = (width as usize) * (height as usize);
        if n == 0 || pixels.len() != n * 3 {
            return None;
        }
        let (mut sum, mut sum2, mut black, mut white) = (0f64, 0f64, 0usize, 0usize);
        let (mut rg_s, mut rg_s2, mut yb_s, mut yb_s2) = (0f64, 0f64, 0f64, 0f64);
        for px in pixels.chunks_exact(3) {
            let (r, g, b) = (f64::from(px[0]), f64::from(px[1]), f64::from(px[2]));
            let y = 0.299 * r + 0.587 * g + 0.114 * b;
            sum += y;
            sum2 += y * y;
            if y < 8.0 {
                black += 1;
            }
            if y > 247.0 {
                white += 1;
            }
            let rg = r - g;
            let yb = 0.5 * (r + g) - b;
            rg_s += rg;
            rg_s2 += rg * rg;
            yb_s += yb;
            yb_s2 += yb * yb;
        }
        let nf = n as f64;
        let mean = sum / nf;
        let std = (sum2 / nf - mean * mean).max(0.0).sqrt();
        let var = |s: f64, s2: f64| (s2 / nf - (s / nf).powi(2)).max(0.0);
        let colourfulness =
            (var(rg_s, rg_s2) + var(yb_s, yb_s2)).sqrt() + 0.3 * ((rg_s / nf).powi(2) + (yb_s / nf).powi(2)).sqrt();
        let black_fraction = black as f64 / nf;
        let white_fraction = white as f64 / nf;
        // Contrast carries most of the signal: generations that failed are flat. Clipping to
        // black or white over most of the frame is the other common failure.
        let contrast = (std / 24.0).min(1.0);
        let clipped = black_fraction.max(white_fraction);
        let exposure = if clipped > 0.5 { 1.0 - (clipped - 0.5) * 2.0 } else { 1.0 };
        let score = (contrast * exposure).clamp(0.0, 1.0);
        Some(Self {
            mean_luma: mean as f32,
            luma_std: std as f32,
            black_fraction: black_fraction as f32,
            white_fraction: white_fraction as f32,
            colourfulness: colourfulness as f32,
            score: score as f32,
        })
    }

    /// Where the job goes next under these thresholds.
    pub fn verdict(&self, t: &ReviewSection) -> JobState {
        if self.score >= t.auto_approve_at {
            JobState::Approved
        } else if self.score < t.auto_reject_below {
            JobState::Rejected
        } else {
            JobState::AwaitingReview
        }
    }

    /// One line for logs and error messages.
    pub fn summary(&self) -> String {
        format!(
            "score {:.2} (luma mean {:.0}, std {:.1}, black {:.0}%, white {:.0}%)",
            self.score,
            self.mean_luma,
            self.luma_std,
            self.black_fraction * 100.0,
            self.white_fraction * 100.0
        )
    }

    /// A report with a given score, for tests of the state machine.
    #[doc(hidden)]
    pub fn for_tests(score: f32) -> Self {
        Self { mean_luma: 0.0, luma_std: 0.0, black_fraction: 0.0, white_fraction: 0.0, colourfulness: 0.0, score }
    }
}

/// How far one RGB8 image is from another of the same size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelDiff {
    /// Largest difference of one channel of one pixel (0..255); 0 means identical pixels.
    pub max_abs: u8,
    /// Peak signal-to-noise ratio in dB (infinite for identical pixels). Above 40 dB two
    /// images look the same; another seed gives 10-13 dB on the demo models.
    pub psnr_db: f64,
}

impl PixelDiff {
    /// Compares two RGB8 images; None when their sizes differ.
    pub fn between(a: &[u8], b: &[u8]) -> Option<Self> {
        if a.len() != b.len() || a.is_empty() {
            return None;
        }
        let (mut max_abs, mut squares) = (0u8, 0u64);
        for (&x, &y) in a.iter().zip(b) {
            let d = x.abs_diff(y);
            max_abs = max_abs.max(d);
            squares += u64::from(d) * u64::from(d);
        }
        let mse = squares as f64 / a.len() as f64;
        let psnr_db = if squares == 0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / mse).log10() };
        Some(Self { max_abs, psnr_db })
    }
}

/// Decodes a PNG into RGB8 pixels.
pub fn decode_rgb(png_bytes: &[u8]) -> Result<(Vec<u8>, u32, u32), String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| format!("not a PNG: {e}"))?;
    let mut buf = vec![0; reader.output_buffer_size().ok_or("PNG too large")?];
    let info = reader.next_frame(&mut buf).map_err(|e| format!("corrupt PNG: {e}"))?;
    buf.truncate(info.buffer_size());
    let (w, h) = (info.width, info.height);
    let rgb = match info.color_type {
        png::ColorType::Rgb => buf,
        png::ColorType::Rgba => buf.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        png::ColorType::Grayscale => buf.iter().flat_map(|&g| [g, g, g]).collect(),
        png::ColorType::GrayscaleAlpha => buf.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0]]).collect(),
        png::ColorType::Indexed => return Err("indexed PNG after expansion".into()),
    };
    Ok((rgb, w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_diff_is_zero_for_the_same_image_and_falls_with_the_difference() {
        let a: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        let same = PixelDiff::between(&a, &a).unwrap();
        assert_eq!((same.max_abs, same.psnr_db), (0, f64::INFINITY));
        let mut b = a.clone();
        b[7] = b[7].wrapping_add(1);
        let one = PixelDiff::between(&a, &b).unwrap();
        assert_eq!(one.max_abs, 1);
        // One step of 1 in 300 values: MSE 1/300, PSNR = 10 log10(255^2 * 300).
        assert!((one.psnr_db - 10.0 * (255.0f64 * 255.0 * 300.0).log10()).abs() < 1e-9);
        let inverted: Vec<u8> = a.iter().map(|v| 255 - v).collect();
        assert!(PixelDiff::between(&a, &inverted).unwrap().psnr_db < 10.0);
        assert_eq!(PixelDiff::between(&a, &a[..299]), None, "sizes differ");
    }

    fn verdict(pixels: &[u8], w: u32, h: u32) -> (QaReport, JobState) {
        let r = QaReport::measure(pixels, w, h).unwrap();
        let v = r.verdict(&ReviewSection::default());
        (r, v)
    }

    #[test]
    fn black_image_is_rejected() {
        let (r, v) = verdict(&vec![0u8; 16 * 16 * 3], 16, 16);
        assert_eq!(v, JobState::Rejected, "{}", r.summary());
    }

    #[test]
    fn flat_grey_is_rejected() {
        let (_, v) = verdict(&vec![128u8; 16 * 16 * 3], 16, 16);
        assert_eq!(v, JobState::Rejected);
    }

    #[test]
    fn textured_image_is_approved() {
        let px: Vec<u8> = (0..16 * 16 * 3).map(|i| ((i * 37) % 256) as u8).collect();
        let (r, v) = verdict(&px, 16, 16);
        assert_eq!(v, JobState::Approved, "{}", r.summary());
    }

    #[test]
    fn low_contrast_waits_for_a_human() {
        let px: Vec<u8> = (0..16 * 16 * 3).map(|i| 120 + ((i / 3) % 2 * 16) as u8).collect();
        let (r, v) = verdict(&px, 16, 16);
        assert_eq!(v, JobState::AwaitingReview, "{}", r.summary());
    }

    #[test]
    fn wrong_length_is_none() {
        assert!(QaReport::measure(&[0; 5], 2, 2).is_none());
    }
}
