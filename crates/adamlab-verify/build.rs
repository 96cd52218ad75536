//! Embeds every reference fixture under `fixtures/torch/` into the crate, so that adding a
//! fixture (the generator writes one file per case) needs no edit here, and `adamlab verify`
//! checks a build anywhere, without the repository or PyTorch.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn files(dir: &Path, extension: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, extension, out);
        } else if path.extension().and_then(|e| e.to_str()) == Some(extension) {
            out.push(path);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let fixtures = manifest.join("../../fixtures/torch");
    println!("cargo:rerun-if-changed={}", fixtures.display());
    let mut code = String::new();
    for (name, dir, extension, macro_name, ty) in [
        ("REPLAY_FIXTURES", "replay", "safetensors", "include_bytes", "&[u8]"),
        ("MLP_FIXTURES", "mlp", "json", "include_str", "&str"),
    ] {
        let root = fixtures.join(dir);
        println!("cargo:rerun-if-changed={}", root.display());
        let mut found = Vec::new();
        files(&root, extension, &mut found);
        found.sort();
        writeln!(code, "/// Every `fixtures/torch/{dir}/**.{extension}`, by its path below `{dir}/` without the extension.").unwrap();
        writeln!(code, "pub static {name}: &[(&str, {ty})] = &[").unwrap();
        for path in found {
            let parent = path.parent().expect("a file has a parent");
            println!("cargo:rerun-if-changed={}", parent.display());
            let id = path
                .strip_prefix(&root)
                .expect("found under root")
                .with_extension("")
                .to_string_lossy()
                .replace('\\', "/");
            let absolute = path.canonicalize().expect("the file exists");
            writeln!(code, "    ({id:?}, {macro_name}!({:?})),", absolute.display().to_string()).unwrap();
        }
        writeln!(code, "];").unwrap();
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("fixtures.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}
