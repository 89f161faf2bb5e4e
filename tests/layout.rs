//! The shape of the source, checked rather than eyed: no import cycle between the files of
//! any crate, `bridge/src/main.rs` a table of contents, and no file doing so many jobs that
//! it runs past 600 lines.
//!
//! A file imports another when it names a path into it (`crate::a::b`, `super::c`,
//! `self::d`, or a child module by its bare name). Declaring a module (`mod a;`) is not an
//! import, and the `#[cfg(test)] mod tests` at the end of a file is left out. A name a
//! `use` brings in is followed to the file the `use` names, not through later paths that
//! start with it (`use crate::a; a::b::f()` counts as an import of `a`): the imports here
//! are written from `crate`, `super` or `self`, which the check sees whole.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a file outside the tests may be.
const MAX_LINES: usize = 600;

/// The longest `bridge/src/main.rs` may be: the command line's table of contents.
const MAX_MAIN_LINES: usize = 100;

type Module = Vec<String>;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

/// Every crate of the workspace with a `src` folder.
fn crates() -> Vec<PathBuf> {
    let mut crates = Vec::new();
    let mut folders = vec![repo().join("bridge"), repo().join("components")];
    while let Some(folder) = folders.pop() {
        if folder.ends_with("target") || folder.ends_with("node_modules") {
            continue;
        }
        if folder.join("Cargo.toml").exists() && folder.join("src").is_dir() {
            crates.push(folder.clone());
        }
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with("src") {
                folders.push(path);
            }
        }
    }
    crates.sort();
    crates
}

/// The `.rs` files under `folder`.
fn sources(folder: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The module a file under `src` holds (`src/a/mod.rs` and `src/a.rs` are both `a`).
fn module_of(src: &Path, file: &Path) -> Module {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut module: Module = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        module.last().map(String::as_str),
        Some("lib" | "main" | "mod")
    ) {
        module.pop();
    }
    module
}

/// The code of a file without its comments and its tests.
fn code(text: &str) -> String {
    let text = without_tests(text);
    text.lines()
        .map(|line| match line.find("//") {
            // `//` after a colon is a URL in a string (`http://...`), not a comment.
            Some(at) if !line[..at].ends_with(':') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A file up to its unit tests.
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests {")
        .map_or(text, |at| &text[..at])
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every `a::b::c` path in `code`, as its segments; a group (`a::{b, c::d}`) is one path
/// per member.
fn paths(code: &str) -> Vec<Vec<&str>> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("::") {
        let before = &rest[..at];
        let start = before
            .char_indices()
            .rfind(|(_, c)| !is_ident(*c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        // A path's head is not itself the tail of a longer path (`x::a::b` counts once).
        let continues = before[..start].ends_with("::");
        let head = &before[start..];
        let tail = &rest[at + 2..];
        let mut members = Vec::new();
        let used = path_from(vec![head], tail, &mut members);
        if !continues && !head.is_empty() {
            found.extend(members);
        }
        rest = &tail[used.min(tail.len())..];
    }
    found
}

/// The paths that continue `prefix` in `text` (just after a `::`), into `found`; how much
/// of `text` they took.
fn path_from<'a>(mut prefix: Vec<&'a str>, text: &'a str, found: &mut Vec<Vec<&'a str>>) -> usize {
    let mut at = 0;
    loop {
        let rest = &text[at..];
        if let Some(group) = rest.strip_prefix('{') {
            let close = closing_brace(group);
            for member in split_members(&group[..close]) {
                let trimmed = member.trim_start();
                let member = trimmed.split(" as ").next().unwrap_or_default().trim();
                if member == "self" {
                    found.push(prefix.clone());
                    continue;
                }
                let end = member.find(|c: char| !is_ident(c)).unwrap_or(member.len());
                let mut inner = prefix.clone();
                inner.push(&member[..end]);
                match member[end..].strip_prefix("::") {
                    Some(more) => {
                        path_from(inner, more, found);
                    }
                    None => found.push(inner),
                }
            }
            return at + close + 2;
        }
        let end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if end == 0 {
            found.push(prefix);
            return at;
        }
        prefix.push(&rest[..end]);
        at += end;
        match text[at..].strip_prefix("::") {
            Some(_) => at += 2,
            None => {
                found.push(prefix);
                return at;
            }
        }
    }
}

/// Where the `}` closing a group that starts just before `text` is.
fn closing_brace(text: &str) -> usize {
    let mut depth = 0;
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return at,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

/// A group's members, split at its own commas (not at those of a nested group).
fn split_members(group: &str) -> Vec<&str> {
    let (mut members, mut depth, mut start) = (Vec::new(), 0, 0);
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                members.push(&group[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    members.push(&group[start..]);
    members.retain(|m| !m.trim().is_empty());
    members
}

/// The files of one crate each file imports.
fn imports(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let files: BTreeMap<Module, PathBuf> = sources(src)
        .into_iter()
        .filter(|file| {
            // A binary beside a library is a crate of its own, which imports the library.
            let relative = file.strip_prefix(src).unwrap();
            let beside_library = relative == Path::new("main.rs") && src.join("lib.rs").exists();
            !(relative.starts_with("bin") || beside_library)
        })
        .map(|file| (module_of(src, &file), file))
        .collect();
    let mut graph = BTreeMap::new();
    for (module, file) in &files {
        let code = code(&std::fs::read_to_string(file).unwrap());
        let mut imported = BTreeSet::new();
        for path in paths(&code) {
            let (mut target, rest) = match path[0] {
                "crate" => (Vec::new(), &path[1..]),
                "self" => (module.clone(), &path[1..]),
                "super" => (
                    module[..module.len().saturating_sub(1)].to_vec(),
                    &path[1..],
                ),
                // A child module by its bare name, if there is one.
                _ => (module.clone(), &path[..]),
            };
            for segment in rest {
                if *segment == "super" {
                    target.pop();
                } else {
                    target.push((*segment).to_owned());
                }
            }
            // The file is the longest prefix of the path that is one.
            while !files.contains_key(&target) && target.pop().is_some() {}
            if target != *module {
                imported.insert(target);
            }
        }
        graph.insert(module.clone(), imported);
    }
    graph
}

/// The groups of files that import each other, round and round (Tarjan's strongly
/// connected components of more than one file).
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, module: &'a Module) {
            let index = self.index.len();
            self.index.insert(module, index);
            self.low.insert(module, index);
            self.stack.push(module);
            for next in &self.graph[module] {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[module].min(self.low[next]);
                    self.low.insert(module, low);
                } else if self.stack.contains(&next) {
                    let low = self.low[module].min(self.index[next]);
                    self.low.insert(module, low);
                }
            }
            if self.low[module] == self.index[module] {
                let at = self.stack.iter().rposition(|m| *m == module).unwrap();
                let group: Vec<Module> = self.stack.drain(at..).cloned().collect();
                if group.len() > 1 {
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for module in graph.keys() {
        if !walk.index.contains_key(module) {
            walk.visit(module);
        }
    }
    walk.found
}

fn name(module: &Module) -> String {
    if module.is_empty() {
        "(root)".to_owned()
    } else {
        module.join("::")
    }
}

#[test]
fn no_crate_has_an_import_cycle_between_its_files() {
    let mut found = Vec::new();
    for krate in crates() {
        let graph = imports(&krate.join("src"));
        for group in cycles(&graph) {
            let names: Vec<String> = group.iter().map(name).collect();
            let edges: Vec<String> = group
                .iter()
                .flat_map(|from| {
                    graph[from]
                        .iter()
                        .filter(|to| group.contains(to))
                        .map(move |to| format!("{} -> {}", name(from), name(to)))
                })
                .collect();
            found.push(format!(
                "{}: {} ({})",
                krate.strip_prefix(repo()).unwrap().display(),
                names.join(", "),
                edges.join("; ")
            ));
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_check_finds_a_cycle_where_there_is_one() {
    let graph: BTreeMap<Module, BTreeSet<Module>> = [
        (vec![], BTreeSet::from([vec!["a".to_owned()]])),
        (vec!["a".to_owned()], BTreeSet::from([vec!["b".to_owned()]])),
        (vec!["b".to_owned()], BTreeSet::from([vec!["a".to_owned()]])),
    ]
    .into();
    assert_eq!(cycles(&graph).len(), 1);
    // Neither an unclosed group in a string nor a character of several bytes trips it.
    assert!(paths("\"::{\"").is_empty());
    assert_eq!(paths("\"→x::y\""), vec![vec!["x", "y"]]);
    let found = paths(
        "use crate::a::b; x.map(super::c::d); let y = e::f::g; use crate::{h, i::{j, self}};",
    );
    assert_eq!(
        found,
        vec![
            vec!["crate", "a", "b"],
            vec!["super", "c", "d"],
            vec!["e", "f", "g"],
            vec!["crate", "h"],
            vec!["crate", "i", "j"],
            vec!["crate", "i"],
        ]
    );
}

#[test]
fn main_is_a_table_of_contents_and_no_file_does_too_many_jobs() {
    let main = std::fs::read_to_string(repo().join("bridge/src/main.rs")).unwrap();
    let mut long = Vec::new();
    if main.lines().count() >= MAX_MAIN_LINES {
        long.push(format!(
            "bridge/src/main.rs: {} lines (under {MAX_MAIN_LINES})",
            main.lines().count()
        ));
    }
    for krate in crates() {
        for file in sources(&krate.join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            // A file's own tests do not count against it.
            let lines = without_tests(&text).lines().count();
            if lines > MAX_LINES {
                long.push(format!(
                    "{}: {lines} lines",
                    file.strip_prefix(repo()).unwrap().display()
                ));
            }
        }
    }
    assert!(long.is_empty(), "too long:\n{}", long.join("\n"));
}
