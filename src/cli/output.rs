//! The one output layer of the client commands: text for a person, JSON
//! with `--json` (lists as a bare array), one raw field with `--field`;
//! and the formatting of times and counts.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::CliError;

/// How a command prints its result.
#[derive(Clone, Debug)]
pub(crate) struct Output {
    json: bool,
    field: Option<String>,
}

impl Output {
    /// `--json` and `--field` as given.
    pub(crate) fn new(json: bool, field: Option<String>) -> Self {
        Output { json, field }
    }

    /// Whether the result is printed as JSON (or one field of it) rather
    /// than text.
    pub(crate) fn is_machine(&self) -> bool {
        self.json || self.field.is_some()
    }

    /// Prints one result: its `--field` (several, comma-separated: one per
    /// line), or JSON with `--json`, else as `text` writes it.
    ///
    /// # Errors
    /// `--field` names no field of the result.
    pub(crate) fn print<T: Serialize>(
        &self,
        value: &T,
        text: impl FnOnce(&T),
    ) -> Result<(), CliError> {
        if !self.is_machine() {
            text(value);
            return Ok(());
        }
        let json = to_value(value)?;
        match &self.field {
            // Several fields: one per line, in the order asked, for
            // `{ read -r A; read -r B; } < <(...)`.
            Some(names) => {
                for name in names.split(',') {
                    outln!("{}", raw(field(&json, name)?));
                }
            }
            None => print_pretty(&json)?,
        }
        Ok(())
    }

    /// Prints a list: with `--field`, that field of each item, one per
    /// line; with `--json`, a JSON array; else as `text` writes it.
    ///
    /// # Errors
    /// `--field` names no field of the items.
    pub(crate) fn print_list<T: Serialize>(
        &self,
        items: &[T],
        text: impl FnOnce(&[T]),
    ) -> Result<(), CliError> {
        if !self.is_machine() {
            text(items);
            return Ok(());
        }
        let json = to_value(&items)?;
        match (&self.field, &json) {
            // Of each item, the fields asked, tab-separated.
            (Some(names), Value::Array(all)) => {
                for item in all {
                    let row = names
                        .split(',')
                        .map(|name| field(item, name).map(raw))
                        .collect::<Result<Vec<_>, _>>()?;
                    outln!("{}", row.join("\t"));
                }
            }
            _ => print_pretty(&json)?,
        }
        Ok(())
    }
}

fn to_value<T: Serialize>(value: &T) -> Result<Value, CliError> {
    serde_json::to_value(value).map_err(|e| CliError::Usage(format!("cannot print JSON: {e}")))
}

fn print_pretty(value: &Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Usage(format!("cannot print JSON: {e}")))?;
    outln!("{text}");
    Ok(())
}

/// The field at a dotted `path` (`api_key.key_id`) of `value`.
fn field<'a>(value: &'a Value, path: &str) -> Result<&'a Value, CliError> {
    let mut at = value;
    for part in path.split('.') {
        at = match at {
            Value::Object(map) => map.get(part),
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
        .ok_or_else(|| no_such_field(value, path))?;
    }
    Ok(at)
}

fn no_such_field(value: &Value, path: &str) -> CliError {
    let names = match value {
        Value::Object(map) => map
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    };
    CliError::Usage(format!(
        "--field {path}: the result has no such field (its fields: {names})"
    ))
}

/// A field as a shell wants it: strings without quotes, lists of strings
/// comma-separated, anything else as compact JSON.
fn raw(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// What `key rotate` and `client rotate-secret` say before the new secret
/// (text output only).
pub(super) fn rotated_notice(out: &Output, grace_seconds: u32) {
    if out.is_machine() {
        return;
    }
    if grace_seconds == 0 {
        outln!("rotated; the previous secret no longer works\n");
    } else {
        outln!("rotated; the previous secret works for {grace_seconds} more seconds\n");
    }
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

/// A span of seconds as a person reads it: `42s`, `5m 3s`, `3h 12m`,
/// `2d 4h`.
pub(super) fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m {}s", s / 60, s % 60),
        3_600..86_400 => format!("{}h {}m", s / 3_600, s % 3_600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// "1 session", "2 sessions", "0 of its sessions"...
pub(super) fn plural(n: u32, what: &str) -> String {
    if n == 1 {
        format!("1 {}", what.replace("sessions", "session"))
    } else {
        format!("{n} {what}")
    }
}

/// `--since`: Unix seconds, an RFC 3339 time, or an age before now such
/// as `90s`, `15m`, `2h`, `7d`.
pub(super) fn parse_since(s: &str) -> Result<i64, String> {
    since_at(s, OffsetDateTime::now_utc().unix_timestamp())
}

fn since_at(s: &str, now: i64) -> Result<i64, String> {
    if let Ok(unix) = s.parse::<i64>() {
        return Ok(unix);
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    let unit = match s.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3_600,
        Some('d') => 86_400,
        _ => 0,
    };
    let amount = s
        .get(..s.len().saturating_sub(1))
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0 && unit > 0);
    match amount {
        Some(n) => Ok(now.saturating_sub(n.saturating_mul(unit))),
        None => Err(
            "expected Unix seconds, an RFC 3339 time (2026-12-01T10:00:00Z) or an age (90s, 15m, 2h, 7d)"
                .to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ages_read_as_a_person_says_them() {
        assert_eq!(age(-5), "0s");
        assert_eq!(age(42), "42s");
        assert_eq!(age(303), "5m 3s");
        assert_eq!(age(3 * 3_600 + 12 * 60 + 9), "3h 12m");
        assert_eq!(age(2 * 86_400 + 4 * 3_600), "2d 4h");
    }

    #[test]
    fn since_takes_unix_rfc3339_and_ages() {
        assert_eq!(since_at("1700000000", 0), Ok(1_700_000_000));
        assert_eq!(since_at("2026-12-01T00:00:00Z", 0), Ok(1_796_083_200));
        assert_eq!(since_at("90s", 1_000), Ok(910));
        assert_eq!(since_at("2h", 10_000), Ok(2_800));
        assert_eq!(since_at("1d", 100_000), Ok(13_600));
        for bad in ["", "h", "-1h", "1w", "yesterday"] {
            assert!(since_at(bad, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn fields_are_found_by_dotted_path_and_printed_raw() {
        let v =
            json!({"secret": "s", "api_key": {"key_id": "key_1", "scopes": ["a", "b"]}, "n": 3});
        assert_eq!(raw(field(&v, "secret").unwrap()), "s");
        assert_eq!(raw(field(&v, "api_key.key_id").unwrap()), "key_1");
        assert_eq!(raw(field(&v, "api_key.scopes").unwrap()), "a,b");
        assert_eq!(raw(field(&v, "n").unwrap()), "3");
        let err = field(&v, "nope").unwrap_err().to_string();
        assert!(err.contains("its fields: secret, api_key, n"), "{err}");
    }
}
