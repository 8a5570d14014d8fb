//! The arguments of `latentmint run`, which `latentmint live` takes too (the same collection,
//! folder and chain), and which the run's wiring reads.

use std::path::PathBuf;

/// `latentmint run`
#[derive(clap::Args)]
pub struct RunArgs {
    /// Collection file (TOML); see examples/.
    pub collection: PathBuf,
    /// Folder for run state; each collection gets a sub-folder named after it.
    #[arg(long, default_value = ".latentmint")]
    pub data_dir: PathBuf,
    /// ONNX Runtime shared library (libonnxruntime.so, 1.31 or newer).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_library: Option<PathBuf>,
    /// anvil binary, used when the collection names no RPC URL.
    #[arg(long, env = "LATENTMINT_ANVIL")]
    pub anvil: Option<PathBuf>,
    /// ONNX Runtime threads per operator (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Receives before a message goes to its dead-letter queue.
    #[arg(long, default_value_t = 5)]
    pub max_receives: u32,
    /// No progress bars (logs only).
    #[arg(long)]
    pub no_progress: bool,
}
