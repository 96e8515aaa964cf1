//! The code's shape, held: no function outside tests is longer than 60 lines (a flow reads as
//! its named steps), counted from its `fn` line to its closing brace.

use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 60;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() && !matches!(name, "tests" | "benches" | "target") {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// Each function longer than `max` lines in `text` (before its `#[cfg(test)]` module), as
/// (first line, length, name).
fn long_functions(text: &str, max: usize) -> Vec<(usize, usize, String)> {
    let lines: Vec<&str> = text
        .split("\n#[cfg(test)]")
        .next()
        .unwrap_or(text)
        .lines()
        .collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let is_fn = [
            "fn ",
            "pub fn ",
            "async fn ",
            "pub async fn ",
            "pub(crate) fn ",
            "pub(crate) async fn ",
        ]
        .iter()
        .any(|p| trimmed.starts_with(p));
        if !is_fn {
            i += 1;
            continue;
        }
        let Some(open) = (i..lines.len()).find(|&j| {
            let l = lines[j].trim_end();
            l.ends_with('{') || l.ends_with(';')
        }) else {
            break;
        };
        if lines[open].trim_end().ends_with(';') {
            i = open + 1;
            continue;
        }
        let close = (open + 1..lines.len())
            .find(|&k| {
                let l = lines[k];
                l.len() - l.trim_start().len() == indent && l.trim_start().starts_with('}')
            })
            .unwrap_or(lines.len() - 1);
        let length = close - i + 1;
        if length > max {
            let name = trimmed.split('(').next().unwrap_or(trimmed).to_owned();
            found.push((i + 1, length, name));
        }
        i = close + 1;
    }
    found
}

#[test]
fn no_function_outside_tests_is_over_60_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["shared/src", "functions", "infra"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(
        files.len() > 40,
        "the sources were not found under {root:?}"
    );
    let mut long = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        for (line, length, name) in long_functions(&text, MAX_LINES) {
            long.push(format!(
                "{}:{line}: {name} is {length} lines",
                file.display()
            ));
        }
    }
    assert!(
        long.is_empty(),
        "split these into named steps:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_count_finds_a_long_function_and_skips_tests() {
    let body = "    let x = 1;\n".repeat(61);
    let text = format!(
        "fn short() {{\n}}\n\npub async fn long(a: u8) -> u8 {{\n{body}}}\n\n#[cfg(test)]\nmod tests {{\n    fn also_long() {{\n{body}    }}\n}}\n"
    );
    let found = long_functions(&text, MAX_LINES);
    assert_eq!(found, [(4, 63, "pub async fn long".to_owned())]);
}

/// A line naming a DynamoDB attribute in a string literal.
fn names_an_attribute(line: &str) -> bool {
    [
        "str_attr(\"",
        "u64_attr(\"",
        ".name(\"",
        "\".to_owned(), s(",
        "\".to_owned(), n(",
        "Item::from([(\"",
    ]
    .iter()
    .any(|p| line.contains(p))
}

/// A line touching raw items.
fn uses_raw_items(line: &str) -> bool {
    line.split(|c: char| !c.is_alphanumeric() && c != '_')
        .any(|word| word == "Item" || word == "ItemExt")
}

/// Each `path:line` outside the records adapter and the store where production code names a
/// DynamoDB attribute in a string literal, or a service touches raw items.
fn attribute_literals(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["shared/src", "functions", "infra"] {
        rust_files(&root.join(dir), &mut files);
    }
    let allowed = ["adapters/aws/records.rs", "adapters/aws/store.rs"];
    let mut found = Vec::new();
    for file in &files {
        let shown = file.display().to_string();
        if allowed.iter().any(|a| shown.ends_with(a)) {
            continue;
        }
        let text = fs::read_to_string(file).unwrap();
        let code = text.split("\n#[cfg(test)]").next().unwrap_or(&text);
        let service = shown.contains("shared/src/services/") || shown.contains("shared/src/api/");
        for (number, line) in code.lines().enumerate() {
            let line = line.split("//").next().unwrap_or("");
            if names_an_attribute(line) || (service && uses_raw_items(line)) {
                found.push(format!("{shown}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn attribute_names_live_only_in_the_records_adapter() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let found = attribute_literals(&root);
    assert!(
        found.is_empty(),
        "name attributes in adapters/aws/records.rs (services speak in records):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_attribute_check_sees_literals_and_raw_items() {
    assert!(names_an_attribute(r#"item.str_attr("payment_id")"#));
    assert!(names_an_attribute(r#"("status".to_owned(), s(x)),"#));
    assert!(!names_an_attribute("item.str_attr(PAYMENT_ID)"));
    assert!(uses_raw_items(
        "use crate::adapters::aws::store::{Item, ItemExt};"
    ));
    assert!(!uses_raw_items("LineItem { amount }"));
}
