use std::path::PathBuf;

/// Everything that can go wrong loading a model or generating an image.
#[derive(Debug, thiserror::Error)]
pub enum DiffusionError {
    /// A file of the model layout is missing.
    #[error("model file {path} is missing; {hint}")]
    MissingFile {
        /// The missing file.
        path: PathBuf,
        /// What the layout expects.
        hint: String,
    },
    /// A config file is unreadable or inconsistent.
    #[error("{file}: {message}")]
    Config {
        /// The config file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The ONNX Runtime shared library could not be loaded.
    #[error("ONNX Runtime library {path}: {message}; run scripts/bootstrap.sh or set ORT_DYLIB_PATH")]
    Runtime {
        /// Library path tried.
        path: PathBuf,
        /// Loader message.
        message: String,
    },
    /// ONNX Runtime failed while loading or running a model.
    #[error("{component}: {message}")]
    Onnx {
        /// Which model (text_encoder, unet, vae_decoder).
        component: &'static str,
        /// ONNX Runtime's message.
        message: String,
    },
    /// The request cannot be served by this model.
    #[error("{field}: {message}")]
    Request {
        /// Which request field.
        field: &'static str,
        /// What is wrong and the fix.
        message: String,
    },
    /// The model produced an unusable image.
    #[error("generation produced a bad image: {0}")]
    BadOutput(String),
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, DiffusionError>;

pub(crate) fn onnx(component: &'static str) -> impl FnOnce(ort::Error) -> DiffusionError {
    move |e| DiffusionError::Onnx { component, message: e.to_string() }
}

pub(crate) fn onnx_b<R>(component: &'static str) -> impl FnOnce(ort::Error<R>) -> DiffusionError {
    move |e| DiffusionError::Onnx { component, message: e.to_string() }
}
