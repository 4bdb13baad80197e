//! Printing command output: JSON or text, times, counts.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::CliError;

/// Prints `value` as JSON with `--json`, else as `text` writes it.
pub(super) fn show<T: serde::Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce(&T),
) -> Result<(), CliError> {
    if json {
        print_json(value)
    } else {
        text(value);
        Ok(())
    }
}

/// Prints `value` as pretty JSON.
pub(super) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Usage(format!("cannot print JSON: {e}")))?;
    outln!("{text}");
    Ok(())
}

/// A Unix time as RFC 3339; 0 is "never".
pub(super) fn time(unix: i64) -> String {
    if unix == 0 {
        return "never".to_owned();
    }
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// "1 session", "2 sessions", "0 of its sessions"...
pub(super) fn plural(n: u32, what: &str) -> String {
    if n == 1 {
        format!("1 {}", what.replace("sessions", "session"))
    } else {
        format!("{n} {what}")
    }
}
