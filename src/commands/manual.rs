//! What is generated from the command-line definition itself, so that it cannot
//! drift from it: the manual pages (clap_mangen), the shell completion scripts
//! (clap_complete) and the help text that docs/reference.md embeds. The committed
//! copies (docs/man/, the marked blocks of docs/reference.md) are checked against
//! these by a test; `BATCHINFER_UPDATE_DOCS=1 cargo test --lib manual` rewrites
//! them.

use std::io::Write;

use anyhow::{anyhow, Context};
use clap::CommandFactory;

use crate::cli::Cli;

/// Generated text is wrapped at this width, whatever the terminal it is made on.
const WIDTH: usize = 100;

/// The command tree as the documents show it: no `help` subcommand (every command
/// has `--help`), wrapped at `WIDTH`, names and usage lines resolved.
fn command_tree() -> clap::Command {
    let mut cmd = Cli::command()
        .term_width(WIDTH)
        .disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Every manual page: (file name, roff), batchinfer.1 first, then one page per
/// command (`batchinfer-score.1`, …) in the order `--help` lists them.
pub fn pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let cmd = command_tree();
    let mut pages = vec![render(&cmd)?];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(render(sub)?);
    }
    Ok(pages)
}

fn render(cmd: &clap::Command) -> anyhow::Result<(String, Vec<u8>)> {
    let man = clap_mangen::Man::new(cmd.clone()).manual("batchinfer manual");
    let mut roff = vec![];
    man.render(&mut roff)
        .with_context(|| format!("rendering the manual page of {}", cmd.get_name()))?;
    Ok((man.get_filename(), roff))
}

/// The page of one command (`None`: batchinfer's own page).
pub fn page(command: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let cmd = command_tree();
    let Some(name) = command else {
        return Ok(render(&cmd)?.1);
    };
    match cmd.find_subcommand(name) {
        Some(sub) => Ok(render(sub)?.1),
        None => {
            let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
            Err(anyhow!(
                "no command {name:?}; the commands are {}",
                names.join(", ")
            ))
        }
    }
}

/// Writes every page into `dir` (created if missing); returns the paths written.
pub fn write_pages(dir: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = vec![];
    for (name, roff) in pages()? {
        let path = dir.join(name);
        std::fs::write(&path, roff).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "batchinfer", out);
}

/// The help blocks docs/reference.md embeds: made and compared by the tests below,
/// rewritten with `BATCHINFER_UPDATE_DOCS=1`.
#[cfg(test)]
mod reference {
    use super::*;

    /// The help text of `batchinfer` (empty path) or one of its commands, as
    /// `batchinfer [COMMAND] --help` prints it on a 100-column terminal.
    pub fn help(path: &[String]) -> Option<String> {
        let mut cmd = command_tree();
        let mut at = &mut cmd;
        for name in path {
            at = at.find_subcommand_mut(name)?;
        }
        Some(at.render_long_help().to_string())
    }

    /// The commands whose help docs/reference.md embeds: batchinfer itself, then
    /// every command (so a new command needs its block).
    pub fn reference_commands() -> Vec<Vec<String>> {
        let cmd = command_tree();
        std::iter::once(vec![])
            .chain(
                cmd.get_subcommands()
                    .map(|c| vec![c.get_name().to_string()]),
            )
            .collect()
    }

    /// The marker line that opens the generated help block of `path` in a document.
    pub fn block_start(path: &[String]) -> String {
        let command = std::iter::once("batchinfer")
            .chain(path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        format!("<!-- generated from the CLI: {command} --help -->")
    }

    /// The marker line that closes a generated block.
    pub const BLOCK_END: &str = "<!-- end of generated text -->";

    /// `doc` with every generated block replaced by the current help text. An error
    /// names a block that is missing or not closed.
    pub fn refresh_reference(doc: &str) -> anyhow::Result<String> {
        let mut out = doc.to_string();
        for path in reference_commands() {
            let start = block_start(&path);
            let begin = out
                .find(&start)
                .ok_or_else(|| anyhow!("docs/reference.md has no line {start:?}"))?;
            let body = begin + start.len();
            let end = out[body..]
                .find(BLOCK_END)
                .map(|e| body + e)
                .ok_or_else(|| anyhow!("the block {start:?} is not closed by {BLOCK_END:?}"))?;
            let text = help(&path).ok_or_else(|| anyhow!("no command {path:?}"))?;
            let text: String = text
                .lines()
                .map(|l| l.trim_end().to_string() + "\n")
                .collect();
            out.replace_range(body..end, &format!("\n\n```text\n{text}```\n\n"));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::reference::*;
    use super::*;
    use std::path::Path;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    fn update() -> bool {
        std::env::var_os("BATCHINFER_UPDATE_DOCS").is_some_and(|v| v == "1")
    }

    const STALE: &str = "is out of date with the CLI: run `BATCHINFER_UPDATE_DOCS=1 cargo test --lib manual` and commit the result";

    #[test]
    fn the_committed_manual_pages_are_the_generated_ones() {
        let dir = root().join("docs/man");
        if update() {
            write_pages(&dir).unwrap();
        }
        let pages = pages().unwrap();
        assert!(
            pages.len() >= 6,
            "{:?}",
            pages.iter().map(|p| &p.0).collect::<Vec<_>>()
        );
        for (name, roff) in &pages {
            let committed = std::fs::read(dir.join(name)).unwrap_or_default();
            assert!(committed == *roff, "docs/man/{name} {STALE}");
        }
        let mut committed: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        committed.sort();
        let mut generated: Vec<String> = pages.into_iter().map(|p| p.0).collect();
        generated.sort();
        assert_eq!(committed, generated, "docs/man holds pages of no command");
    }

    #[test]
    fn the_flag_reference_is_the_generated_one() {
        let path = root().join("docs/reference.md");
        let doc = std::fs::read_to_string(&path).unwrap();
        let fresh = refresh_reference(&doc).unwrap();
        if update() {
            std::fs::write(&path, &fresh).unwrap();
            return;
        }
        assert!(fresh == doc, "docs/reference.md {STALE}");
    }

    #[test]
    fn a_page_names_every_option_of_its_command() {
        let cmd = command_tree();
        for sub in cmd.get_subcommands() {
            let name = sub.get_name();
            let roff = String::from_utf8(page(Some(name)).unwrap()).unwrap();
            for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    let flag = format!("\\-\\-{}", long.replace('-', "\\-"));
                    assert!(roff.contains(&flag), "batchinfer-{name}.1 lacks --{long}");
                }
            }
        }
        let score = String::from_utf8(page(Some("score")).unwrap()).unwrap();
        assert!(
            score.contains(".SH \"BAD ROWS\""),
            "help headings are sections"
        );
        assert!(String::from_utf8(page(None).unwrap())
            .unwrap()
            .contains(".TH batchinfer 1"));
        let err = page(Some("nosuch")).unwrap_err().to_string();
        assert!(
            err.contains("score, run, profile, inspect, status, bench"),
            "{err}"
        );
    }

    #[test]
    fn a_stale_block_is_replaced_and_a_missing_one_named() {
        let mut doc = String::new();
        for path in reference_commands() {
            doc += &format!("{}\nold text\n{BLOCK_END}\n", block_start(&path));
        }
        let fresh = refresh_reference(&doc).unwrap();
        assert!(!fresh.contains("old text"));
        assert!(fresh.contains("--on-error"), "score's help is in it");
        assert_eq!(refresh_reference(&fresh).unwrap(), fresh, "idempotent");
        let err = refresh_reference("nothing").unwrap_err().to_string();
        assert!(err.contains("batchinfer --help"), "{err}");
    }
}
