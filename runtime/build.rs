//! Stamps the git commit into the build as `BTC_GIT_COMMIT` (the `revision` label of
//! `btc_build_info`): the value of `BTC_GIT_COMMIT` when the build is given one (a Docker build,
//! whose context has no `.git`, gets it as a build argument), else the HEAD of the checkout this
//! workspace is, else `unknown`. Cargo reruns this script when HEAD moves, and only then: the
//! files watched are the ones a commit, a checkout or a reset rewrites.

use std::path::{Path, PathBuf};
use std::process::Command;

const VARIABLE: &str = "BTC_GIT_COMMIT";

fn main() {
    println!("cargo::rerun-if-env-changed={VARIABLE}");
    let given = std::env::var(VARIABLE).ok().map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
    if let Some(commit) = &given {
        // The value lands in a `cargo::` line and a label: one word, no line breaks.
        let word = commit.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        assert!(word, "{VARIABLE}={commit:?}: expected a commit id (letters, digits, '-', '.', '_')");
    }
    let commit = given.or_else(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
        let repository = Repository::of(workspace)?;
        for path in repository.watched() {
            println!("cargo::rerun-if-changed={}", path.display());
        }
        repository.head()
    });
    println!("cargo::rustc-env={VARIABLE}={}", commit.as_deref().unwrap_or("unknown"));
}

/// The git repository whose top level is the workspace (not one that merely contains it, such as a
/// vendoring repository around an unpacked source tarball).
struct Repository {
    top: PathBuf,
    git_dir: PathBuf,
    common_dir: PathBuf,
}

impl Repository {
    fn of(workspace: &Path) -> Option<Self> {
        let said = git(workspace, &["rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir"])?;
        let mut lines = said.lines().map(PathBuf::from);
        let (top, git_dir, common_dir) = (lines.next()?, lines.next()?, lines.next()?);
        let same = |a: &Path, b: &Path| a.canonicalize().ok().is_some_and(|a| b.canonicalize().ok() == Some(a));
        if !same(&top, workspace) {
            return None;
        }
        // `--git-common-dir` is relative to the working directory when it is not absolute.
        let common_dir = if common_dir.is_absolute() { common_dir } else { workspace.join(common_dir) };
        Some(Self { top, git_dir, common_dir })
    }

    fn head(&self) -> Option<String> {
        git(&self.top, &["rev-parse", "HEAD"])
    }

    /// HEAD (which branch), the branch's ref file (loose) and packed-refs (where `git gc` moves
    /// it): whichever exists. A path that does not exist would make cargo rerun on every build.
    fn watched(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.git_dir.join("HEAD")];
        if let Some(branch) = git(&self.top, &["symbolic-ref", "-q", "HEAD"]) {
            paths.push(self.common_dir.join(branch.trim()));
        }
        paths.push(self.common_dir.join("packed-refs"));
        paths.into_iter().filter(|p| p.exists()).collect()
    }
}

/// The trimmed standard output of a successful `git` command; `None` when git is missing (the
/// Docker builder image has none) or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}
