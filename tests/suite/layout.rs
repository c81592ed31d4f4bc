//! The code's layout, checked: what ARCHITECTURE.md promises about rooms and
//! sizes holds, or this fails naming the file, the function or the import.
//!
//! - The command line is a room of its own: nothing outside `src/cli/`
//!   imports it (the domain is usable and testable without it).
//! - No two rooms (top-level modules of `src/`) import each other.
//! - No source file over `MAX_FILE_LINES`, no function over `MAX_FN_LINES`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 120;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, relative to it, with its text.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = vec![];
    walk(&src(), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(src()).unwrap().display().to_string();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// The room a file belongs to: `cli` for `cli/keys.rs`, `lnd` for `lnd.rs`.
fn room(rel: &str) -> String {
    let first = rel.split('/').next().unwrap();
    first.trim_end_matches(".rs").to_string()
}

/// Code lines only: comments and string contents blanked, so that a brace or
/// a path in a doc comment or a message does not count.
fn code_only(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut in_block = 0usize;
    // Inside a string literal (they may span lines); raw strings end at `"#`.
    let mut in_str = false;
    let mut in_raw = false;
    for line in text.lines() {
        let mut s = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if in_raw {
                if c == '"' && chars.peek() == Some(&'#') {
                    chars.next();
                    in_raw = false;
                    s.push('"');
                }
                continue;
            }
            if in_block > 0 {
                if c == '*' && chars.peek() == Some(&'/') {
                    chars.next();
                    in_block -= 1;
                }
                continue;
            }
            if in_str {
                if c == '\\' {
                    chars.next();
                } else if c == '"' {
                    in_str = false;
                    s.push('"');
                }
                continue;
            }
            match c {
                '/' if chars.peek() == Some(&'/') => break,
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    in_block += 1;
                }
                'r' if chars.peek() == Some(&'#') && chars.clone().nth(1) == Some('"') => {
                    chars.next();
                    chars.next();
                    in_raw = true;
                    s.push('"');
                }
                '"' => {
                    in_str = true;
                    s.push('"');
                }
                // A char literal holding a brace or a quote: '{' '"'.
                '\'' if matches!(chars.clone().nth(1), Some('\'')) => {
                    chars.next();
                    chars.next();
                    s.push_str("' '");
                }
                _ => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

/// `(name, first line, length)` of every `fn` with a body.
fn functions(code: &[String]) -> Vec<(String, usize, usize)> {
    let mut out = vec![];
    for (i, line) in code.iter().enumerate() {
        let Some(at) = line.find("fn ").filter(|&at| {
            at == 0
                || !line.as_bytes()[at - 1].is_ascii_alphanumeric()
                    && line.as_bytes()[at - 1] != b'_'
        }) else {
            continue;
        };
        let name: String = line[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        let mut depth = 0i64;
        let mut opened = false;
        for (j, l) in code.iter().enumerate().skip(i) {
            for c in l.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    ';' if !opened && depth == 0 => break,
                    _ => {}
                }
            }
            if !opened && l.trim_end().ends_with(';') {
                break;
            }
            if opened && depth <= 0 {
                out.push((name.clone(), i + 1, j - i + 1));
                break;
            }
        }
    }
    out
}

/// The rooms a file imports: every `crate::ROOM` it names in code.
fn imports(code: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in code {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("crate::") {
            let name: String = rest[at + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
            rest = &rest[at + 7..];
        }
    }
    out
}

/// Unit tests inside a file (`#[cfg(test)] mod tests { … }` at the end) are
/// part of its size but not of the room's imports.
fn without_tests(code: &[String]) -> &[String] {
    let end = code
        .iter()
        .position(|l| l.trim() == "#[cfg(test)]")
        .filter(|&i| {
            code.get(i + 1)
                .is_some_and(|l| l.trim_start().starts_with("mod tests"))
        })
        .unwrap_or(code.len());
    &code[..end]
}

#[test]
fn nothing_outside_the_command_line_imports_it() {
    let mut bad = vec![];
    for (rel, text) in sources() {
        if room(&rel) == "cli" || rel == "main.rs" || rel == "lib.rs" {
            continue;
        }
        let code = code_only(&text);
        if imports(without_tests(&code)).contains("cli") {
            bad.push(rel);
        }
    }
    assert!(bad.is_empty(), "these import crate::cli: {bad:?}");
}

#[test]
fn no_two_rooms_import_each_other() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let rooms: BTreeSet<String> = sources().iter().map(|(r, _)| room(r)).collect();
    for (rel, text) in sources() {
        let from = room(&rel);
        let code = code_only(&text);
        for to in imports(without_tests(&code)) {
            if to != from && rooms.contains(&to) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    let mut cycles = vec![];
    for (a, tos) in &edges {
        for b in tos {
            if a < b && edges.get(b).is_some_and(|t| t.contains(a)) {
                cycles.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "rooms that import each other: {cycles:?}"
    );
}

#[test]
fn no_file_or_function_is_too_long() {
    let mut problems = vec![];
    for (rel, text) in sources() {
        let lines = text.lines().count();
        if lines > MAX_FILE_LINES {
            problems.push(format!("{rel}: {lines} lines (at most {MAX_FILE_LINES})"));
        }
        for (name, line, len) in functions(&code_only(&text)) {
            if len > MAX_FN_LINES {
                problems.push(format!(
                    "{rel}::{name} (line {line}): {len} lines (at most {MAX_FN_LINES})"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "split these:\n{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_what_it_must() {
    let code = code_only(
        "use crate::cli::exit; // crate::lnd in a comment\n\
         fn short() { let s = \"crate::spool {\"; let r = r#\"{\"}\"#; }\n\
         pub async fn long(a: u8) -> u8 {\n    if a == b'{' as u8 { 1 } else {\n 2 }\n}\n",
    );
    assert_eq!(
        imports(&code),
        BTreeSet::from(["cli".to_string()]),
        "{code:?}"
    );
    assert_eq!(
        functions(&code),
        vec![("short".to_string(), 2, 1), ("long".to_string(), 3, 4)]
    );
}
