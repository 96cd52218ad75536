//! Which paths name the same file, so that a command never writes over one of its own inputs or
//! writes two outputs to one file.
//!
//! A path is compared by where it leads: its longest existing ancestor with every link resolved,
//! then the rest of it as written (`.` dropped, `..` applied). Two existing files are also the
//! same when they are one inode (hard links).

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Where `path` leads: absolute, links resolved as far as the path exists.
pub fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |mut out: PathBuf, part: &Component| {
                match part {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::CurDir => {}
                    other => out.push(other),
                }
                out
            });
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// Whether `a` and `b` lead to the same file (or would, once created).
pub fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b))
        && ma.dev() == mb.dev()
        && ma.ino() == mb.ino()
    {
        return true;
    }
    resolve(a) == resolve(b)
}

/// Whether `path` leads to a place inside the folder `dir` (or to `dir` itself).
pub fn is_within(path: &Path, dir: &Path) -> bool {
    resolve(path).starts_with(resolve(dir))
}

/// One file a command reads or writes, named by the flag that gave it.
#[derive(Debug, Clone)]
pub struct Named<'a> {
    /// `--save`, `--init`, …
    pub flag: &'a str,
    /// The path as given.
    pub path: &'a Path,
}

/// The first pair of files that would clash: an output that is an input, or two outputs that are
/// one file. `folders` are outputs that are directories (`--checkpoint-dir`): no other file may
/// lie inside them. Returns a one-line description of the clash.
pub fn clash(inputs: &[Named], outputs: &[Named], folders: &[Named]) -> Option<String> {
    for (i, out) in outputs.iter().enumerate() {
        for input in inputs {
            if same_file(out.path, input.path) {
                return Some(format!(
                    "{} {} is also {} {}: the run would overwrite its own input; write elsewhere",
                    out.flag,
                    out.path.display(),
                    input.flag,
                    input.path.display()
                ));
            }
        }
        for other in &outputs[i + 1..] {
            if same_file(out.path, other.path) {
                return Some(format!(
                    "{} {} and {} {} are one file: give each output its own path",
                    out.flag,
                    out.path.display(),
                    other.flag,
                    other.path.display()
                ));
            }
        }
    }
    for folder in folders {
        for file in inputs.iter().chain(outputs) {
            if is_within(file.path, folder.path) {
                return Some(format!(
                    "{} {} lies inside {} {}, which the run manages: put it elsewhere",
                    file.flag,
                    file.path.display(),
                    folder.flag,
                    folder.path.display()
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("adamlab-paths-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn spellings_of_one_file_are_the_same_file() {
        let dir = scratch("spellings");
        let file = dir.join("w.st");
        assert!(same_file(&file, &dir.join(".").join("w.st")));
        assert!(same_file(&file, &dir.join("sub/../w.st")));
        assert!(!same_file(&file, &dir.join("v.st")));
        std::fs::write(&file, b"x").unwrap();
        std::os::unix::fs::symlink(&file, dir.join("link")).unwrap();
        std::fs::hard_link(&file, dir.join("hard")).unwrap();
        assert!(same_file(&file, &dir.join("link")));
        assert!(same_file(&dir.join("hard"), &file));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_clash_names_both_flags() {
        let dir = scratch("clash");
        let (w, m) = (dir.join("w.st"), dir.join("m.jsonl"));
        let init = Named { flag: "--init", path: &w };
        let save = Named { flag: "--save", path: &m };
        let metrics = Named { flag: "--metrics-out", path: &w };
        let message = clash(&[init.clone()], &[save.clone(), metrics], &[]).unwrap();
        assert!(message.contains("--metrics-out") && message.contains("--init"), "{message}");
        let twice = Named { flag: "--metrics-out", path: &m };
        let message = clash(&[], &[save.clone(), twice], &[]).unwrap();
        assert!(message.contains("--save") && message.contains("one file"), "{message}");
        let ck = dir.join("ck");
        let inside = Named { flag: "--save", path: &ck.join("w.st") };
        let folder = Named { flag: "--checkpoint-dir", path: &ck };
        assert!(clash(&[], &[inside], &[folder]).unwrap().contains("inside"));
        assert!(clash(&[init], &[save], &[]).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
