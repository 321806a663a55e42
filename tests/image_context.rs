//! The container image builds from its build context: the crate is built (`cargo build
//! --offline --locked`) from exactly the files `docker/Dockerfile.dockerignore` admits to
//! the context and the builder stage's `COPY` lines put into `/src`, copied to a temp dir.
//! A build input left out (an `include_bytes!`/`include_str!` file, the manifest, a bench
//! or test target Cargo.toml declares) fails that build; a build script left out would
//! not (Cargo only looks for one), so it is checked by name. The target dir is shared
//! (`CARGO_TARGET_DIR`), so only technic itself is compiled again.
//!
//! The dockerignore matcher is written here, for the syntax Docker documents: one pattern
//! a line, `#` comments, `!` re-includes, `*` and `?` within a path element, `**` any number
//! of elements, a pattern matching a directory matches everything under it, the last
//! matching line wins. Anything else (character classes, escapes) is refused, not guessed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod support;

use support::wait::wait_for;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------- dockerignore

/// One line of a dockerignore file.
#[derive(Debug)]
struct Rule {
    /// Path elements of the pattern (`**` kept as its own element).
    elements: Vec<String>,
    /// `!pattern`: re-includes what it matches.
    include: bool,
}

/// A parsed dockerignore file.
#[derive(Debug)]
struct DockerIgnore {
    rules: Vec<Rule>,
}

impl DockerIgnore {
    fn parse(text: &str) -> DockerIgnore {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (include, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            assert!(
                !pattern.contains(['[', '\\']),
                "dockerignore pattern {pattern:?}: character classes and escapes are not supported by this test's matcher"
            );
            // Docker cleans patterns like paths: no leading `/` or `./`, no trailing `/`.
            let elements: Vec<String> = pattern
                .split('/')
                .filter(|e| !e.is_empty() && *e != ".")
                .map(String::from)
                .collect();
            assert!(!elements.is_empty(), "empty dockerignore pattern {line:?}");
            rules.push(Rule { elements, include });
        }
        DockerIgnore { rules }
    }

    /// Whether `path` (relative, `/`-separated) is in the build context.
    fn admits(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut admitted = true;
        for rule in &self.rules {
            // A pattern matching a parent directory matches everything under it.
            let matched = (1..=parts.len()).any(|n| matches(&rule.elements, &parts[..n]));
            if matched {
                admitted = rule.include;
            }
        }
        admitted
    }
}

/// Pattern elements against path elements; `**` matches zero or more elements.
fn matches(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| matches(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((p, path_rest)) => {
                glob(first.as_bytes(), p.as_bytes()) && matches(rest, path_rest)
            }
            None => false,
        },
    }
}

/// `*` (any run of characters) and `?` (one character) within one path element.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

#[test]
fn the_dockerignore_matcher_follows_dockers_rules() {
    let ig = DockerIgnore::parse(
        "# comment\n**\n!src/\n!/Cargo.toml\nsrc/**/*.bak\n!src/keep.bak\n*.md\n!docs/**/*.md\nweb/?.js\n",
    );
    for (path, admitted) in [
        ("Cargo.toml", true),
        ("Cargo.lock", false),
        ("src", true),
        ("src/main.rs", true),
        ("src/a/b/c.rs", true),
        ("src/x.bak", false),
        ("src/a/b/x.bak", false),
        ("src/keep.bak", true),
        ("README.md", false),
        ("docs/a.md", true),
        ("docs/x/y/a.md", true),
        ("docs/a.txt", false),
        ("target/debug/technic", false),
        (".git", false),
    ] {
        assert_eq!(ig.admits(path), admitted, "{path}");
    }
    // Without `**` everything is admitted unless a line excludes it.
    let ig = DockerIgnore::parse("target\n*/tmp\nweb/?.js\n");
    for (path, admitted) in [
        ("target/debug/x", false),
        ("src/main.rs", true),
        ("a/tmp/x", false),
        ("a/b/tmp", true),
        ("web/a.js", false),
        ("web/ab.js", true),
    ] {
        assert_eq!(ig.admits(path), admitted, "{path}");
    }
}

// ---------------------------------------------------------------- Dockerfile

/// The builder stage's `COPY SRC... DEST` lines (not `--from`): (sources, destination).
fn builder_copies(dockerfile: &str) -> Vec<(Vec<String>, String)> {
    let mut copies = Vec::new();
    let mut stage = 0;
    for line in dockerfile.lines().map(str::trim) {
        if line.starts_with("FROM ") {
            stage += 1;
            continue;
        }
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        if rest.contains("--from") {
            continue;
        }
        assert_eq!(
            stage, 1,
            "COPY from the context outside the builder stage: {line}"
        );
        assert!(
            !rest.starts_with('['),
            "JSON-form COPY is not supported here: {line}"
        );
        let mut words: Vec<String> = rest.split_whitespace().map(String::from).collect();
        assert!(
            words.iter().all(|w| !w.starts_with("--")),
            "COPY flags are not supported here: {line}"
        );
        let dest = words.pop().expect("COPY destination");
        assert!(!words.is_empty(), "COPY without a source: {line}");
        copies.push((words, dest));
    }
    copies
}

/// Every file the repository holds (tracked, or untracked and not git-ignored): what a
/// `docker build` from a checkout sees before the dockerignore.
fn repository_files() -> Vec<String> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "-z",
        ])
        .current_dir(repo())
        .output()
        .expect("run git ls-files");
    assert!(out.status.success(), "git ls-files: {:?}", out);
    String::from_utf8(out.stdout)
        .expect("UTF-8 paths")
        .split('\0')
        .filter(|p| !p.is_empty() && repo().join(p).is_file())
        .map(String::from)
        .collect()
}

/// Where the builder stage's COPY lines put the admitted files: path under WORKDIR → path
/// in the repository. Panics when a COPY source has nothing in the context.
fn image_source_tree() -> BTreeMap<String, String> {
    let ignore = DockerIgnore::parse(
        &std::fs::read_to_string(repo().join("docker/Dockerfile.dockerignore"))
            .expect("docker/Dockerfile.dockerignore"),
    );
    // Whatever else holds, the build output and the git data stay out of the context.
    for out in ["target/debug/technic", ".git", "target"] {
        assert!(!ignore.admits(out), "{out} is in the build context");
    }
    let context: Vec<String> = repository_files()
        .into_iter()
        .filter(|f| ignore.admits(f))
        .collect();
    let dockerfile = std::fs::read_to_string(repo().join("docker/Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains("WORKDIR /src"),
        "the builder works in /src"
    );
    let mut tree = BTreeMap::new();
    for (sources, dest) in builder_copies(&dockerfile) {
        let dest = dest
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        assert!(!dest.starts_with('/'), "COPY to {dest}: outside WORKDIR");
        let into_dir = sources.len() > 1 || dest.is_empty();
        for src in &sources {
            let src = src.trim_start_matches("./").trim_end_matches('/');
            let mut found = false;
            for file in &context {
                let target = if file == src {
                    // A file: to DEST, or into DEST/ when several sources or `./`.
                    if into_dir {
                        let name = file.rsplit('/').next().unwrap_or(file);
                        join(&dest, name)
                    } else {
                        dest.clone()
                    }
                } else if let Some(under) = file.strip_prefix(&format!("{src}/")) {
                    // A directory: its contents to DEST.
                    join(&dest, under)
                } else {
                    continue;
                };
                found = true;
                tree.insert(target, file.clone());
            }
            assert!(
                found,
                "COPY {src}: nothing of it is in the build context (docker/Dockerfile.dockerignore)"
            );
        }
    }
    tree
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[test]
fn the_crate_builds_from_the_image_context_alone() {
    let tree = image_source_tree();
    // Cargo only looks for a build script: one left out would silently not run.
    for script in ["build.rs"] {
        if repo().join(script).exists() {
            assert!(
                tree.contains_key(script),
                "{script} is not copied into the image"
            );
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for (to, from) in &tree {
        let dst = dir.path().join(to);
        std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
        std::fs::copy(repo().join(from), &dst).unwrap_or_else(|e| panic!("copy {from}: {e}"));
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let log = dir.path().join("cargo.log");
    // The build below replaces the suite's `target/debug/technic` with one built from the
    // copy: the same program, but the later tests would run it, and an instrumented run
    // (scripts/test.sh) would count their coverage against the copy's paths. Put the
    // suite's binary back afterwards.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_technic"));
    let saved = dir.path().join("technic.suite");
    std::fs::copy(&bin, &saved).expect("save the suite's binary");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // The binary the Dockerfile builds, in the dev profile: the same inputs, and the
    // dependencies the tests already compiled.
    let mut child = Command::new(cargo)
        .args([
            "build",
            "--offline",
            "--locked",
            "--bin",
            "technic",
            "--message-format",
            "short",
        ])
        .current_dir(dir.path())
        .env("CARGO_TARGET_DIR", &target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("run cargo");
    let status = wait_for(
        "cargo build in the image context",
        Duration::from_secs(900),
        || child.try_wait().expect("try_wait"),
    );
    let back = bin.with_extension("restoring");
    std::fs::copy(&saved, &back).expect("copy the suite's binary back");
    std::fs::rename(&back, &bin).expect("put the suite's binary back");
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success(),
        "the crate does not build from the Docker build context ({} files: {:?}):\n{output}",
        tree.len(),
        tree.keys().collect::<Vec<_>>()
    );
}

#[test]
fn every_included_file_is_in_the_image() {
    // What the build above proves, named: each `include_bytes!`/`include_str!` of the
    // sources (a literal path, or the directory of a `concat!("dir/", ...)`) is copied.
    let tree = image_source_tree();
    let mut stack = vec![repo().join("src")];
    let mut checked = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for m in ["include_bytes!(", "include_str!("] {
                for (at, _) in text.match_indices(m) {
                    let arg = &text[at + m.len()..];
                    let arg = arg.strip_prefix("concat!(").unwrap_or(arg);
                    let Some(lit) = arg.strip_prefix('"').and_then(|a| a.split('"').next()) else {
                        continue;
                    };
                    let from = path.parent().expect("dir").join(lit);
                    let mut rel = normalize(from.strip_prefix(repo()).unwrap_or(&from));
                    if lit.ends_with('/') {
                        rel.push('/');
                    }
                    let copied = tree.contains_key(&rel)
                        || (rel.ends_with('/') && tree.keys().any(|k| k.starts_with(&rel)));
                    assert!(
                        copied,
                        "{}: {m}\"{lit}\") reads {rel}, which is not in the image",
                        path.display()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 3, "found the included files ({checked})");
}

/// `a/b/../c` → `a/c`.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}
