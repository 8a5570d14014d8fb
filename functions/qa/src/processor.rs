//! The image preprocessing CLIP-family models expect (`CLIPImageProcessor`, the
//! `preprocessor_config.json` transformers and diffusers write): shortest edge resized, centre
//! crop, rescale to 0..1, normalise by the model's mean and deviation, NCHW. Shared by the
//! image-text model and the safety checker, whose vision towers are both CLIP's.

use std::collections::BTreeMap;
use std::path::Path;

use image::DynamicImage;
use ndarray::Array4;
use serde::Deserialize;

use crate::QaError;

#[derive(Deserialize)]
struct Config {
    crop_size: Option<BTreeMap<String, u32>>,
    size: Option<BTreeMap<String, u32>>,
    image_mean: [f32; 3],
    image_std: [f32; 3],
}

/// One model's preprocessing, read from its `preprocessor_config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipProcessor {
    /// Side of the square the model sees.
    pub crop: u32,
    /// The shortest edge is resized to this before the crop.
    pub shortest_edge: u32,
    /// Per-channel mean (after rescaling to 0..1).
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
}

impl ClipProcessor {
    /// Reads `path` (a `preprocessor_config.json`).
    pub fn load(path: &Path) -> Result<Self, QaError> {
        let text = std::fs::read_to_string(path).map_err(|e| QaError::Model(format!("{}: {e}", path.display())))?;
        let c: Config = serde_json::from_str(&text).map_err(|e| QaError::Model(format!("{}: {e}", path.display())))?;
        // transformers writes crop_size as {height, width} (older files: a number, which this
        // reads as absent and falls back to CLIP's 224).
        let crop = c.crop_size.as_ref().and_then(|s| s.get("height").copied()).unwrap_or(224);
        let shortest_edge = c.size.as_ref().and_then(|s| s.get("shortest_edge").copied()).unwrap_or(crop);
        if crop == 0 || shortest_edge < crop {
            return Err(QaError::Model(format!(
                "{}: crop_size {crop} must be at least 1 and at most size.shortest_edge {shortest_edge}",
                path.display()
            )));
        }
        if c.image_std.iter().any(|s| *s <= 0.0 || !s.is_finite()) {
            return Err(QaError::Model(format!("{}: image_std must be positive", path.display())));
        }
        Ok(Self { crop, shortest_edge, mean: c.image_mean, std: c.image_std })
    }

    /// `img` as the model takes it: `1 x 3 x crop x crop`, normalised.
    pub fn pixels(&self, img: &DynamicImage) -> Array4<f32> {
        let (s, c) = (self.shortest_edge, self.crop);
        let (w, h) = (img.width().max(1), img.height().max(1));
        let scale = s as f32 / w.min(h) as f32;
        let (rw, rh) = (((w as f32 * scale).round() as u32).max(s), ((h as f32 * scale).round() as u32).max(s));
        let rgb = if (rw, rh) == (w, h) {
            img.to_rgb8()
        } else {
            img.resize_exact(rw, rh, image::imageops::FilterType::CatmullRom).to_rgb8()
        };
        let (x0, y0) = ((rw - c) / 2, (rh - c) / 2);
        Array4::from_shape_fn((1, 3, c as usize, c as usize), |(_, ch, y, x)| {
            let v = f32::from(rgb.get_pixel(x0 + x as u32, y0 + y as u32)[ch]) / 255.0;
            (v - self.mean[ch]) / self.std[ch]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn processor(json: &str) -> Result<ClipProcessor, QaError> {
        let dir = std::env::temp_dir().join(format!("latentmint-qa-processor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{:x}.json", json.len() * 31 + json.bytes().map(usize::from).sum::<usize>()));
        std::fs::write(&path, json).unwrap();
        ClipProcessor::load(&path)
    }

    #[test]
    fn a_larger_image_is_resized_then_centre_cropped() {
        let p = processor(
            r#"{"crop_size":{"height":4,"width":4},"size":{"shortest_edge":4},"image_mean":[0,0,0],"image_std":[1,1,1]}"#,
        )
        .unwrap();
        // 16 x 8: the shortest edge becomes 4 (8 x 4), the crop keeps the middle 4 columns.
        let img = image::RgbImage::from_fn(16, 8, |x, _| {
            if (4..12).contains(&x) { image::Rgb([255, 0, 0]) } else { image::Rgb([0, 0, 255]) }
        });
        let px = p.pixels(&DynamicImage::ImageRgb8(img));
        assert_eq!(px.shape(), &[1, 3, 4, 4]);
        assert!(px[[0, 0, 2, 1]] > 0.9 && px[[0, 2, 2, 1]] < 0.1, "the centre is the red band");
    }

    #[test]
    fn a_config_that_cannot_be_used_is_refused_by_name() {
        let e = processor(
            r#"{"crop_size":{"height":8},"size":{"shortest_edge":4},"image_mean":[0,0,0],"image_std":[1,1,1]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("crop_size 8"), "{e}");
        let e = processor(r#"{"image_mean":[0,0,0],"image_std":[1,0,1]}"#).unwrap_err();
        assert!(e.to_string().contains("image_std"), "{e}");
    }
}
