//! Text cleaning: the first thing done with any text a user, an operator or a shop sends.
//!
//! Every text field (prompts, negative prompts, the style, the description, names, trait
//! values, operator names) goes through one of two functions here, so one rule holds
//! everywhere:
//! - **Normalisation:** the text is put in Unicode Normalization Form C (NFC), so the same
//!   words typed on two keyboards (a precomposed `é` or `e` + combining accent) are the same
//!   bytes, hash to the same job id and are stored, signed and verified byte for byte.
//! - **Whitespace:** on one-line fields ([`clean_line`]) every run of whitespace (tabs, line
//!   breaks, U+2028/U+2029, no-break and ideographic spaces) becomes one space, and the ends are
//!   trimmed. The description ([`clean_text`]) keeps its line breaks (`\r\n` becomes `\n`).
//! - **Refused code points** ([`refused`]), named with their position rather than dropped,
//!   since they usually mean the text is not what the sender thought:
//!   - control characters (C0 and C1, DEL), other than the whitespace above;
//!   - bidirectional controls, which can hide or reorder text in front of a reviewer: U+061C,
//!     U+200E, U+200F, U+202A–U+202E, U+2066–U+2069;
//!   - invisible characters that carry no meaning: U+00AD, U+180E, U+200B, U+2060–U+2064,
//!     U+FEFF and the Hangul fillers U+115F, U+1160, U+3164, U+FFA0;
//!   - noncharacters: U+FDD0–U+FDEF and the last two code points of every plane.
//!
//!   Kept on purpose: U+200C and U+200D (zero-width non-joiner and joiner: Persian, Indic
//!   scripts and emoji sequences need them), variation selectors and tag characters (emoji
//!   presentation, flags).

use unicode_normalization::UnicodeNormalization;

use crate::field::FieldError;

/// Longest prompt accepted, in characters. CLIP sees 77 tokens (roughly 300 characters); the
/// margin lets templates and styles grow while refusing pasted documents.
pub const MAX_PROMPT_CHARS: usize = 1000;

/// Longest collection description accepted, in characters (it is written into every token's
/// metadata).
pub const MAX_DESCRIPTION_CHARS: usize = 5000;

/// Longest operator name accepted, in characters.
pub const MAX_OPERATOR_CHARS: usize = 64;

/// Why `c` is refused in any text field, or `None` when it is accepted.
pub fn refused(c: char) -> Option<&'static str> {
    match c {
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => {
            Some("a bidirectional control")
        }
        '\u{00AD}'
        | '\u{180E}'
        | '\u{200B}'
        | '\u{2060}'..='\u{2064}'
        | '\u{FEFF}'
        | '\u{115F}'
        | '\u{1160}'
        | '\u{3164}'
        | '\u{FFA0}' => Some("an invisible character"),
        '\u{FDD0}'..='\u{FDEF}' => Some("a noncharacter"),
        c if (c as u32) & 0xFFFE == 0xFFFE => Some("a noncharacter"),
        c if c.is_control() => Some("a control character"),
        _ => None,
    }
}

/// Cleans one line of text (see the module docs): NFC, whitespace folded, refused code points
/// named; at most `max_chars` characters, and not empty.
pub fn clean_line(field: &str, raw: &str, max_chars: usize, empty_fix: &str) -> Result<String, FieldError> {
    too_long(field, raw, max_chars)?;
    let mut out = String::with_capacity(raw.len());
    let mut pending_space = false;
    let mut offset = 0;
    for c in raw.nfc() {
        let at = offset;
        offset += c.len_utf8();
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        refuse(field, c, at)?;
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
    if out.is_empty() {
        return Err(FieldError::new(field, "is empty", empty_fix));
    }
    too_long(field, &out, max_chars)?;
    Ok(out)
}

/// Cleans text of several lines (see the module docs): NFC, line breaks kept as `\n`, other
/// whitespace kept, refused code points named; at most `max_chars` characters. May be empty.
pub fn clean_text(field: &str, raw: &str, max_chars: usize) -> Result<String, FieldError> {
    too_long(field, raw, max_chars)?;
    let unified = raw.replace("\r\n", "\n");
    let mut out = String::with_capacity(unified.len());
    let mut offset = 0;
    for c in unified.nfc() {
        match c {
            '\n' | '\t' => out.push(c),
            '\r' | '\u{2028}' | '\u{2029}' => out.push('\n'),
            c => {
                refuse(field, c, offset)?;
                out.push(c);
            }
        }
        offset += c.len_utf8();
    }
    let trimmed = out.trim();
    too_long(field, trimmed, max_chars)?;
    Ok(trimmed.to_string())
}

/// Cleans a prompt (a one-line text of at most [`MAX_PROMPT_CHARS`]).
pub fn sanitize_prompt(field: &str, raw: &str) -> Result<String, FieldError> {
    clean_line(field, raw, MAX_PROMPT_CHARS, "write a prompt describing the image")
}

/// Cleans an operator's name, as it is recorded on the jobs they decide.
pub fn clean_operator(field: &str, raw: &str) -> Result<String, FieldError> {
    clean_line(field, raw, MAX_OPERATOR_CHARS, "give the operator's name")
}

fn refuse(field: &str, c: char, offset: usize) -> Result<(), FieldError> {
    match refused(c) {
        Some(what) => Err(FieldError::new(
            field,
            format!("contains {what}, U+{:04X}, at byte {offset}", c as u32),
            "remove it; printable text in any script, emoji, spaces and line breaks are accepted",
        )),
        None => Ok(()),
    }
}

/// Refuses a text longer than `max` characters.
fn too_long(field: &str, s: &str, max: usize) -> Result<(), FieldError> {
    // The byte length bounds the count from above: most texts are never counted.
    if s.len() <= max || s.chars().count() <= max {
        return Ok(());
    }
    Err(FieldError::new(field, format!("is {} characters long; the limit is {max}", s.chars().count()), "shorten it"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_normalized() {
        assert_eq!(sanitize_prompt("p", "  a\tred \n\n circle  ").unwrap(), "a red circle");
        assert_eq!(sanitize_prompt("p", "a\u{3000}red\u{00A0}\u{2028}circle").unwrap(), "a red circle");
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
    fn refused_code_points_are_named_with_their_place() {
        let e = sanitize_prompt("p", "a red\u{7} circle").unwrap_err();
        assert!(e.problem.contains("a control character, U+0007, at byte 5"), "{e}");
        for (text, what) in [
            ("abc\u{202E}cba", "bidirectional"),
            ("a\u{061C}b", "bidirectional"),
            ("nul\0", "control"),
            ("zero\u{200B}width", "invisible"),
            ("bom\u{FEFF}", "invisible"),
            ("soft\u{00AD}hyphen", "invisible"),
            ("filler\u{3164}", "invisible"),
            ("non\u{FFFF}char", "noncharacter"),
            ("non\u{1FFFE}char", "noncharacter"),
            ("del\u{7F}", "control"),
            ("c1\u{9B}31m", "control"),
        ] {
            let e = sanitize_prompt("p", text).unwrap_err();
            assert!(e.problem.contains(what), "{text:?}: {e}");
        }
    }

    #[test]
    fn every_script_and_emoji_is_kept_in_nfc() {
        for text in [
            "un cercle rouge, 赤い円",
            "красный круг",
            "دائرة حمراء",
            "עיגול אדום",
            "लाल वृत्त",
            "빨간 원",
            "ένας κόκκινος κύκλος",
            "🔴 a red circle 🏳️‍🌈 👨‍👩‍👧 🏴󠁧󠁢󠁳󠁣󠁴󠁿",
            "می‌خواهم",
        ] {
            assert_eq!(sanitize_prompt("p", text).unwrap(), text, "{text}");
        }
        // A decomposed é is stored precomposed: one job id for both spellings.
        assert_eq!(sanitize_prompt("p", "caf\u{0065}\u{0301}").unwrap(), "caf\u{00E9}");
    }

    #[test]
    fn descriptions_keep_their_lines() {
        assert_eq!(clean_text("d", "  line one\r\nline\ttwo\n\n", 100).unwrap(), "line one\nline\ttwo");
        assert_eq!(clean_text("d", "", 100).unwrap(), "");
        assert!(clean_text("d", "hidden\u{202E}text", 100).is_err());
        let e = clean_text("collection.description", &"x".repeat(50 * 1024 * 1024), MAX_DESCRIPTION_CHARS).unwrap_err();
        assert!(e.problem.contains("the limit is 5000"), "{e}");
    }

    #[test]
    fn operator_names_are_one_clean_line() {
        assert_eq!(clean_operator("--operator", " Ada\tLovelace ").unwrap(), "Ada Lovelace");
        assert!(clean_operator("--operator", "\u{1b}[31mred").is_err(), "escape sequences are refused");
        assert!(clean_operator("--operator", &"x".repeat(65)).is_err());
    }

    #[test]
    fn noncharacters_are_refused_and_offsets_count_bytes() {
        for c in ['\u{FDD0}', '\u{FDEF}', '\u{FFFE}', '\u{1FFFF}'] {
            let e = sanitize_prompt("p", &format!("a{c}b")).unwrap_err();
            assert!(e.to_string().contains("a noncharacter"), "{e}");
        }
        // The offset is the byte where the character starts: 3 two-byte letters, then it.
        let e = clean_text("d", "ééé\u{0007}", 100).unwrap_err();
        assert!(e.to_string().contains("at byte 6"), "{e}");
        // Lengths count characters, not bytes: ten emoji fit a limit of ten.
        assert!(clean_text("d", &"🦀".repeat(10), 10).is_ok());
        assert!(clean_text("d", &"🦀".repeat(11), 10).is_err());
        assert!(clean_text("d", &"a".repeat(11), 10).is_err());
    }
}
