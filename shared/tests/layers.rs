//! The domain stays pure: no file under `shared/src/domain` reaches another layer of the crate
//! or an adapter crate (AWS, HTTP, Lambda), so its rules can be read and tested alone.

use std::fs;
use std::path::{Path, PathBuf};

/// Names a domain file may not mention, with why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("aws_", "an AWS SDK crate"),
    ("reqwest", "the HTTP client"),
    ("lambda_", "a Lambda runtime crate"),
    ("axum", "an HTTP server"),
    ("tokio", "the async runtime"),
    ("serde_json::Value", "an untyped JSON value"),
    ("crate::adapters", "the adapters layer"),
    ("crate::services", "the services layer"),
    ("crate::api", "the HTTP edge"),
    ("crate::ports", "the ports (the domain needs none)"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its `#[cfg(test)]` module (tests may use anything).
fn production_code(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

/// Each `path: line: what` where a domain file breaks the rule.
fn violations(files: &[PathBuf]) -> Vec<String> {
    violations_of(files, FORBIDDEN)
}

/// Each `path: line: what` where one of `files` mentions a `forbidden` name.
fn violations_of(files: &[PathBuf], forbidden: &[(&str, &str)]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files {
        let text = fs::read_to_string(file).unwrap();
        for (number, line) in production_code(&text).lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (name, what) in forbidden {
                if code.contains(name) {
                    found.push(format!(
                        "{}:{}: {what} ({name})",
                        file.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn the_domain_imports_no_adapter_and_no_other_layer() {
    let domain = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/domain");
    let mut files = Vec::new();
    rust_files(&domain, &mut files);
    assert!(
        files.len() >= 5,
        "the domain files were not found in {domain:?}"
    );
    let found = violations(&files);
    assert!(
        found.is_empty(),
        "the domain reaches outside itself:\n{}",
        found.join("\n")
    );
}

/// The services answer in the domain's vocabulary (`Refusal`, `Failure`, records); only the
/// HTTP edge (`api`) and the function crates turn that into problem+json.
#[test]
fn the_services_never_reach_the_http_edge() {
    let services = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/services");
    let mut files = Vec::new();
    rust_files(&services, &mut files);
    assert!(
        files.len() >= 5,
        "the services were not found in {services:?}"
    );
    let found = violations_of(
        &files,
        &[
            ("crate::api", "the HTTP edge"),
            ("Problem", "an HTTP answer"),
            ("lambda_", "a Lambda runtime crate"),
        ],
    );
    assert!(
        found.is_empty(),
        "a service speaks HTTP:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_catches_an_import_of_an_adapter() {
    let dir = std::env::temp_dir().join(format!("flexrzp-layers-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.rs");
    fs::write(
        &file,
        "use crate::adapters::aws::store::Item;\n// use reqwest; in a comment is fine\n\
         #[cfg(test)]\nmod tests { use tokio; }\n",
    )
    .unwrap();
    let found = violations(std::slice::from_ref(&file));
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("the adapters layer"), "{found:?}");
}
