//! Every reference in the repository's docs resolves inside the
//! repository: relative Markdown links (and their `#anchors`) in every
//! `.md` file, and every `docs/….md` a source comment or help text names.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Files under `dir` ending in `ext`, skipping build output and VCS data.
fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(
                name.as_ref(),
                "target" | ".git" | "node_modules" | "corpus" | "artifacts"
            ) {
                files(&path, ext, out);
            }
        } else if name.ends_with(ext) {
            out.push(path);
        }
    }
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// as dashes.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> HashSet<String> {
    let mut in_code = false;
    let mut out = HashSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// The targets of `[text](target)` links outside code blocks and spans.
fn links(markdown: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        // Drop code spans, whose brackets are not links.
        let mut prose = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                prose.push_str(part);
            }
        }
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn every_markdown_link_resolves_inside_the_repository() {
    let root = repo_root();
    let mut markdown = Vec::new();
    files(&root, ".md", &mut markdown);
    assert!(markdown.len() >= 6, "found {markdown:?}");
    let mut broken = Vec::new();
    for file in &markdown {
        let text = fs::read_to_string(file).expect("readable");
        for link in links(&text) {
            if link.starts_with("http://")
                || link.starts_with("https://")
                || link.starts_with("mailto:")
            {
                continue;
            }
            let (path, anchor) = match link.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (link.as_str(), None),
            };
            let target = if path.is_empty() {
                file.clone()
            } else {
                file.parent().expect("in a directory").join(path)
            };
            let Ok(target) = target.canonicalize() else {
                broken.push(format!("{}: {link} (no such file)", file.display()));
                continue;
            };
            if !target.starts_with(root.canonicalize().expect("root")) {
                broken.push(format!(
                    "{}: {link} (outside the repository)",
                    file.display()
                ));
                continue;
            }
            if let Some(anchor) = anchor
                && target.extension().is_some_and(|e| e == "md")
            {
                let headings = anchors(&fs::read_to_string(&target).expect("readable"));
                if !headings.contains(anchor) {
                    broken.push(format!("{}: {link} (no such heading)", file.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_docs_file_a_source_names_exists() {
    let root = repo_root();
    let mut sources = Vec::new();
    files(&root.join("crates"), ".rs", &mut sources);
    files(&root.join("scripts"), ".sh", &mut sources);
    let mut broken = Vec::new();
    for file in &sources {
        let text = fs::read_to_string(file).expect("readable");
        let mut rest = text.as_str();
        while let Some(at) = rest.find("docs/") {
            let name: String = rest[at + 5..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-' || *c == '.')
                .collect();
            rest = &rest[at + 5..];
            if let Some(name) = name.strip_suffix('.').or(Some(&name))
                && name.ends_with(".md")
                && !root.join("docs").join(name).exists()
            {
                broken.push(format!("{}: docs/{name}", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "missing docs:\n{}", broken.join("\n"));
}

#[test]
fn nothing_points_outside_the_repository() {
    let root = repo_root();
    let mut texts = Vec::new();
    files(&root, ".md", &mut texts);
    files(&root.join("crates"), ".rs", &mut texts);
    files(&root.join("scripts"), ".sh", &mut texts);
    let outside = [
        "SPEC.md",
        "REDIS.md",
        "WORKLOADS.md",
        "shared/bench",
        "../shared",
    ];
    let mut found = Vec::new();
    for file in &texts {
        if file.ends_with("repo_docs.rs") {
            continue;
        }
        let text = fs::read_to_string(file).expect("readable");
        for needle in outside {
            if text.contains(needle) {
                found.push(format!("{}: {needle}", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "references outside the repository:\n{}",
        found.join("\n")
    );
}
