//! The crate's layers point one way (ARCHITECTURE.md): a module may use the layers below it,
//! never one above. This test reads every file under `src/`, finds the crate paths it names
//! (`crate::x`, `use crate::{x, y::z}` groups, `super::` chains that leave the file's own
//! module) outside comments and string literals, and fails on any path into a higher layer.
//! The `checker_*` tests show that it catches an upward import.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first. A module may use its own layer and those before
/// it. `main.rs` and `lib.rs` sit above everything.
const LAYERS: &[&[&str]] = &[
    // Small things every layer shares: exit codes, time formatting, safe file creation,
    // state directories.
    &["exit", "time", "create", "paths", "signals"],
    &["decode"],
    &["encode"],
    &["source"],
    &["pipeline"],
    &["broker"],
    &["sink"],
    // `test_util` (feature `test-util`): the -w pcap writer for the tests, above pipeline.
    &["record", "dataset", "tools", "test_util"],
    &["cli", "config"],
];

/// Upward imports still known and accepted, each as (from module, to module). Every entry is
/// a debt with its owner; the test also fails when an entry is no longer needed.
const KNOWN_EXCEPTIONS: &[(&str, &str)] = &[];

/// The layer of a top-level module; `None` for the crate roots (`main`, `lib`) and names that
/// are not modules of the crate.
fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The module path of a source file: `src/a/b.rs` and `src/a/b/mod.rs` are `["a", "b"]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.first().map(String::as_str) == Some("src") {
        parts.remove(0);
    }
    if let Some(last) = parts.pop() {
        let stem = last.strip_suffix(".rs").unwrap_or(&last).to_string();
        if stem != "mod" {
            parts.push(stem);
        }
    }
    parts
}

/// `text` with comments, string literals and character literals blanked out (kept as spaces,
/// so positions and line numbers stay), leaving code only.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let mut depth = 0usize;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if (rest.starts_with(b"r\"") || rest.starts_with(b"r#") || rest.starts_with(b"br"))
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
            && raw_string_hashes(rest).is_some()
        {
            let (open, hashes) = raw_string_hashes(rest).unwrap();
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat(b'#').take(hashes));
            for &c in &b[i..i + open] {
                blank(&mut out, c);
            }
            i += open;
            while i < b.len() && !b[i..].starts_with(&close) {
                blank(&mut out, b[i]);
                i += 1;
            }
            let closing = close.len().min(b.len() - i);
            out.resize(out.len() + closing, b' ');
            i += closing;
        } else if b[i] == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                blank(&mut out, b[i]);
                i += 1;
            }
            if i < b.len() {
                out.push(b' ');
                i += 1;
            }
        } else if b[i] == b'\'' {
            // A character literal ('x', '\n', '\u{..}'), or a lifetime ('a), which stays.
            let end = if rest.get(1) == Some(&b'\\') {
                rest.iter().skip(2).position(|&c| c == b'\'').map(|p| p + 3)
            } else {
                let ch = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                (rest.get(1 + ch) == Some(&b'\'')).then_some(2 + ch)
            };
            match end {
                Some(n) => {
                    for &c in &b[i..i + n] {
                        blank(&mut out, c);
                    }
                    i += n;
                }
                None => {
                    out.push(b[i]);
                    i += 1;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// For a raw string starting at `s` (`r"`, `r#"`, `br"`, ...): the length of its opening and
/// its number of `#`.
fn raw_string_hashes(s: &[u8]) -> Option<(usize, usize)> {
    let start = usize::from(s.first() == Some(&b'b')) + 1;
    if s.get(start - 1) != Some(&b'r') {
        return None;
    }
    let hashes = s[start..].iter().take_while(|&&c| c == b'#').count();
    (s.get(start + hashes) == Some(&b'"')).then_some((start + hashes + 1, hashes))
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifiers at the top level of the `{...}` group that starts at `s` (after its `{`).
fn group_heads(s: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut at_item_start = true;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_item_start = true,
            c if depth == 0 && at_item_start && is_ident(c) => {
                let len = s[i..].find(|c: char| !is_ident(c)).unwrap_or(s.len() - i);
                heads.push(s[i..i + len].to_string());
                at_item_start = false;
                for _ in 1..s[i..i + len].chars().count() {
                    chars.next();
                }
            }
            _ => {}
        }
    }
    heads
}

/// The top-level modules that a file at `rel` (relative to the crate root, `src/...`) names
/// through crate paths, each with the line it is named on.
fn imported_modules(rel: &Path, text: &str) -> Vec<(String, usize)> {
    let own = module_path(rel);
    let code = code_only(text);
    let mut found = Vec::new();
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    // Paths from the crate root.
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| is_ident(c) || c == '$') {
            continue;
        }
        let rest = code[at + "crate::".len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            for head in group_heads(group) {
                found.push((head, line_of(at)));
            }
        } else {
            let len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
            found.push((rest[..len].to_string(), line_of(at)));
        }
    }
    // `super::` chains: only those that climb out of the file's top-level module matter.
    for (at, _) in code.match_indices("super::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            continue;
        }
        let mut rest = &code[at..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            ups += 1;
            rest = r.trim_start();
        }
        if ups < own.len() {
            continue;
        }
        // Climbed to the crate root (an inline `mod tests` adds a level this does not see;
        // a name that is no top-level module then stays inside the file's own module).
        let heads = match rest.strip_prefix('{') {
            Some(group) => group_heads(group),
            None => {
                let len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
                vec![rest[..len].to_string()]
            }
        };
        for head in heads {
            found.push((head, line_of(at)));
        }
    }
    found
}

/// Every import of a higher layer in the file at `rel`: (from, to, line).
fn upward_imports(rel: &Path, text: &str) -> Vec<(String, String, usize)> {
    let own = module_path(rel);
    let Some(from) = own.first().cloned() else {
        return Vec::new();
    };
    let Some(from_layer) = layer_of(&from) else {
        // main.rs, lib.rs: the top.
        return Vec::new();
    };
    imported_modules(rel, text)
        .into_iter()
        .filter_map(|(to, line)| {
            let to_layer = layer_of(&to)?;
            (to_layer > from_layer).then(|| (from.clone(), to, line))
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_a_higher_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 50, "only {} files under src/", files.len());
    let mut top_modules = BTreeSet::new();
    let mut violations = Vec::new();
    let mut excused = BTreeSet::new();
    for path in &files {
        let rel = path.strip_prefix(root).unwrap();
        if let Some(top) = module_path(rel).first() {
            top_modules.insert(top.clone());
        }
        let text = std::fs::read_to_string(path).unwrap();
        for (from, to, line) in upward_imports(rel, &text) {
            if KNOWN_EXCEPTIONS.contains(&(from.as_str(), to.as_str())) {
                excused.insert((from, to));
            } else {
                violations.push(format!("{}:{line}: {from} uses {to}", rel.display()));
            }
        }
    }
    // Every module of the crate has a place in the order.
    let unplaced: Vec<_> = top_modules
        .iter()
        .filter(|m| layer_of(m).is_none() && *m != "main" && *m != "lib")
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules with no layer in LAYERS: {unplaced:?}"
    );
    assert!(
        violations.is_empty(),
        "imports of a higher layer (ARCHITECTURE.md gives the order):\n{}",
        violations.join("\n")
    );
    let stale: Vec<_> = KNOWN_EXCEPTIONS
        .iter()
        .filter(|(f, t)| !excused.contains(&(f.to_string(), t.to_string())))
        .collect();
    assert!(
        stale.is_empty(),
        "exceptions no longer needed, remove them: {stale:?}"
    );
}

#[test]
fn checker_finds_upward_paths() {
    let file = Path::new("src/pipeline/read.rs");
    let up = |text: &str| -> Vec<String> {
        upward_imports(file, text)
            .into_iter()
            .map(|(_, to, _)| to)
            .collect()
    };
    assert_eq!(up("use crate::sink::Output;\n"), ["sink"]);
    assert_eq!(
        up("use crate::{encode::batch::JsonBatch, sink::Sink};"),
        ["sink"]
    );
    assert_eq!(
        up("use crate::{\n    record::{a, b},\n    decode,\n};"),
        ["record"]
    );
    assert_eq!(up("fn f() { let o = crate::cli::Cli::parse(); }"), ["cli"]);
    assert_eq!(up("use super::super::broker::resp;"), ["broker"]);
    assert_eq!(up("use super::super::{decode, sink};"), ["sink"]);
    // Downward, same-layer and relative paths are fine.
    assert!(up("use crate::source::pcap_file::Frame;\nuse crate::exit;\n").is_empty());
    assert!(up("use super::worker::PacketOptions;\nuse crate::pipeline::stats;").is_empty());
    // Comments, strings, `$crate` and other crates' paths are not imports.
    assert!(up("// use crate::sink::Output;\n/// [`crate::sink::Output`]\n").is_empty());
    assert!(up("/* crate::sink /* nested */ crate::cli */ fn f() {}").is_empty());
    assert!(up("let s = \"crate::sink::x\"; let r = r#\"crate::cli\"#;").is_empty());
    assert_eq!(up("let c = '\"'; use crate::sink::Sink;"), ["sink"]);
    assert!(up("macro_rules! m { () => { $crate::sink::x } }").is_empty());
    assert!(up("use netpipe_fast::sink::Sink; use other_crate::sink;").is_empty());
    // The line is reported.
    let found = upward_imports(file, "\n\nuse crate::sink::Output;\n");
    assert_eq!(found, [("pipeline".into(), "sink".into(), 3)]);
    // The crate roots may use anything; lower layers may use the bottom.
    assert!(upward_imports(Path::new("src/main.rs"), "use crate::cli::Cli;").is_empty());
    assert!(upward_imports(Path::new("src/lib.rs"), "use crate::sink;").is_empty());
    assert_eq!(
        upward_imports(
            Path::new("src/decode/ipv4.rs"),
            "use crate::encode::out::Out;"
        )
        .len(),
        1
    );
    assert!(upward_imports(Path::new("src/decode/ipv4.rs"), "use crate::exit;").is_empty());
}

#[test]
fn module_paths_of_files() {
    assert_eq!(module_path(Path::new("src/sink/mod.rs")), ["sink"]);
    assert_eq!(
        module_path(Path::new("src/sink/redis.rs")),
        ["sink", "redis"]
    );
    assert_eq!(module_path(Path::new("src/exit.rs")), ["exit"]);
    assert_eq!(
        module_path(Path::new("src/source/pcap_file/pcap.rs")),
        ["source", "pcap_file", "pcap"]
    );
}
