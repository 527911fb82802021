//! Snapshot tests: desired state + kernel dump -> warnings and Plan.
//!
//! Each folder under `tests/snapshots/` holds `description.txt`,
//! `desired.json` (a [`DesiredState`]), `kernel.json` (the dump of our
//! protocol, a list of [`InstalledRoute`]) and `expected.txt` (warnings, then
//! the plan, one `ip route`-style line each). `UPDATE_SNAPSHOTS=1` rewrites
//! `expected.txt`; review that diff.

use std::fs;
use std::path::Path;

use felix::desired::{compute, DesiredState};
use felix::diff::diff;
use felix::route::InstalledRoute;

fn render(dir: &Path) -> String {
    let desired: DesiredState =
        serde_json::from_str(&fs::read_to_string(dir.join("desired.json")).unwrap())
            .unwrap_or_else(|e| panic!("{}/desired.json: {e}", dir.display()));
    let kernel: Vec<InstalledRoute> =
        serde_json::from_str(&fs::read_to_string(dir.join("kernel.json")).unwrap())
            .unwrap_or_else(|e| panic!("{}/kernel.json: {e}", dir.display()));
    let routes = compute(&desired);
    let plan = diff(routes.routes.values().map(|c| &c.route), &kernel);
    let mut out = String::from("# warnings\n");
    for w in &routes.warnings {
        out.push_str(&format!("{w}\n"));
    }
    out.push_str("# plan\n");
    out.push_str(&plan.to_string());
    out
}

#[test]
fn snapshots() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut cases: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 4,
        "snapshot cases missing in {}",
        root.display()
    );
    let mut failed = Vec::new();
    for dir in cases {
        let got = render(&dir);
        let path = dir.join("expected.txt");
        if update {
            fs::write(&path, &got).unwrap();
            continue;
        }
        let want = fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            eprintln!("--- {} expected\n{want}--- got\n{got}", dir.display());
            failed.push(dir);
        }
    }
    assert!(
        failed.is_empty(),
        "snapshot mismatch: {failed:?} (UPDATE_SNAPSHOTS=1 to rewrite)"
    );
}
