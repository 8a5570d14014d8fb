//! PNG output with the generation parameters in a `tEXt` chunk (keyword `parameters`, the
//! convention image tools read).

use crate::error::{DiffusionError, Result};

/// Encodes RGB8 pixels as PNG with `parameters` text.
pub fn encode_png(rgb: &[u8], width: u32, height: u32, parameters: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.add_text_chunk("parameters".to_string(), parameters.to_string())
            .map_err(|e| DiffusionError::BadOutput(format!("cannot write PNG text: {e}")))?;
        let mut w = enc.write_header().map_err(|e| DiffusionError::BadOutput(format!("cannot write PNG: {e}")))?;
        w.write_image_data(rgb).map_err(|e| DiffusionError::BadOutput(format!("cannot write PNG: {e}")))?;
    }
    Ok(out)
}
