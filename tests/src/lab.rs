//! Helpers for the tests that drive real `tortie-node` agents in the lab
//! (`tortie_ctl::lab::Lab`): where the binaries are, unique lab names,
//! peer tables, pings that count what a change loses, the Calico
//! resources of a lab without the mesh, and `tortiectl apply` of more.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tortie_ctl::lab::{Lab, LabSpec};

/// Where tortie-node, tortie-cni, tortiectl and tortie-rr are:
/// `$TORTIE_LAB_BIN_DIR` (the qemu tier points it at release builds), else
/// the test executable's target dir (`cargo build --workspace --bins`
/// first; scripts/test.sh does).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TORTIE_LAB_BIN_DIR") {
        return dir.into();
    }
    let exe = std::env::current_exe().expect("test executable");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .to_path_buf()
}

/// A lab spec of `nodes` nodes named `<prefix><pid>x<n>` (unique in this
/// machine while this process lives), under `$TMPDIR/tortie-test-labs`.
pub fn spec(prefix: &str, nodes: usize) -> Result<LabSpec> {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let root = std::env::temp_dir().join("tortie-test-labs");
    let spec = LabSpec::new(&name, nodes, &root, &bin_dir());
    for bin in [&spec.node_bin, &spec.cni_bin] {
        if !bin.is_file() {
            bail!(
                "{} not found: `cargo build --workspace --bins` first (scripts/test.sh does)",
                bin.display()
            );
        }
    }
    Ok(spec)
}

/// Calico resources for a lab whose nodes peer only as told: the
/// `default` BGPConfiguration with the node-to-node mesh off, then a
/// BGPPeer per `(name, spec)`, `spec` its fields one a line as they stand
/// under `spec:` (indented here), e.g. [`crate::tor::rack_peer`].
pub fn mesh_off(peers: &[(&str, &str)]) -> String {
    let mut out = String::from(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\n\
         spec:\n  nodeToNodeMeshEnabled: false\n",
    );
    for (name, spec) in peers {
        out += &format!(
            "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: {name}\nspec:\n"
        );
        for line in spec.lines() {
            out += &format!("  {line}\n");
        }
    }
    out
}

/// `tortiectl apply -f` of `yaml`, written to `NAME.yaml` in the lab's
/// directory.
pub fn apply(lab: &Lab, name: &str, yaml: &str) -> Result<()> {
    let file = lab.spec.dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml)?;
    lab.tortiectl(&["apply", "-f", &file.display().to_string()])?;
    Ok(())
}

/// Node `i`'s peers, as its `/status` lists them.
pub fn peers(lab: &Lab, i: usize) -> Result<Vec<Value>> {
    let s = lab.node_status(i)?;
    s["peers"]
        .as_array()
        .cloned()
        .context("no peers in /status")
}

/// Starts `argv` inside namespace `ns`, its output appended to `log`.
/// The caller kills and reaps it (the lab's teardown also kills whatever
/// runs in its namespaces).
pub fn spawn_in(ns: &str, argv: &[&str], log: &Path) -> Result<Child> {
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {argv:?} in {ns}"))
}

/// Starts tortie-rr in `ns` with `config`; its state and log next to it.
pub fn start_tortie_rr(ns: &str, config: &Path) -> Result<Child> {
    let rr = bin_dir().join("tortie-rr");
    let state = config.with_extension("state");
    spawn_in(
        ns,
        &[
            &rr.display().to_string(),
            "--config",
            &config.display().to_string(),
            "--state-dir",
            &state.display().to_string(),
        ],
        &config.with_extension("log"),
    )
}

/// Pings pod `to` at 100 packets/s from every other pod, `count` each,
/// while `during` runs; returns (sent, received) per pinging pod
/// ([`Lab::ping_during`]).
pub fn ping_during(
    lab: &mut Lab,
    to: usize,
    count: u32,
    during: impl FnOnce(&mut Lab) -> Result<()>,
) -> Result<Vec<(u32, u32)>> {
    lab.ping_during(to, count, during)
}

/// [`ping_during`] that fails unless every packet came back.
pub fn no_loss_during(
    lab: &mut Lab,
    to: usize,
    count: u32,
    during: impl FnOnce(&mut Lab) -> Result<()>,
) -> Result<()> {
    let results = ping_during(lab, to, count, during)?;
    for (sent, received) in &results {
        if sent != received || *sent != count {
            bail!("packets lost: {results:?} (sent, received) per pinging pod");
        }
    }
    Ok(())
}
