//! The docs as a reader follows them: every repository path they name is
//! there, and the command line's help names what the docs say it reads.

use std::path::{Path, PathBuf};

use crate::common::binary::Binary;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The folders a repository path in the docs starts with.
const TOP_LEVEL: &[&str] = &[
    "src/",
    "docs/",
    "tests/",
    "scripts/",
    "infra/",
    "benches/",
    ".ci/",
    "functions/",
];

/// Every Markdown file a reader of the repository opens.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from(ROOT).join("README.md")];
    for dir in ["docs", "tests/cosmos-server", "src/api/ui/vendor"] {
        for entry in std::fs::read_dir(Path::new(ROOT).join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files
}

/// The repository paths `text` names: a word of a code block, the first
/// word of inline code, or the target of a relative Markdown link (resolved
/// against `dir`, the file's folder).
fn named_paths(text: &str, dir: &Path) -> Vec<PathBuf> {
    let mut words = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
        } else if in_block {
            words.extend(line.split_whitespace());
        } else {
            let inline = line.split('`').skip(1).step_by(2);
            words.extend(inline.filter_map(|code| code.split_whitespace().next()));
        }
    }
    let mut found: Vec<PathBuf> = words
        .into_iter()
        .map(|word| word.trim_matches(|c| "\"'(),;".contains(c)))
        .filter(|word| TOP_LEVEL.iter().any(|top| word.starts_with(top)))
        .filter(|word| !word.contains(['*', '<', '{', '$', '…']))
        // `src/x.rs:12` and `tests/it/x.rs::name` name the file.
        .map(|word| Path::new(ROOT).join(word.split(':').next().unwrap()))
        .collect();
    for link in text.split("](").skip(1) {
        let target = link.split(')').next().unwrap().split('#').next().unwrap();
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            found.push(dir.join(target));
        }
    }
    found
}

#[test]
fn every_repository_path_the_docs_name_exists() {
    let mut missing = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for path in named_paths(&text, file.parent().unwrap()) {
            if !path.exists() {
                missing.push(format!("{} names {}", file.display(), path.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "paths the docs name that are not there:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_path_check_finds_a_missing_file() {
    let text = "see `src/nowhere.rs` and [x](gone.md#a)\n```sh\nscripts/gone.sh --flag\n```\n";
    let named = named_paths(text, Path::new(ROOT));
    assert_eq!(named.len(), 3, "{named:?}");
    assert!(named.iter().all(|p| !p.exists()));
}

/// What `chat-sessions <args>` prints.
fn help(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = Binary::run(dir.path(), args).wait_with_output();
    assert!(output.status.success(), "{args:?} failed");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_help_says_what_runs_without_a_command_and_which_settings_commands_read() {
    assert!(help(&["--help"]).contains("With no command it serves"));
    let retention = help(&["retention", "--help"]);
    for setting in [
        "RETENTION_ARCHIVE_AFTER_DAYS",
        "RETENTION_DELETE_AFTER_DAYS",
        "DATA_DIR",
    ] {
        assert!(
            retention.contains(setting),
            "retention --help lacks {setting}"
        );
    }
    let init = help(&["init-cosmos", "--help"]);
    for setting in ["COSMOS_ENDPOINT", "COSMOS_KEY", "COSMOS_DATABASE"] {
        assert!(init.contains(setting), "init-cosmos --help lacks {setting}");
    }
}
