//! The documentation against the real binary: the command lines of README.md,
//! CONTRIBUTING.md and docs/ that name only bundled files run with `--check`
//! (inspect as it is), the generated manual pages and completion scripts come out
//! of the binary as committed, and no document links outside the repository or
//! tells the story of its development.

use std::path::{Path, PathBuf};

use crate::harness::Env;

#[path = "../../src/cli/doc_lines.rs"]
mod doc_lines;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Options whose values are paths the run reads.
const READS: &[&str] = &["-m", "--model", "-i", "--input", "--baseline"];

/// `args` with every path the run reads made absolute, or None when one of them is
/// not a file of the repository (a URL, a file the reader would have).
fn bundled(args: &[String], root: &Path) -> Option<Vec<String>> {
    let resolve = |value: &str| -> Option<String> {
        // NAME=PATH models keep their name.
        let (name, path) = match value.split_once('=') {
            Some((n, p)) if !n.contains('/') => (format!("{n}="), p),
            _ => (String::new(), value),
        };
        let full = root.join(path);
        full.exists().then(|| format!("{name}{}", full.display()))
    };
    let mut out = args[..2].to_vec();
    let mut reading = false;
    let mut flags = false;
    for (i, a) in args.iter().enumerate().skip(2) {
        if let Some((flag, value)) = a.split_once('=').filter(|_| a.starts_with("--")) {
            flags = true;
            reading = false;
            match READS.contains(&flag) {
                true => out.push(format!("{flag}={}", resolve(value)?)),
                false => out.push(a.clone()),
            }
        } else if a.starts_with('-') {
            flags = true;
            reading = READS.contains(&a.as_str());
            out.push(a.clone());
        } else if reading || (!flags && (args[1] == "inspect" || (args[1] == "run" && i == 2))) {
            // A read option's values, inspect's models, run's job file.
            out.push(resolve(a)?);
        } else {
            out.push(a.clone());
        }
    }
    Some(out)
}

/// The flags that send a job file's outputs into the test directory.
fn job_outputs(job: &Path, dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(job).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    // Keys are long options, with `-` or `_`.
    let key = |k: &str| table.iter().find(|(name, _)| name.replace('_', "-") == k);
    let mut flags = vec![];
    if let Some(out) = key("output").and_then(|(_, v)| v.as_str()) {
        let slash = if out.ends_with('/') { "/" } else { "" };
        flags.push("--output".into());
        flags.push(format!("{}/out{slash}", dir.display()));
    }
    if key("summary-json").is_some() {
        flags.push("--summary-json".into());
        flags.push(dir.join("summary.json").display().to_string());
    }
    flags
}

#[test]
fn documented_commands_on_bundled_files_pass_their_check() {
    let commands = ["score", "run", "inspect"];
    let root = root();
    let mut checked = vec![];
    for doc in doc_lines::documented(&root, &commands) {
        let args = shlex::split(&doc.line).expect("splits");
        let Some(mut args) = bundled(&args, &root) else {
            continue;
        };
        let env = Env::new();
        match args[1].as_str() {
            "inspect" => {}
            "run" => {
                args.extend(job_outputs(Path::new(&args[2]), env.dir.path()));
                args.push("--check".into());
            }
            _ => args.push("--check".into()),
        }
        let args: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
        let run = env.run(&args);
        assert_eq!(
            run.code(),
            0,
            "{}: `{}` failed its check:\n{}",
            doc.file,
            doc.line,
            run.context()
        );
        assert!(
            env.files().iter().all(|f| !f.ends_with(".parquet")),
            "{}: --check wrote {:?}",
            doc.file,
            env.files()
        );
        checked.push(doc.line);
    }
    // The README's first command, the guide's examples, the models page's inspects:
    // 9 today, so a parser that stops finding them fails here.
    assert!(
        checked.len() >= 9,
        "only {} lines checked: {checked:#?}",
        checked.len()
    );
}

#[test]
fn the_manual_pages_the_binary_writes_are_the_committed_ones() {
    let env = Env::new();
    env.run(&["man", "--dir", "pages"]).expect_code(0);
    let committed = root().join("docs/man");
    let mut names = env.files_in("pages");
    names.sort();
    assert!(names.len() >= 6, "{names:?}");
    for name in &names {
        let written = std::fs::read(env.path("pages").join(name)).unwrap();
        let kept = std::fs::read(committed.join(name)).unwrap_or_default();
        assert!(
            written == kept,
            "docs/man/{name} differs from `batchinfer man`"
        );
    }
    let page = env.run(&["man", "score"]);
    page.expect_code(0).expect_stdout(".TH batchinfer-score 1");
    env.run(&["man", "nosuch"])
        .expect_code(2)
        .expect_stderr("the commands are score, run, profile, inspect");
}

#[test]
fn the_bash_completion_script_is_valid_bash_and_completes_score_flags() {
    let env = Env::new();
    let run = env.run(&["completions", "bash"]);
    run.expect_code(0).expect_stdout("--on-error");
    std::fs::write(env.path("batchinfer.bash"), run.stdout()).unwrap();
    // Load it into bash and complete `batchinfer score --on-e` as bash would
    // (the function takes the command, the word and the word before it).
    let script = format!(
        "source {} && COMP_WORDS=(batchinfer score --on-e) && COMP_CWORD=2 && _batchinfer batchinfer --on-e score && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        env.path("batchinfer.bash").display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "--on-error", "completions: {stdout}");
    for shell in ["zsh", "fish"] {
        env.run(&["completions", shell])
            .expect_code(0)
            .expect_stdout("batchinfer");
    }
    env.run(&["completions", "tcsh"]).expect_code(2);
}

/// Links in Markdown (`[text](target)`) of the user-facing documents.
fn links(text: &str) -> Vec<String> {
    let mut found = vec![];
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            found.push(rest[..end].to_string());
        }
    }
    found
}

fn documents() -> Vec<PathBuf> {
    let root = root();
    let mut docs = vec![
        root.join("README.md"),
        root.join("CONTRIBUTING.md"),
        root.join("CHANGELOG.md"),
        root.join("testdata/README.md"),
    ];
    for e in std::fs::read_dir(root.join("docs")).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "md") {
            docs.push(e.path());
        }
    }
    docs
}

#[test]
fn documents_link_only_inside_the_repository_and_every_link_resolves() {
    let mut seen = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for link in links(&text) {
            seen += 1;
            let name = doc.display();
            assert!(
                !link.contains("://"),
                "{name} links outside the repository: {link}"
            );
            let (path, _anchor) = link.split_once('#').unwrap_or((&link, ""));
            if path.is_empty() {
                continue;
            }
            let target = doc.parent().unwrap().join(path);
            assert!(
                target.exists(),
                "{name} links to {link}, which does not exist"
            );
            assert!(
                target
                    .canonicalize()
                    .unwrap()
                    .starts_with(root().canonicalize().unwrap()),
                "{name} links outside the repository: {link}"
            );
        }
    }
    assert!(seen >= 15, "only {seen} links found");
}

#[test]
fn documents_hold_no_development_history() {
    let phrases = [
        "measured and not kept",
        "../shared",
        "MEASURED.md",
        "this session",
        "sessions",
        "this round",
        "last round",
        "earlier round",
        "previous round",
        "rounds of",
        "the issue",
    ];
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap().to_lowercase();
        for p in phrases {
            assert!(
                !text.contains(&p.to_lowercase()),
                "{} holds {p:?}, which is development history",
                doc.display()
            );
        }
    }
}

#[test]
fn the_readme_stays_short() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 150,
        "README.md has {lines} lines; move detail into docs/"
    );
}
