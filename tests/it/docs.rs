//! The documentation's own checks: every relative Markdown link in
//! README.md, docs/**/*.md and certs/README.md points to a file that
//! exists and, where it names a `#anchor`, to a heading of that file (by
//! GitHub's anchor rules); and the README stays a front door, under 400
//! lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, certs/README.md and every `.md` file under docs/.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![
        root().join("README.md"),
        root().join("certs/README.md"),
        root().join("crates/mcp-auth-sdk/README.md"),
    ];
    let mut dirs = vec![root().join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The text with every line inside a fenced code block blanked, so that
/// line numbers stay those of the file.
fn prose(text: &str) -> String {
    let mut fence: Option<String> = None;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        let marker: String = trimmed
            .chars()
            .take_while(|c| *c == '`' || *c == '~')
            .collect();
        let is_fence = marker.len() >= 3
            && (marker.chars().all(|c| c == '`') || marker.chars().all(|c| c == '~'));
        match &fence {
            Some(open) if is_fence && marker.starts_with(open.as_str()) => fence = None,
            Some(_) => {}
            None if is_fence => fence = Some(marker),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// `text` with inline code spans (a run of backticks up to the next run of
/// the same length, across line breaks too) replaced by spaces.
fn without_code_spans(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|c| **c == '`').count();
        let mut j = i + run;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let n = chars[j..].iter().take_while(|c| **c == '`').count();
                if n == run {
                    close = Some(j + n);
                    break;
                }
                j += n;
            } else {
                j += 1;
            }
        }
        match close {
            Some(end) => {
                out.extend(
                    chars[i..end]
                        .iter()
                        .map(|c| if *c == '\n' { '\n' } else { ' ' }),
                );
                i = end;
            }
            None => {
                out.extend(&chars[i..i + run]);
                i += run;
            }
        }
    }
    out
}

/// (line number, target) of every inline link `[text](target)` and every
/// reference definition `[name]: target` outside code.
fn links(text: &str) -> Vec<(usize, String)> {
    let prose = without_code_spans(&prose(text));
    let mut found = Vec::new();
    for (n, line) in prose.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix('[') {
            if let Some((_, target)) = rest
                .split_once("]: ")
                .filter(|(name, _)| !name.contains([']', '(']))
            {
                found.push((n + 1, target.trim().to_owned()));
                continue;
            }
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let mut depth = 0usize;
            let end = after
                .char_indices()
                .find(|(_, c)| match c {
                    '(' => {
                        depth += 1;
                        false
                    }
                    ')' if depth == 0 => true,
                    ')' => {
                        depth -= 1;
                        false
                    }
                    _ => false,
                })
                .map_or(after.len(), |(i, _)| i);
            let target = after[..end].split_whitespace().next().unwrap_or("");
            found.push((n + 1, target.trim_matches(['<', '>']).to_owned()));
            rest = &after[end..];
        }
    }
    found
}

/// GitHub's anchor for a heading: the text as rendered, lower-cased, with
/// every character other than letters, digits, spaces, `-` and `_` dropped
/// and spaces turned into `-`.
fn anchor(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    // A link in a heading renders as its text.
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find("](").and_then(|close| {
            after[close..]
                .find(')')
                .map(|paren| (close, close + paren + 1))
        }) {
            Some((close, end)) => {
                text.push_str(&after[..close]);
                rest = &after[end..];
            }
            None => {
                text.push('[');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of every heading of a Markdown file, with GitHub's `-1`,
/// `-2`, ... for repeated ones.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut all = BTreeSet::new();
    for line in prose(text).lines() {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let title = line[hashes..].trim().trim_end_matches('#').trim();
        let base = anchor(title);
        let count = seen.entry(base.clone()).or_insert(0);
        all.insert(if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        });
        *count += 1;
    }
    all
}

/// Whether a link target leaves the repository (a URL or a mail address).
fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_relative_link_in_the_docs_points_to_a_file_and_heading_that_exist() {
    let files = markdown_files();
    assert!(files.len() > 10, "{files:?}");
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line, target) in links(&text) {
            if is_external(&target) {
                continue;
            }
            checked += 1;
            let (path, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target.as_str(), None),
            };
            let dest = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            let at = format!("{}:{line}: {target}", relative(file));
            if target.is_empty() || !dest.exists() {
                broken.push(format!("{at}: no such file"));
                continue;
            }
            let Some(fragment) = fragment else { continue };
            if dest.extension().is_none_or(|e| e != "md") {
                broken.push(format!("{at}: an anchor into a file that is not Markdown"));
                continue;
            }
            let dest_text = std::fs::read_to_string(&dest).unwrap();
            if !anchors(&dest_text).contains(fragment) {
                broken.push(format!(
                    "{at}: {} has no heading #{fragment}",
                    relative(&dest)
                ));
            }
        }
    }
    assert!(checked > 50, "only {checked} relative links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn readme_is_a_front_door_under_400_lines() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(lines < 400, "README.md has {lines} lines");
}

#[test]
fn anchors_follow_githubs_rules() {
    assert_eq!(
        anchor("Sessions, refresh and revocation"),
        "sessions-refresh-and-revocation"
    );
    assert_eq!(
        anchor("The chain and `audit verify`"),
        "the-chain-and-audit-verify"
    );
    assert_eq!(
        anchor("Service identities (mTLS)"),
        "service-identities-mtls"
    );
    assert_eq!(
        anchor("Target 2: why 90% cannot be reached here"),
        "target-2-why-90-cannot-be-reached-here"
    );
    assert_eq!(
        anchor("The pieces: `cargo bench --bench hot_path`"),
        "the-pieces-cargo-bench---bench-hot_path"
    );
    assert_eq!(anchor("See [the guide](guide.md)"), "see-the-guide");
    let text = "# A\n\n```sh\n# not a heading\n```\n\n## A\n## B #\n";
    let all = anchors(text);
    assert_eq!(
        all,
        ["a", "a-1", "b"].map(str::to_owned).into_iter().collect()
    );
    let found = links("[x](a.md#b) `[y](c.md)`\n```\n[z](d.md)\n```\n[w]: e.md\n");
    assert_eq!(
        found,
        vec![(1, "a.md#b".to_owned()), (5, "e.md".to_owned())]
    );
}
