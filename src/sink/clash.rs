//! No run writes over what it reads, or writes two things to one path. Every path
//! a run writes (output, error file, summary JSON, their locks) is compared with
//! every path it reads (inputs after listing, models, the job file) and with each
//! other before anything is opened: by canonical path, and for paths that exist
//! by device and inode (hard links, bind mounts). A directory output clashes with
//! any input inside it. `--overwrite` does not lift this: it replaces earlier
//! outputs, never inputs.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Result};

/// A path a run reads or writes, and what it is to the run ("input", "--output").
#[derive(Debug, Clone)]
pub struct Use {
    pub role: String,
    pub path: PathBuf,
    /// A directory output: everything under it is written.
    pub directory: bool,
}

/// An object URL (`s3://…`): compared with other objects by bucket and key.
fn is_object(u: &Use) -> bool {
    u.path.to_str().is_some_and(|p| {
        matches!(
            crate::storage::Location::parse(p),
            Ok(crate::storage::Location::Object(_))
        )
    })
}

/// Objects a run writes against the objects it reads and each other: the same
/// bucket and key is the same object.
fn check_objects(reads: &[&Use], writes: &[&Use]) -> Result<()> {
    let key = |u: &Use| match u.path.to_str().map(crate::storage::Location::parse) {
        Some(Ok(crate::storage::Location::Object(o))) => {
            Some((o.cloud, o.bucket, o.account, o.key))
        }
        _ => None,
    };
    for (i, w) in writes.iter().enumerate() {
        for r in reads.iter().chain(&writes[..i]) {
            let inside = match (key(w), key(r)) {
                (Some((c, b, a, prefix)), Some((c2, b2, a2, k))) => {
                    w.directory && (c, b, a) == (c2, b2, a2) && k.starts_with(&prefix)
                }
                _ => false,
            };
            if inside {
                bail!(
                    "{} is inside the directory output {}: the run would read its own output or write over its input; write elsewhere",
                    named(r),
                    w.path.display()
                );
            }
            if key(w) == key(r) {
                bail!(
                    "{} is the same object as {}: the run would overwrite what it reads or write one object twice; write elsewhere",
                    named(w),
                    named(r)
                );
            }
        }
    }
    Ok(())
}

impl Use {
    pub fn file(role: impl Into<String>, path: impl Into<PathBuf>) -> Use {
        Use {
            role: role.into(),
            path: path.into(),
            directory: false,
        }
    }

    pub fn directory(role: impl Into<String>, path: impl Into<PathBuf>) -> Use {
        Use {
            role: role.into(),
            path: path.into(),
            directory: true,
        }
    }
}

/// Where a path is, as far as can be known before it exists.
struct Place {
    /// Absolute, symbolic links resolved where the path (or its parent) exists.
    path: PathBuf,
    /// Device and inode, when the path exists.
    inode: Option<(u64, u64)>,
}

/// `..` and `.` removed without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for c in absolute.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn place(path: &Path) -> Place {
    if let Ok(real) = std::fs::canonicalize(path) {
        let inode = std::fs::metadata(&real).ok().map(|m| (m.dev(), m.ino()));
        return Place { path: real, inode };
    }
    // Not there yet: resolve the nearest ancestor that exists, keep the rest.
    let path = lexical(path);
    let mut rest = vec![];
    let mut base = path.as_path();
    while let Some(parent) = base.parent() {
        if let Some(name) = base.file_name() {
            rest.push(name.to_owned());
        }
        if let Ok(real) = std::fs::canonicalize(parent) {
            let mut resolved = real;
            for name in rest.iter().rev() {
                resolved.push(name);
            }
            return Place {
                path: resolved,
                inode: None,
            };
        }
        base = parent;
    }
    Place { path, inode: None }
}

fn same(a: &Place, b: &Place) -> bool {
    a.path == b.path || (a.inode.is_some() && a.inode == b.inode)
}

fn named(u: &Use) -> String {
    format!("{} {}", u.role, u.path.display())
}

/// Refuses a run whose writes clash with its reads or with each other.
pub fn check(reads: &[Use], writes: &[Use]) -> Result<()> {
    let (remote_reads, reads): (Vec<&Use>, Vec<&Use>) = reads.iter().partition(|u| is_object(u));
    let (remote_writes, writes): (Vec<&Use>, Vec<&Use>) = writes.iter().partition(|u| is_object(u));
    check_objects(&remote_reads, &remote_writes)?;
    let reads: Vec<(&Use, Place)> = reads
        .into_iter()
        .filter(|u| u.path.as_os_str() != "-")
        .map(|u| (u, place(&u.path)))
        .collect();
    let writes: Vec<(&Use, Place)> = writes
        .into_iter()
        .filter(|u| u.path.as_os_str() != "-")
        .map(|u| (u, place(&u.path)))
        .collect();
    for (i, (w, wp)) in writes.iter().enumerate() {
        for (r, rp) in &reads {
            if same(wp, rp) {
                bail!(
                    "{} is the same file as {}: the run would overwrite what it reads; write elsewhere",
                    named(w),
                    named(r)
                );
            }
            if w.directory && rp.path.starts_with(&wp.path) {
                bail!(
                    "{} is inside the directory output {}: the run would read its own output or write over its input; write elsewhere",
                    named(r),
                    wp.path.display()
                );
            }
        }
        for (other, op) in &writes[..i] {
            if same(wp, op) {
                bail!(
                    "{} and {} are the same path; give each its own",
                    named(other),
                    named(w)
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_file_is_found_however_it_is_spelled() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("in.parquet"), b"x").unwrap();
        std::fs::hard_link(d.join("in.parquet"), d.join("link.parquet")).unwrap();
        std::os::unix::fs::symlink(d.join("in.parquet"), d.join("sym.parquet")).unwrap();
        let input = [Use::file("input", d.join("in.parquet"))];
        for spelled in [
            "sub/../in.parquet",
            "link.parquet",
            "sym.parquet",
            "./in.parquet",
        ] {
            let e = check(&input, &[Use::file("--output", d.join(spelled))]).unwrap_err();
            assert!(
                e.to_string().contains("the same file as input"),
                "{spelled}: {e}"
            );
        }
        check(&input, &[Use::file("--output", d.join("out.parquet"))]).unwrap();
        // A new file under a directory that does not exist yet.
        check(
            &input,
            &[Use::file("--output", d.join("new/dir/out.parquet"))],
        )
        .unwrap();
    }

    #[test]
    fn writes_clash_with_each_other_and_directory_outputs_with_inputs_inside() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("out")).unwrap();
        std::fs::write(d.join("out/part-0.parquet"), b"x").unwrap();
        let e = check(
            &[Use::file("input", d.join("out/part-0.parquet"))],
            &[Use::directory("--output", d.join("out"))],
        )
        .unwrap_err();
        assert!(e.to_string().contains("inside the directory output"), "{e}");
        let e = check(
            &[],
            &[
                Use::file("--output", d.join("a.parquet")),
                Use::file("--errors", d.join("sub/../a.parquet")),
            ],
        )
        .unwrap_err();
        assert!(e.to_string().contains("are the same path"), "{e}");
        // Standard input and output are not files.
        check(&[Use::file("input", "-")], &[Use::file("--output", "-")]).unwrap();
    }
}
