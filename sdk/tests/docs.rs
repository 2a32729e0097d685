//! The documentation points at things that exist: every file it names, every
//! test or helper it names in a file, and the README's excerpt of the quick
//! start is the compiled quick start's (the guides' samples themselves are
//! compiled as doctests, see `guides` in `src/lib.rs`).

use std::path::{Path, PathBuf};

use regex::Regex;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The README and every guide, with their names.
fn documents() -> Vec<(String, String)> {
    let root = repository();
    let mut documents = vec![(
        "README.md".to_owned(),
        std::fs::read_to_string(root.join("README.md")).unwrap(),
    )];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            documents.push((
                format!("docs/{}", path.file_name().unwrap().to_string_lossy()),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    documents
}

/// Whether `file` defines `name` (a function, type, constant or macro).
fn defines(file: &str, name: &str) -> bool {
    let definition = Regex::new(&format!(
        r"(?m)^\s*(pub(\([a-z]+\))? )?(async )?(fn|mod|struct|enum|const|static|trait|type|macro_rules!) ?{name}\b"
    ))
    .unwrap();
    definition.is_match(file)
}

#[test]
fn every_file_and_test_the_docs_name_exists() {
    let root = repository();
    let path = Regex::new(r"`((?:[\w.-]+/)+[\w.-]+\.(?:rs|sh|md|toml|yaml|py))`").unwrap();
    // "`name` in `file`" and "`file` (`name`" / "`file`\n  (`name`".
    let name_in_file = Regex::new(r"`(\w+)` in `((?:[\w.-]+/)+[\w.-]+\.rs)`").unwrap();
    let file_then_names = Regex::new(r"`((?:[\w.-]+/)+[\w.-]+\.rs)`\s*\(([^)]*)\)").unwrap();
    let backticked = Regex::new(r"`(\w+)`").unwrap();
    let mut problems = Vec::new();
    let mut checked = 0;
    for (document, text) in documents() {
        for found in path.captures_iter(&text) {
            if !root.join(&found[1]).exists() {
                problems.push(format!("{document}: no file {}", &found[1]));
            }
        }
        let mut named: Vec<(String, String)> = name_in_file
            .captures_iter(&text)
            .map(|c| (c[2].to_owned(), c[1].to_owned()))
            .collect();
        for found in file_then_names.captures_iter(&text) {
            for name in backticked.captures_iter(&found[2]) {
                named.push((found[1].to_owned(), name[1].to_owned()));
            }
        }
        for (file, name) in named {
            let Ok(source) = std::fs::read_to_string(root.join(&file)) else {
                continue; // reported above
            };
            checked += 1;
            if !defines(&source, &name) {
                problems.push(format!("{document}: {file} has no `{name}`"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        checked >= 20,
        "only {checked} names found: is the parser right?"
    );
}

/// The code blocks of a Markdown text, with their info strings.
fn code_blocks(text: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in text.lines() {
        if let Some(info) = line.strip_prefix("```") {
            match current.take() {
                Some(block) => blocks.push(block),
                None => current = Some((info.to_owned(), Vec::new())),
            }
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line.to_owned());
        }
    }
    blocks
}

fn normalized(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_readmes_excerpt_is_the_compiled_quick_start() {
    let root = repository();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let guide = std::fs::read_to_string(root.join("docs/sdk.md")).unwrap();
    let excerpt = code_blocks(&readme)
        .into_iter()
        .find(|(info, _)| info.starts_with("rust"))
        .expect("the README shows a consumer");
    let quick_start: Vec<String> = code_blocks(&guide)
        .into_iter()
        .find(|(info, lines)| {
            info.starts_with("rust") && lines.iter().any(|l| l.contains("fn main"))
        })
        .expect("the guide has a complete program")
        .1
        .iter()
        .map(|l| normalized(l))
        .collect();
    for line in excerpt.1.iter().filter(|l| !l.trim().is_empty()) {
        assert!(
            quick_start.contains(&normalized(line)),
            "README line not in docs/sdk.md's quick start: {line}"
        );
    }
}
