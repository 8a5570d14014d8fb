//! Initial latents from a `.npy` file (`latentmint generate --latents`): the noise a run of
//! diffusers, or any other implementation, started from, so both can be compared image for
//! image.

use ndarray_npy::ReadNpyExt;

/// The latents in `bytes` (a float32 `.npy` array), row-major, if their shape is exactly
/// `want` (images, channels, height / f, width / f). The right number of values in another
/// shape (transposed, or other channels) would silently make another image: refused. The
/// error says what was found and what the model takes.
pub fn read_latents(bytes: &[u8], want: [usize; 4]) -> Result<Vec<f32>, String> {
    let arr = ndarray::ArrayD::<f32>::read_npy(bytes).map_err(|e| format!("not a float32 .npy array ({e})"))?;
    if arr.shape() != want {
        return Err(format!(
            "shape {:?}; this model takes {want:?} (images, channels, height/f, width/f): give an array of that shape, in that order",
            arr.shape()
        ));
    }
    // Row-major, as the engine reads it, whatever the file's order.
    Ok(arr.as_standard_layout().iter().copied().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray_npy::WriteNpyExt;

    fn npy(shape: [usize; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        ndarray::Array4::<f32>::from_shape_fn(shape, |(a, b, c, d)| (a * 1000 + b * 100 + c * 10 + d) as f32)
            .write_npy(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn the_exact_shape_or_a_refusal_naming_both() {
        let v = read_latents(&npy([1, 4, 2, 3]), [1, 4, 2, 3]).unwrap();
        assert_eq!(&v[..4], &[0.0, 1.0, 2.0, 10.0], "row-major");
        let e = read_latents(&npy([1, 8, 2, 3]), [1, 4, 4, 3]).unwrap_err();
        assert!(e.contains("[1, 8, 2, 3]") && e.contains("[1, 4, 4, 3]"), "{e}");
        let e = read_latents(&npy([1, 4, 3, 2]), [1, 4, 2, 3]).unwrap_err();
        assert!(e.contains("shape [1, 4, 3, 2]"), "a transposed array: {e}");
        assert!(read_latents(b"\x93NUMPY garbage", [1, 4, 2, 3]).unwrap_err().contains("not a float32 .npy"));
    }
}
