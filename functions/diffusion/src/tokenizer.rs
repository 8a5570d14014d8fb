//! CLIP's BPE tokenizer, built with the `tokenizers` crate from the `vocab.json` and
//! `merges.txt` that every SD export ships, configured as Hugging Face's CLIP converter does.

use std::path::Path;

use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Lowercase, NFC, Replace, Sequence as NormSeq};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSeq;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{SplitDelimiterBehavior, Tokenizer};

use crate::error::{DiffusionError, Result};

/// CLIP's context length.
pub const MAX_LENGTH: usize = 77;

const BOS: &str = "<|startoftext|>";
const EOS: &str = "<|endoftext|>";
const CLIP_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// A prompt as token ids, padded to 77.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// `MAX_LENGTH` ids: BOS, prompt, EOS, padding.
    pub ids: Vec<i64>,
    /// The prompt did not fit and was cut.
    pub truncated: bool,
}

/// CLIP tokenizer.
pub struct ClipTokenizer {
    inner: Tokenizer,
    bos: u32,
    eos: u32,
    pad: u32,
}

fn cfg_err(dir: &Path, message: impl Into<String>) -> DiffusionError {
    DiffusionError::Config { file: dir.to_path_buf(), message: message.into() }
}

impl ClipTokenizer {
    /// Loads `vocab.json` and `merges.txt` from `dir` (a model's `tokenizer/` folder). The pad
    /// token comes from `special_tokens_map.json` when present (SD 2.x pads with `!`).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let vocab = dir.join("vocab.json");
        let merges = dir.join("merges.txt");
        for f in [&vocab, &merges] {
            if !f.is_file() {
                return Err(DiffusionError::MissingFile {
                    path: f.clone(),
                    hint: "a CLIP tokenizer needs tokenizer/vocab.json and tokenizer/merges.txt".into(),
                });
            }
        }
        let bpe = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
            .end_of_word_suffix("</w>".into())
            .continuing_subword_prefix(String::new())
            .unk_token(EOS.into())
            .fuse_unk(false)
            .build()
            .map_err(|e| cfg_err(dir, format!("cannot build the BPE model: {e}")))?;
        let mut inner = Tokenizer::new(bpe);
        let ws = Replace::new(tokenizers::normalizers::replace::ReplacePattern::Regex(r"\s+".into()), " ")
            .map_err(|e| cfg_err(dir, e.to_string()))?;
        inner.with_normalizer(Some(NormSeq::new(vec![NFC.into(), ws.into(), Lowercase.into()])));
        let split = Split::new(SplitPattern::Regex(CLIP_PATTERN.into()), SplitDelimiterBehavior::Removed, true)
            .map_err(|e| cfg_err(dir, e.to_string()))?;
        inner.with_pre_tokenizer(Some(PreSeq::new(vec![split.into(), ByteLevel::new(false, false, true).into()])));
        let id = |t: &str| inner.token_to_id(t).ok_or_else(|| cfg_err(dir, format!("vocab.json has no `{t}` token")));
        let (bos, eos) = (id(BOS)?, id(EOS)?);
        let pad_token = std::fs::read_to_string(dir.join("special_tokens_map.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| match &v["pad_token"] {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(str::to_string),
                _ => None,
            })
            .unwrap_or_else(|| EOS.to_string());
        let pad = id(&pad_token)?;
        Ok(Self { inner, bos, eos, pad })
    }

    /// Tokenizes like `tokenizer(text, padding="max_length", max_length=77, truncation=True)`.
    pub fn encode(&self, text: &str) -> Result<Tokens> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| DiffusionError::Request { field: "prompt", message: format!("cannot tokenize: {e}") })?;
        let body = enc.get_ids();
        let room = MAX_LENGTH - 2;
        let truncated = body.len() > room;
        let mut ids = Vec::with_capacity(MAX_LENGTH);
        ids.push(i64::from(self.bos));
        ids.extend(body.iter().take(room).map(|&i| i64::from(i)));
        ids.push(i64::from(self.eos));
        ids.resize(MAX_LENGTH, i64::from(self.pad));
        Ok(Tokens { ids, truncated })
    }
}
