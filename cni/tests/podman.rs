//! A real container runtime: podman 4.3 with its CNI backend runs a
//! busybox container (a local rootfs, no registry) on a Tortie network;
//! the host reaches it via its /32 route and via a hostPort (portmap
//! chained in the same conflist); `podman rm` runs DEL.

#[path = "../../ipam/tests/common/mod.rs"]
mod common;
mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, pool, Backend};
use support::{host_link_exists, tcp_read};
use tortie_config::resources::{HandleSpec, WorkloadEndpointSpec};
use tortie_datastore::TypedStore;

/// podman with the flags podman 4.3 needs here (the CNI network backend,
/// runc, cgroupfs, file-descriptor and process limits within the hard
/// limits, a busybox rootfs: no registry), in its own storage.
struct Podman {
    dir: tempfile::TempDir,
    container: String,
}

impl Podman {
    fn cmd(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .args(["--runtime", "runc", "--cgroup-manager=cgroupfs"]);
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("spawn podman");
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["rm", "-f", "-t", "0", &self.container])
            .output();
    }
}

fn missing_tools() -> Option<&'static str> {
    for (tool, why) in [
        ("podman", "apt-get install podman"),
        ("runc", "apt-get install runc"),
    ] {
        if Command::new(tool).arg("--version").output().is_err() {
            tortie_testkit::missing("podman test", &format!("no {tool} ({why})"));
            return Some(tool);
        }
    }
    for (file, why) in [
        ("/bin/busybox", "apt-get install busybox-static"),
        (
            "/usr/lib/cni/portmap",
            "apt-get install containernetworking-plugins",
        ),
    ] {
        if !Path::new(file).exists() {
            tortie_testkit::missing("podman test", &format!("no {file} ({why})"));
            return Some(file);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_container_on_tortie_network() {
    if missing_tools().is_some() {
        return;
    }
    let b = Backend::file(&[pool("p", "10.65.0.0/24", 26)]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A busybox root: the binary and the applets we run.
    std::fs::create_dir_all(d.join("rootfs/bin")).unwrap();
    std::fs::copy("/bin/busybox", d.join("rootfs/bin/busybox")).unwrap();
    for applet in ["sh", "nc", "echo", "sleep"] {
        std::os::unix::fs::symlink("busybox", d.join("rootfs/bin").join(applet)).unwrap();
    }
    // Plugins: ours under its type name, portmap from Debian.
    std::fs::create_dir_all(d.join("plugins")).unwrap();
    std::fs::create_dir_all(d.join("net")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_tortie-cni"), d.join("plugins/tortie")).unwrap();
    std::os::unix::fs::symlink("/usr/lib/cni/portmap", d.join("plugins/portmap")).unwrap();
    let net = format!("tortpod{}", std::process::id());
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": net,
        "plugins": [
            {"type": "tortie", "nodeName": "node-a",
             "datastore": serde_json::to_value(&b.config).unwrap()},
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    });
    std::fs::write(d.join("net/tortie.conflist"), conflist.to_string()).unwrap();
    std::fs::write(
        d.join("containers.conf"),
        format!(
            "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\"]\nnetwork_config_dir = \"{}\"\n",
            d.join("plugins").display(),
            d.join("net").display()
        ),
    )
    .unwrap();
    let name = format!("tcni-pod-{}", std::process::id());
    let podman = Podman {
        dir,
        container: name.clone(),
    };
    let host_port = free_port();
    let started = Instant::now();
    podman.run(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        &net,
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "-p",
        &format!("{host_port}:7200/tcp"),
        "--rootfs",
        &podman.dir.path().join("rootfs").display().to_string(),
        "/bin/sh",
        "-c",
        "while true; do nc -l -p 7200 -e echo hello-from-podman; done",
    ]);
    eprintln!("podman run took {:?}", started.elapsed());
    let ip: IpAddr = podman
        .run(&[
            "inspect",
            &name,
            "--format",
            &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        ])
        .parse()
        .expect("an IP address from podman inspect");
    assert!(ip.to_string().starts_with("10.65.0."), "{ip}");

    // The endpoint the agent will route from.
    let weps = b.store.list_typed::<WorkloadEndpointSpec>().await.unwrap();
    assert_eq!(weps.len(), 1);
    let hif = weps[0].0.spec.interface_name.clone();
    assert!(host_link_exists(&hif));
    assert_eq!(weps[0].0.spec.ip_networks[0].addr(), ip);

    // From the host via the /32 route (retry while the shell starts nc).
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        match tcp_read(SocketAddr::new(ip, 7200)) {
            Ok(r) if !r.is_empty() => break r,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("container not reachable at {ip}:7200: {other:?}"),
        }
    };
    assert_eq!(reply.trim(), "hello-from-podman");
    // Through portmap's hostPort.
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        match tcp_read(SocketAddr::from(([127, 0, 0, 1], host_port))) {
            Ok(r) if !r.is_empty() => break r,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("hostPort {host_port} does not reach the container: {other:?}"),
        }
    };
    assert_eq!(reply.trim(), "hello-from-podman");

    // podman rm runs DEL: pair, address and endpoint gone.
    podman.run(&["rm", "-f", "-t", "0", &name]);
    assert!(!host_link_exists(&hif));
    assert!(b.store.list_typed::<HandleSpec>().await.unwrap().is_empty());
    assert!(b
        .store
        .list_typed::<WorkloadEndpointSpec>()
        .await
        .unwrap()
        .is_empty());
}
