//! Reading the text of a JSON file that an operator wrote
//! (`forwarding_table.json`, `director.conf`, `healthcheck.conf`): one
//! front end, so every tool gives the same message for the same mistake.
//!
//! Syntax is checked first and on its own, so a message says "not valid
//! JSON" only when the text is not JSON; everything after that is about
//! the document's shape and names the key at fault (the caller's job).
//! A UTF-8 byte order mark is skipped (RFC 8259 allows a parser to), and
//! comments, which JSON does not have, are named as such.

use serde_json::Value;

/// The UTF-8 byte order mark some editors put in front of a file.
const BOM: char = '\u{feff}';

/// Parses `text` into a JSON value, with a message (no file name) saying
/// what is wrong when it cannot.
pub fn document(text: &str) -> Result<Value, String> {
    let text = text.strip_prefix(BOM).unwrap_or(text);
    if text.trim().is_empty() {
        return Err("file is empty".into());
    }
    serde_json::from_str(text).map_err(|e| {
        if let Some(line) = comment_line(text, e.line(), e.column()) {
            format!("line {line}: a comment; JSON has no comments (remove it)")
        } else {
            format!("not valid JSON: {e}")
        }
    })
}

/// The object at the top of a document, or the message to give when
/// the top is something else.
pub fn top_object<'a>(
    doc: &'a Value,
    expected: &str,
) -> Result<&'a serde_json::Map<String, Value>, String> {
    doc.as_object().ok_or_else(|| {
        format!(
            "the top level must be a JSON object ({expected}), not {}",
            kind(doc)
        )
    })
}

/// "a string", "an array", ... for messages about a value of the wrong type.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The line of a `//` or `/*` comment where the parser stopped, if that
/// is what it stopped at (serde_json counts lines and columns from 1).
fn comment_line(text: &str, line: usize, column: usize) -> Option<usize> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let at = l.get(column.saturating_sub(1)..)?;
    let before = l.get(..column.saturating_sub(1)).unwrap_or("");
    let starts = |s: &str| s.starts_with("//") || s.starts_with("/*");
    // serde_json reports the column of the offending character, or the
    // one after it, depending on the error.
    (starts(at) || (before.ends_with('/') && (at.starts_with('/') || at.starts_with('*'))))
        .then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_bom_comments_and_shape() {
        assert_eq!(document(" \n").unwrap_err(), "file is empty");
        let v = document("\u{feff}{\"a\": 1}").unwrap();
        assert_eq!(v["a"], 1);
        let e = document("{\n  // the VIP\n  \"a\": 1\n}").unwrap_err();
        assert_eq!(e, "line 2: a comment; JSON has no comments (remove it)");
        let e = document("/* x */ {}").unwrap_err();
        assert!(e.starts_with("line 1: a comment"), "{e}");
        let e = document("{\"a\": 1,}").unwrap_err();
        assert!(e.starts_with("not valid JSON: "), "{e}");
        assert!(e.contains("line 1"), "{e}");
        // A URL in a string is not a comment.
        assert!(document("{\"u\": \"http://x/\"}").is_ok());
        let e = top_object(&document("[]").unwrap(), "with a \"tables\" array").unwrap_err();
        assert_eq!(
            e,
            "the top level must be a JSON object (with a \"tables\" array), not an array"
        );
    }
}
