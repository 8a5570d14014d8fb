//! Prompt sanitization: the first thing intake does with text a user or a webhook sent.

use crate::field::FieldError;

/// Longest prompt accepted, in characters. CLIP sees 77 tokens (roughly 300 characters); the
/// margin lets templates and styles grow while refusing pasted documents.
pub const MAX_PROMPT_CHARS: usize = 1000;

/// Cleans a prompt and refuses what cannot be a prompt.
///
/// Tabs and line breaks become single spaces and runs of whitespace collapse, so the same
/// prompt typed two ways hashes to the same job id. Every other control character, and the
/// Unicode bidirectional overrides that can hide text from a reviewer, are refused rather than
/// silently dropped: they usually mean the input was not what the sender thought it was.
pub fn sanitize_prompt(field: &str, raw: &str) -> Result<String, FieldError> {
    if raw.len() > MAX_PROMPT_CHARS * 4 || raw.chars().count() > MAX_PROMPT_CHARS {
        return Err(FieldError::new(
            field,
            format!("is {} characters long; the limit is {MAX_PROMPT_CHARS}", raw.chars().count()),
            "shorten the prompt (CLIP reads only the first 77 tokens anyway)",
        ));
    }
    let mut out = String::with_capacity(raw.len());
    let mut pending_space = false;
    for (offset, c) in raw.char_indices() {
        if c == '\t' || c == '\n' || c == '\r' || c == ' ' {
            pending_space = !out.is_empty();
            continue;
        }
        if c.is_control() || is_bidi_control(c) {
            return Err(FieldError::new(
                field,
                format!("contains the control character U+{:04X} at byte {offset}", c as u32),
                "remove control characters; only printable text, spaces, tabs and line breaks are accepted",
            ));
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
    if out.is_empty() {
        return Err(FieldError::new(field, "is empty", "write a prompt describing the image"));
    }
    Ok(out)
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_normalized() {
        assert_eq!(sanitize_prompt("p", "  a\tred \n\n circle  ").unwrap(), "a red circle");
    }

    #[test]
    fn empty_and_blank_are_refused() {
        for s in ["", "   ", "\n\t"] {
            let e = sanitize_prompt("prompts[0].text", s).unwrap_err();
            assert_eq!(e.field, "prompts[0].text");
            assert!(e.problem.contains("empty"));
        }
    }

    #[test]
    fn huge_prompt_is_refused_with_its_length() {
        let e = sanitize_prompt("p", &"x".repeat(100 * 1024)).unwrap_err();
        assert!(e.problem.contains("102400"), "{e}");
    }

    #[test]
    fn control_characters_are_refused_with_their_position() {
        let e = sanitize_prompt("p", "a red\u{7} circle").unwrap_err();
        assert!(e.problem.contains("U+0007 at byte 5"), "{e}");
        assert!(sanitize_prompt("p", "abc\u{202E}cba").is_err());
        assert!(sanitize_prompt("p", "nul\0").is_err());
    }

    #[test]
    fn unicode_text_is_kept() {
        assert_eq!(sanitize_prompt("p", "un cercle rouge, 赤い円").unwrap(), "un cercle rouge, 赤い円");
    }
}
