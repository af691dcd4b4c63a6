//! Writing results to stdout: text for people, JSON for machines. The only place that prints.
//!
//! Tenants write some of what is printed (a tenant's name, a stack's error). Control
//! characters, C1 controls and bidirectional overrides never reach the operator's terminal as
//! such: a tenant could otherwise move the cursor, rewrite earlier lines, set the clipboard
//! (OSC 52) or reorder text. Text shows them as `\u{...}`; JSON as `\uXXXX`, the same string.

use std::io::Write;

/// Whether a terminal would act on `character` instead of showing it.
fn is_dangerous(character: char) -> bool {
    character.is_control()
        || matches!(character, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every dangerous character but line breaks and tabs shown as `\u{..}`.
pub(crate) fn neutralise(text: &str, keep_layout: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        if is_dangerous(character) && !(keep_layout && matches!(character, '\n' | '\t')) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(character)));
        } else {
            out.push(character);
        }
    }
    out
}

/// Writes `text` (a trailing newline is added when missing).
pub(crate) fn print_text(text: &str) -> anyhow::Result<()> {
    let text = neutralise(text, true);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        stdout.write_all(b"\n")?;
    }
    stdout.flush()?;
    Ok(())
}

/// Writes a value as pretty JSON (serde_json escapes C0 controls; C1 controls and bidi
/// overrides are escaped here, which leaves the same JSON value).
pub(crate) fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    print_text(&json_text(value)?)
}

fn json_text(value: &serde_json::Value) -> anyhow::Result<String> {
    let text = serde_json::to_string_pretty(value)?;
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if is_dangerous(character) && character != '\n' {
            escaped.push_str(&format!("\\u{:04x}", u32::from(character)));
        } else {
            escaped.push(character);
        }
    }
    Ok(escaped)
}

/// Lays out rows in aligned columns; the first row is the header.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> =
        rows.iter().map(|row| row.iter().map(|cell| neutralise(cell, false)).collect()).collect();
    let rows = rows.as_slice();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(column, cell)| {
                if column + 1 == row.len() {
                    cell.clone()
                } else {
                    format!("{cell:<width$}", width = widths[column])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_from_tenants_are_shown_not_obeyed() {
        let hostile = "Acme\u{1b}]52;c;ZWNobyBwd25lZA==\u{7}\u{1b}[2J\u{9b}31m\u{202e}gpj.exe\rX";
        let shown = neutralise(hostile, true);
        assert!(!shown.chars().any(is_dangerous), "{shown:?}");
        assert!(shown.starts_with("Acme\\u{1b}]52;"), "{shown}");
        assert_eq!(neutralise("a\nb\tc", true), "a\nb\tc");
        assert_eq!(neutralise("a\nb", false), "a\\u{a}b");
        let cells = table(&[vec!["NAME".into(), "X".into()], vec![hostile.into(), "y".into()]]);
        assert_eq!(cells.lines().count(), 2, "a cell cannot add lines: {cells}");
        assert!(!cells.chars().any(|c| is_dangerous(c) && c != '\n'));
    }

    #[test]
    fn json_keeps_the_same_value_without_raw_controls() {
        let value = serde_json::json!({ "name": "a\u{9b}b\u{202e}c\u{1b}" });
        let escaped = json_text(&value).unwrap();
        assert!(!escaped.chars().any(|c| is_dangerous(c) && c != '\n'), "{escaped:?}");
        let back: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back, value);
    }
}
