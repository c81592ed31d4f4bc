//! Text from outside (a peer's error message, a key in a corrupt file) made
//! safe to print on one line: a newline in it would split one error into two
//! lines of output or forge a log line.

/// `s` with every control character (and U+2028/U+2029) escaped, so it
/// prints as exactly one line. Ordinary text is returned unchanged.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.extend(c.escape_default())
            }
            c => out.push(c),
        }
    }
    out
}

/// The whole source chain of an error on one line: each cause once (a
/// cause whose text an earlier one already holds is left out), joined by
/// ": ", with [`one_line`] applied.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![];
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !s.is_empty() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    one_line(&parts.join(": "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Layer(&'static str, #[source] Option<Box<Layer>>);

    #[test]
    fn error_chain_names_each_cause_once_on_one_line() {
        let inner = Layer("connection refused\n(os error 111)", None);
        let mid = Layer("connection refused\n(os error 111)", Some(Box::new(inner)));
        let top = Layer("cannot reach it", Some(Box::new(mid)));
        assert_eq!(
            error_chain(&top),
            "cannot reach it: connection refused\\n(os error 111)"
        );
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(one_line("plain: ünïcode ok"), "plain: ünïcode ok");
        assert_eq!(one_line("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(one_line("x\u{1b}[31my\u{2028}z"), "x\\u{1b}[31my\\u{2028}z");
        assert!(!one_line("\u{0}\u{7f}\u{85}").chars().any(char::is_control));
    }
}
