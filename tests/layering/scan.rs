//! The scanner of the layering test: a lexer that blanks comments and literals, the
//! `#[cfg(test)]` filter, path extraction, the module graph of `src/`, and its cycles. See
//! the top of tests/layering.rs for what counts as a reference.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The I/O crates the pure and middle layers must not use.
pub const IO_CRATES: [&str; 4] = ["tokio", "libp2p", "rocksdb", "jsonrpsee"];

/// Crates for the binary's edge alone (`main.rs` and `cli/`): library code returns typed errors.
pub const EDGE_CRATES: [&str; 1] = ["anyhow"];

/// True for a crate whose uses are found (an I/O or an edge crate).
fn tracked(name: &str) -> bool {
    IO_CRATES.contains(&name) || EDGE_CRATES.contains(&name)
}

/// What a file refers to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// A top-level module of the crate.
    Module(String),
    /// An external crate.
    Crate(String),
}

/// One reference: the line (1-based), what it names, and for a module the segment after it
/// (`methods` in `crate::rpc::methods::x`), if lower case (a submodule or a function).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ref {
    pub line: usize,
    pub target: Target,
    pub sub: Option<String>,
}

/// Blanks comments and literals (keeping newlines), so only code is matched.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p);
            blank(&mut out, i, end);
            i = end;
        } else if rest.starts_with(b"/*") {
            let (mut depth, mut j) = (0usize, i);
            while j < b.len() {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j.min(b.len()));
            i = j;
        } else if let Some(end) = raw_string_end(b, i) {
            blank(&mut out, i, end);
            i = end;
        } else if b[i] == b'"' || (b[i] == b'b' && rest.get(1) == Some(&b'"') && !ident_before(b, i)) {
            let mut j = i + if b[i] == b'b' { 2 } else { 1 };
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            blank(&mut out, i, end);
            i = end;
        } else if b[i] == b'\'' {
            // A char literal ('a', '\n', '\u{1F600}', '"') or a lifetime ('a, 'static).
            let end = if rest.get(1) == Some(&b'\\') {
                // Skip the escaped character itself ('\'' and '\\' included).
                rest.iter().skip(3).position(|&c| c == b'\'').map(|p| i + 3 + p + 1)
            } else {
                let ch_len = match rest.get(1).copied().unwrap_or(0) {
                    0xF0.. => 4,
                    0xE0.. => 3,
                    0x80.. => 2,
                    _ => 1,
                };
                (rest.get(1 + ch_len) == Some(&b'\'')).then_some(i + 2 + ch_len)
            };
            match end {
                Some(end) => {
                    blank(&mut out, i, end);
                    i = end;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && is_ident(b[i - 1])
}

/// The end of a raw string (`r"..."`, `r#"..."#`, `br#"..."#`) starting at `i`, if one does.
fn raw_string_end(b: &[u8], i: usize) -> Option<usize> {
    if ident_before(b, i) {
        return None;
    }
    let mut j = i;
    if b.get(j) == Some(&b'b') {
        j += 1;
    }
    if b.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
    j += hashes;
    if b.get(j) != Some(&b'"') {
        return None;
    }
    let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
    let body = j + 1;
    let at = b[body..].windows(close.len()).position(|w| w == close.as_slice())?;
    Some(body + at + close.len())
}

/// Cuts every `#[cfg(test)]` item out of stripped code (blanked, newlines kept). Returns the
/// code and the names of `#[cfg(test)] mod x;` declarations (their files are test code).
fn drop_test_items(code: &str) -> (String, Vec<String>) {
    let b = code.as_bytes();
    let mut out = b.to_vec();
    let mut test_mods = Vec::new();
    let mut from = 0;
    while let Some(p) = code[from..].find("#[cfg(test)]") {
        let start = from + p;
        let mut j = start + "#[cfg(test)]".len();
        // Further attributes on the same item.
        loop {
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if b[j..].starts_with(b"#[") {
                j = matching(b, j + 1).map_or(b.len(), |e| e + 1);
            } else {
                break;
            }
        }
        let item = j;
        // The item runs to its first `;` or its first balanced `{..}`, outside (..) and [..].
        let mut depth = 0i32;
        let mut end = b.len();
        while j < b.len() {
            match b[j] {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b';' if depth == 0 => {
                    end = j + 1;
                    break;
                }
                b'{' if depth == 0 => {
                    end = matching(b, j).map_or(b.len(), |e| e + 1);
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        let words: Vec<&str> = code[item..end]
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        if let Some(k) = words.iter().position(|w| *w == "mod") {
            if code[item..end].trim_end().ends_with(';') {
                if let Some(name) = words.get(k + 1) {
                    test_mods.push(name.to_string());
                }
            }
        }
        for c in &mut out[start..end] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        from = end;
    }
    (String::from_utf8_lossy(&out).into_owned(), test_mods)
}

/// The index of the bracket closing the one at `open` (`{`, `[` or `(`).
fn matching(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (k, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'{' | b'[' | b'(' => depth += 1,
            b'}' | b']' | b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// Code tokens: identifiers, `::`, and single punctuation, each with its line.
fn tokens(code: &str) -> Vec<(usize, &str)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if is_ident(c) {
            let s = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            out.push((line, &code[s..i]));
        } else if b[i..].starts_with(b"::") {
            out.push((line, "::"));
            i += 2;
        } else {
            let len = code[i..].chars().next().map_or(1, char::len_utf8);
            out.push((line, &code[i..i + len]));
            i += len;
        }
    }
    out
}

/// The references in one file. `module_path` is the file's module path inside the crate
/// (`["p2p", "service"]` for src/p2p/service/mod.rs), `crate_alias` another name of the crate
/// root (`quarry` in src/main.rs).
pub fn references(src: &str, module_path: &[&str], crate_alias: Option<&str>) -> (Vec<Ref>, Vec<String>) {
    let (code, test_mods) = drop_test_items(&strip(src));
    let toks = tokens(&code);
    let mut refs = Vec::new();
    let sep = |k: usize| toks.get(k).map(|t| t.1) == Some("::");
    for k in 0..toks.len() {
        let (line, t) = toks[k];
        // A path root: not itself a segment of a longer path or a field access.
        let root = k == 0 || !matches!(toks[k - 1].1, "::" | ".");
        if !root || !sep(k + 1) {
            continue;
        }
        if t == "crate" || Some(t) == crate_alias {
            for (line, m, sub) in first_segments(&toks, k + 2) {
                refs.push(Ref { line, target: Target::Module(m.into()), sub: sub.map(Into::into) });
            }
        } else if t == "super" {
            // Climb: each `super` drops one level; past the top, the next segment is top-level.
            let mut depth = module_path.len();
            let mut j = k;
            while toks.get(j).map(|t| t.1) == Some("super") && sep(j + 1) {
                depth = depth.saturating_sub(1);
                j += 2;
            }
            if depth == 0 {
                for (line, m, sub) in first_segments(&toks, j) {
                    refs.push(Ref { line, target: Target::Module(m.into()), sub: sub.map(Into::into) });
                }
            }
        } else if tracked(t) {
            refs.push(Ref { line, target: Target::Crate(t.to_string()), sub: None });
        }
    }
    // `use tokio;` / `extern crate tokio;` without a path.
    for w in toks.windows(3) {
        if matches!(w[0].1, "use" | "crate") && tracked(w[1].1) && matches!(w[2].1, ";" | "as") {
            refs.push(Ref { line: w[1].0, target: Target::Crate(w[1].1.to_string()), sub: None });
        }
    }
    (refs, test_mods)
}

/// The first segments named at token `k` of a path: one identifier, or each element of a
/// `{a, b::c, d}` group; each with its line and its next segment if that is lower case.
fn first_segments<'a>(toks: &[(usize, &'a str)], k: usize) -> Vec<(usize, &'a str, Option<&'a str>)> {
    let ident = |t: &str| t.bytes().all(is_ident);
    let segment = |i: usize| {
        let (line, t) = *toks.get(i)?;
        let next = toks.get(i + 2).map(|n| n.1).filter(|n| {
            toks.get(i + 1).map(|s| s.1) == Some("::")
                && ident(n)
                && n.starts_with(|c: char| c.is_ascii_lowercase())
        });
        (ident(t) && t != "self").then_some((line, t, next))
    };
    if toks.get(k).map(|t| t.1) != Some("{") {
        return segment(k).into_iter().collect();
    }
    let mut out = Vec::new();
    let (mut depth, mut expect) = (0, true);
    for i in k..toks.len() {
        match toks[i].1 {
            "{" => {
                depth += 1;
                expect = depth == 1;
            }
            "}" => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            "," if depth == 1 => expect = true,
            _ if expect && depth == 1 => {
                out.extend(segment(i));
                expect = false;
            }
            _ => {}
        }
    }
    out
}

/// The top-level module of a file (`src/<m>/..` or `src/<m>.rs`) and its module path.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

/// Where an edge is used: `src/file.rs:line`, and the segment after the module.
pub type Use = (String, Option<String>);

/// Edges from a top-level module to another or to a crate, with where each is used.
pub type Graph = BTreeMap<(String, Target), Vec<Use>>;

/// Scans every `.rs` file under `src`, building the graph of references.
pub fn scan(src: &Path) -> Graph {
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut graph = Graph::new();
    let mut test_files: BTreeSet<PathBuf> = BTreeSet::new();
    // Parents before children (shorter paths first), so a test module's files are known
    // before they are reached.
    files.sort_by_key(|p| (p.components().count(), p.clone()));
    for f in &files {
        let rel = f.strip_prefix(src).unwrap();
        if test_files.iter().any(|t| rel.starts_with(t)) {
            continue;
        }
        let path = module_path(rel);
        let Some(top) = path.first().cloned() else { continue };
        if top == "lib" {
            continue; // only `pub mod` declarations
        }
        let text = std::fs::read_to_string(f).unwrap();
        let segs: Vec<&str> = path.iter().map(String::as_str).collect();
        let alias = (top == "main").then_some("quarry");
        let (refs, test_mods) = references(&text, &segs, alias);
        // Where `mod x;` looks for x: beside mod.rs / main.rs, else in a directory named
        // after the file.
        let dir = if rel.file_name().is_some_and(|n| n == "mod.rs" || n == "main.rs") {
            rel.parent().unwrap().to_path_buf()
        } else {
            rel.with_extension("")
        };
        for m in test_mods {
            test_files.insert(dir.join(format!("{m}.rs")));
            test_files.insert(dir.join(&m));
        }
        for r in refs {
            if r.target == Target::Module(top.clone()) {
                continue;
            }
            let place = format!("src/{}:{}", rel.display(), r.line);
            graph.entry((top.clone(), r.target)).or_default().push((place, r.sub));
        }
    }
    graph
}

/// The elementary cycles of the module graph, each as a module list with the first repeated
/// last, found once: from its smallest module, and once per set of modules.
pub fn cycles(edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    let mut adj: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges {
        adj.entry(a).or_default().push(b);
    }
    let mut found: Vec<Vec<String>> = Vec::new();
    let mut seen_sets: BTreeSet<Vec<String>> = BTreeSet::new();
    fn dfs<'a>(
        at: &'a str,
        start: &'a str,
        adj: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        out: &mut Vec<Vec<String>>,
        sets: &mut BTreeSet<Vec<String>>,
    ) {
        for &next in adj.get(at).into_iter().flatten() {
            if next == start {
                let mut set: Vec<String> = path.iter().map(|s| s.to_string()).collect();
                set.sort();
                if sets.insert(set) {
                    let mut c: Vec<String> = path.iter().map(|s| s.to_string()).collect();
                    c.push(start.to_string());
                    out.push(c);
                }
            } else if next > start && !path.contains(&next) {
                path.push(next);
                dfs(next, start, adj, path, out, sets);
                path.pop();
            }
        }
    }
    for &start in adj.keys() {
        let mut path = vec![start];
        dfs(start, start, &adj, &mut path, &mut found, &mut seen_sets);
    }
    found
}
