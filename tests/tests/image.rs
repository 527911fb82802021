//! The image of `deploy/` (`scripts/image.sh`, `localhost/tortie:VERSION`)
//! loads into a real containerd with `ctr images import`, and its programs
//! run in a container made from it (runc): the image holds everything
//! they load. The workspace's debug binaries go in (`cargo build
//! --workspace --bins` first; scripts/test.sh does).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A containerd of the test's own (root, state, socket in a temp dir);
/// killed, its mounts and its directory removed, on drop.
struct Containerd {
    dir: PathBuf,
    child: Child,
}

/// A directory removed on drop, also when the test fails.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("containerd.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n[grpc]\n  address = \"{0}/containerd.sock\"\n",
                dir.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd {
            dir: dir.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.ctr(&["version"]).is_err() {
            assert!(
                Instant::now() < deadline,
                "containerd did not start: {}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(self.dir.join("containerd.sock"))
            .args(["-n", "k8s.io"])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "ctr {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Snapshots left mounted under the root.
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&*self.dir.to_string_lossy()))
            .collect();
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn the_image_loads_into_containerd_and_its_programs_run() {
    for tool in ["containerd", "ctr", "runc", "busybox", "nft"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            tortie_testkit::missing(
                "image",
                &format!("no {tool} (apt-get install containerd runc busybox-static nftables)"),
            );
            return;
        }
    }
    let dir = std::env::temp_dir().join(format!("tortie-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Dropped after the containerd below (declared first).
    let _scratch = Scratch(dir.clone());
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(repo.join("scripts/image.sh"))
        .arg("--bin-dir")
        .arg(tortie_tests::lab::bin_dir())
        .arg("--out")
        .arg(dir.join("image"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/image.sh: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    let tag = said
        .split('(')
        .nth(1)
        .and_then(|t| t.split(')').next())
        .expect("the script names the tag")
        .to_string();
    assert!(tag.starts_with("localhost/tortie:"), "{said}");

    let c = Containerd::start(&dir.join("containerd"));
    let tar = dir.join("image/tortie.tar").display().to_string();
    c.ctr(&["images", "import", &tar])
        .unwrap_or_else(|e| panic!("{e}"));
    let images = c.ctr(&["images", "ls", "-q"]).unwrap();
    assert!(images.lines().any(|l| l.contains(&tag)), "{images}");
    for (name, argv) in [
        ("t-node", vec!["/usr/local/bin/tortie-node", "--version"]),
        ("t-rr", vec!["/usr/local/bin/tortie-rr", "--version"]),
        ("t-ctl", vec!["/usr/local/bin/tortiectl", "--version"]),
        ("t-nft", vec!["/usr/sbin/nft", "--version"]),
        ("t-sh", vec!["/bin/sh", "-c", "echo image-ok"]),
    ] {
        let mut args = vec!["run", "--rm", &tag, name];
        args.extend(argv.iter());
        let got = c.ctr(&args).unwrap_or_else(|e| panic!("{e}\n{}", c.log()));
        assert!(!got.trim().is_empty(), "{name} printed nothing");
        if name == "t-sh" {
            assert_eq!(got.trim(), "image-ok");
        }
    }
}
