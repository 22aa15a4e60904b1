//! The command lines the documentation shows: every `batchinfer …` (or
//! `cargo run -- …`) line in a fenced block of README.md, CONTRIBUTING.md and
//! docs/*.md, with `$ ` prompts and `\` continuations, as `batchinfer …`. Shared by
//! the parse test in `cli` and the `--check` test in tests/cli/docs.rs (which
//! includes this file by path), so both see the same lines.

use std::path::Path;

/// A documented command line and the file it is in.
pub struct DocLine {
    pub file: String,
    pub line: String,
}

/// The command lines of `root`'s documents whose first word after `batchinfer`
/// is one of `commands` (so output such as `batchinfer 0.1.0 summary` is left out).
pub fn documented(root: &Path, commands: &[&str]) -> Vec<DocLine> {
    let mut files = vec![root.join("README.md"), root.join("CONTRIBUTING.md")];
    if let Ok(docs) = std::fs::read_dir(root.join("docs")) {
        let mut md: Vec<_> = docs
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        md.sort();
        files.extend(md);
    }
    let mut found = vec![];
    for file in files {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let mut fenced = false;
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                continue;
            }
            let line = line.trim().trim_start_matches("$ ");
            let Some(rest) = line
                .strip_prefix("batchinfer ")
                .or_else(|| line.strip_prefix("cargo run -- "))
            else {
                continue;
            };
            let sub = rest.split_whitespace().next().unwrap_or_default();
            if !fenced || !commands.contains(&sub) {
                continue;
            }
            let mut command = format!("batchinfer {rest}");
            while command.ends_with('\\') {
                command.pop();
                command.push(' ');
                command.push_str(lines.next().unwrap_or_default().trim());
            }
            found.push(DocLine {
                file: file
                    .strip_prefix(root)
                    .unwrap_or(&file)
                    .display()
                    .to_string(),
                line: command,
            });
        }
    }
    found
}
