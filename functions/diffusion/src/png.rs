//! PNG output with the generation parameters in a text chunk (keyword `parameters`, the
//! convention image tools read): `tEXt` when the text is Latin-1, as those tools write it, and
//! `iTXt` (UTF-8) otherwise, so a prompt in any script is kept byte for byte.

use crate::error::{DiffusionError, Result};

/// Encodes RGB8 pixels as PNG with `parameters` text.
pub fn encode_png(rgb: &[u8], width: u32, height: u32, parameters: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let latin1 = parameters.chars().all(|c| u32::from(c) <= 0xFF);
        let added = if latin1 {
            enc.add_text_chunk("parameters".to_string(), parameters.to_string())
        } else {
            enc.add_itxt_chunk("parameters".to_string(), parameters.to_string())
        };
        added.map_err(|e| DiffusionError::BadOutput(format!("cannot write PNG text: {e}")))?;
        let mut w = enc.write_header().map_err(|e| DiffusionError::BadOutput(format!("cannot write PNG: {e}")))?;
        w.write_image_data(rgb).map_err(|e| DiffusionError::BadOutput(format!("cannot write PNG: {e}")))?;
    }
    Ok(out)
}

/// Decodes a PNG into RGB8 pixels.
pub fn decode_rgb(png_bytes: &[u8]) -> std::result::Result<(Vec<u8>, u32, u32), String> {
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

    /// The `parameters` text as a PNG reader sees it, and whether it came as iTXt.
    fn parameters_of(png_bytes: &[u8]) -> (String, bool) {
        let reader = png::Decoder::new(std::io::Cursor::new(png_bytes)).read_info().unwrap();
        let info = reader.info();
        if let Some(t) = info.uncompressed_latin1_text.iter().find(|t| t.keyword == "parameters") {
            return (t.text.clone(), false);
        }
        let t = info.utf8_text.iter().find(|t| t.keyword == "parameters").expect("a parameters chunk");
        (t.get_text().unwrap(), true)
    }

    #[test]
    fn any_script_survives_byte_for_byte() {
        let rgb = vec![0u8; 4 * 4 * 3];
        for (text, itxt) in [
            ("a red circle, Steps: 4", false),
            ("un cœur rouge", true),
            ("café", false),
            ("赤い円 🔴 دائرة עיגול लाल", true),
        ] {
            let png = encode_png(&rgb, 4, 4, text).unwrap();
            assert_eq!(parameters_of(&png), (text.to_string(), itxt), "{text}");
        }
    }
}
