//! Text a caller sent, made safe to show. [`Escaped`] writes it into a
//! log field with every control, bidi and other invisible character as a
//! visible escape, so a name can neither break a log line nor reorder what
//! a reader sees. [`Echo`] repeats it in an error message: escaped, quoted,
//! and cut to [`ECHO_MAX_CHARS`] characters, so a huge invalid field gets
//! a short answer.

use std::fmt::{self, Display, Write as _};

/// Most characters of a caller's value that an error message repeats.
pub const ECHO_MAX_CHARS: usize = 48;

/// A log field carrying caller text: `\` becomes `\\`, `\n` `\r` `\t`
/// their usual escapes, and any other control, line-breaking, bidi or
/// invisible formatting character `\u{…}`.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a str);

impl Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.chars().any(needs_escape) {
            return f.write_str(self.0);
        }
        for c in self.0.chars() {
            write_char(f, c)?;
        }
        Ok(())
    }
}

/// Caller text repeated in an error message: in double quotes, escaped
/// like [`Escaped`] (and `"` as `\"`), at most [`ECHO_MAX_CHARS`]
/// characters; a longer value ends in `…` and its length in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Echo<'a>(pub &'a str);

impl Display for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(ECHO_MAX_CHARS) {
            if c == '"' {
                f.write_str("\\\"")?;
            } else {
                write_char(f, c)?;
            }
        }
        if chars.next().is_some() {
            write!(f, "…\" ({} bytes)", self.0.len())
        } else {
            f.write_char('"')
        }
    }
}

fn write_char(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    match c {
        '\\' => f.write_str("\\\\"),
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\t' => f.write_str("\\t"),
        c if needs_escape(c) => write!(f, "\\u{{{:x}}}", u32::from(c)),
        c => f.write_char(c),
    }
}

/// Whether `c` is written as an escape: `\`, controls (C0, DEL, C1),
/// whitespace other than the space (line and paragraph separators, NEL,
/// no-break spaces), and the invisible formatting characters (Unicode
/// category Cf: bidi embeddings, overrides, isolates and marks, zero-width
/// characters, the BOM, tag characters).
fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control() || (c.is_whitespace() && c != ' ') || is_format(c)
}

/// Unicode general category Cf (format characters).
fn is_format(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_written_as_is() {
        assert_eq!(Escaped("billing key 2").to_string(), "billing key 2");
        assert_eq!(
            Escaped("Überweisung – ключ").to_string(),
            "Überweisung – ключ"
        );
    }

    #[test]
    fn controls_bidi_and_invisible_characters_are_escaped() {
        assert_eq!(
            Escaped("a\u{202e}b\nc\u{2028}d\u{0}e\u{85}f\u{200b}g\u{2066}h\u{feff}").to_string(),
            r"a\u{202e}b\nc\u{2028}d\u{0}e\u{85}f\u{200b}g\u{2066}h\u{feff}"
        );
        assert_eq!(Escaped("tab\there\r").to_string(), r"tab\there\r");
        assert_eq!(Escaped("\u{1b}[31mred").to_string(), r"\u{1b}[31mred");
        // A backslash is escaped too, so an escape cannot be faked.
        assert_eq!(Escaped(r"\u{202e}").to_string(), r"\\u{202e}");
    }

    #[test]
    fn echoes_are_quoted_escaped_and_short() {
        assert_eq!(Echo("billing").to_string(), "\"billing\"");
        assert_eq!(Echo("say \"hi\"\n").to_string(), r#""say \"hi\"\n""#);
        let exact = "x".repeat(ECHO_MAX_CHARS);
        assert_eq!(Echo(&exact).to_string(), format!("\"{exact}\""));
        let huge = "é".repeat(1 << 20);
        let shown = Echo(&huge).to_string();
        assert_eq!(
            shown,
            format!("\"{}…\" (2097152 bytes)", "é".repeat(ECHO_MAX_CHARS))
        );
        assert!(shown.len() < 2 * ECHO_MAX_CHARS + 30);
    }
}
