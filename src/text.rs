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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(one_line("plain: ünïcode ok"), "plain: ünïcode ok");
        assert_eq!(one_line("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(one_line("x\u{1b}[31my\u{2028}z"), "x\\u{1b}[31my\\u{2028}z");
        assert!(!one_line("\u{0}\u{7f}\u{85}").chars().any(char::is_control));
    }
}
