//! What Tortie's test suites share.
//!
//! A test that cannot run here says so on the process's real standard
//! error: libtest captures `print!`/`eprint!` of a passing test, so a skip
//! written with `eprintln!` reads as a pass that checked nothing. A skip
//! for a missing tool (a binary, a package, root) fails instead under
//! `CI=true`, where `.ci/run` installs everything the suite needs; a skip
//! that is right everywhere (a kernel that has, or lacks, a module the
//! test is about; tests the user turned off) only says why.

use std::io::Write as _;

pub mod capture;
pub mod frr;
pub mod k8s;
pub mod netns;
mod port;

pub use port::free_port;

/// Whether this is CI (`CI=true`).
pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// `test` (or a part of it) cannot run for want of a tool: `why` says which
/// and how to get it. Prints `SKIP test: why` to the real stderr; under
/// `CI=true` panics with it instead.
pub fn missing(test: &str, why: &str) {
    if ci() {
        panic!("{test}: {why} (CI=true: a missing tool is a failure, not a skip)");
    }
    say(test, why);
}

/// `test` (or a part of it) does not apply here, wherever it runs (not a
/// missing tool): prints `SKIP test: why` to the real stderr.
pub fn skip(test: &str, why: &str) {
    say(test, why);
}

fn say(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_fails_under_ci_and_is_said_otherwise() {
        // The environment is the process's: run the check in a child.
        if std::env::var("TESTKIT_CHILD").is_ok() {
            missing("child", "no such tool");
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let run = |ci: &str| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "tests::a_missing_tool_fails_under_ci_and_is_said_otherwise",
                    "--nocapture",
                ])
                .env("TESTKIT_CHILD", "1")
                .env("CI", ci)
                .output()
                .unwrap()
        };
        let under_ci = run("true");
        assert!(!under_ci.status.success(), "fails under CI=true");
        assert!(
            String::from_utf8_lossy(&under_ci.stdout).contains("a missing tool is a failure")
                || String::from_utf8_lossy(&under_ci.stderr)
                    .contains("a missing tool is a failure")
        );
        let here = run("");
        assert!(here.status.success());
        assert!(String::from_utf8_lossy(&here.stderr).contains("SKIP child: no such tool"));
    }
}
