//! End-to-end tests of the real `tortie-rr` binary on 127.0.0.1: `--check`,
//! the admin endpoints, reloads (SIGHUP and file change), rejected reloads,
//! signals and the graceful restart marker. Peers are passive 127.0.0.x
//! addresses, so no packet leaves loopback.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const RELOAD_OK: &str = "tortie_rr_config_reloads_total{result=\"success\"}";
const RELOAD_ERR: &str = "tortie_rr_config_reloads_total{result=\"error\"}";

#[test]
fn check_accepts_a_good_file_and_names_the_field_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, rr_yaml(1179, 9180, &["127.0.0.2"], "")).unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&good)
        .arg("--check")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("OK (router id 127.0.0.1, AS 64512, 1 peers, 0 dynamic prefixes)"),
        "{stdout}"
    );

    let cases = [
        (
            rr_yaml(1179, 9180, &["127.0.0.2"], "").replace("holdTime: 9", "holdTime: 2"),
            "bad.yaml:9: peers[0].holdTime: 2: not allowed; use 0 (no keepalives) or 3..=65535 seconds",
        ),
        (
            rr_yaml(1179, 9180, &["127.0.0.2"], "").replace("holdTime: 9", "holdtime: 9"),
            "bad.yaml:9: peers[0].holdtime: unknown field `holdtime`, expected one of",
        ),
        (
            rr_yaml(1179, 9180, &[], "").replace("asNumber: 64512", "asNumber: 23456"),
            "bad.yaml:2: asNumber: 23456: AS_TRANS is reserved (RFC 6793)",
        ),
    ];
    for (text, want) in cases {
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, &text).unwrap();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&bad)
            .arg("--check")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}\n{stderr}");
        assert!(stderr.contains(want), "want {want:?} in {stderr:?}");
    }

    let missing = Command::new(BIN)
        .args(["--check", "--config", "/nonexistent/rr.yaml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read /nonexistent/rr.yaml"));
}

#[test]
fn invalid_file_at_start_exits_1_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rr.yaml");
    let text = rr_yaml(free_port(), free_port(), &["127.0.0.2"], "")
        .replace("routerId: 127.0.0.1", "routerId: 0.0.0.0");
    std::fs::write(&config, text).unwrap();
    let mut rr = Rr::start(dir.path(), &config, free_port(), &dir.path().join("state"));
    let status = rr.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{}", rr.log());
    assert!(
        rr.log()
            .contains("rr.yaml:1: routerId: 0.0.0.0: not a valid BGP identifier"),
        "{}",
        rr.log()
    );
}

#[test]
fn admin_endpoints_reloads_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port(), free_port());
    let config = dir.path().join("rr.yaml");
    std::fs::write(
        &config,
        rr_yaml(listen, admin, &["127.0.0.2", "127.0.0.3"], ""),
    )
    .unwrap();
    let state = dir.path().join("state");
    let mut rr = Rr::start(dir.path(), &config, admin, &state);
    rr.wait_ready();

    // Health, readiness, 404.
    assert_eq!(rr.get("/healthz"), (200, "ok\n".into()));
    assert_eq!(rr.get("/readyz"), (200, "ready\n".into()));
    assert_eq!(rr.get("/nope").0, 404);

    // /status: the configured peers, not yet Established.
    let status = rr.status();
    assert_eq!(status["routerId"], "127.0.0.1");
    assert_eq!(status["asNumber"], 64512);
    assert_eq!(status["clusterId"], "127.0.0.1");
    assert_eq!(status["config"]["restarting"], false);
    assert_eq!(rr.peer_addresses(), vec!["127.0.0.2", "127.0.0.3"]);
    for peer in status["peers"].as_array().unwrap() {
        assert_eq!(peer["asn"], 64512);
        assert_eq!(peer["client"], true);
        let state = peer["state"].as_str().unwrap();
        assert!(["Idle", "Connect", "Active"].contains(&state), "{peer}");
        for field in [
            "sinceUnix",
            "prefixesReceived",
            "prefixesAdvertised",
            "lastError",
        ] {
            assert!(peer.get(field).is_some(), "{field} missing in {peer}");
        }
    }

    // /metrics: every family, with the peer labels.
    let (code, metrics) = rr.get("/metrics");
    assert_eq!(code, 200);
    for peer in ["127.0.0.2", "127.0.0.3"] {
        let labels = format!("{{peer=\"{peer}\",asn=\"64512\"}}");
        let state = metric_value(&metrics, &format!("tortie_bgp_peer_state{labels}"))
            .unwrap_or_else(|| panic!("no state for {peer} in:\n{metrics}"));
        assert!((1.0..=3.0).contains(&state), "state {state} of {peer}");
        for name in [
            "tortie_bgp_prefixes_received",
            "tortie_bgp_prefixes_advertised",
            "tortie_bgp_updates_received_total",
            "tortie_bgp_updates_sent_total",
            "tortie_bgp_peer_flaps_total",
        ] {
            assert!(
                metric_value(&metrics, &format!("{name}{labels}")).is_some(),
                "{name}{labels} missing:\n{metrics}"
            );
        }
    }
    assert!(
        metric_value(&metrics, "tortie_bgp_loc_rib_prefixes").is_some(),
        "{metrics}"
    );
    assert_eq!(metric_value(&metrics, RELOAD_OK), Some(0.0));
    assert_eq!(metric_value(&metrics, RELOAD_ERR), Some(0.0));

    // SIGHUP reloads even an unchanged file.
    rr.signal("HUP");
    wait_until(Duration::from_secs(10), "a SIGHUP reload", || {
        rr.metric(RELOAD_OK) == Some(1.0)
    });

    // One more peer, then SIGHUP: /status shows it.
    let three = rr_yaml(listen, admin, &["127.0.0.2", "127.0.0.3", "127.0.0.4"], "");
    std::fs::write(&config, &three).unwrap();
    rr.signal("HUP");
    wait_until(Duration::from_secs(10), "the third peer", || {
        rr.peer_addresses().len() == 3
    });
    assert_eq!(
        rr.peer_addresses(),
        vec!["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    );

    // A file change alone (replaced by rename, as editors do) is picked up.
    let oks = rr.metric(RELOAD_OK).unwrap();
    write_atomically(
        &config,
        &rr_yaml(listen, admin, &["127.0.0.2", "127.0.0.4"], ""),
    );
    wait_until(Duration::from_secs(10), "the file-change reload", || {
        rr.peer_addresses() == vec!["127.0.0.2", "127.0.0.4"]
    });
    assert!(rr.metric(RELOAD_OK).unwrap() > oks);

    // An invalid file: the process stays, /status is unchanged, the error
    // is counted and logged with the field.
    let before = rr.status()["peers"].clone();
    write_atomically(&config, &three.replace("127.0.0.4", "127.0.0.2"));
    rr.signal("HUP");
    wait_until(Duration::from_secs(10), "a counted reload error", || {
        rr.metric(RELOAD_ERR).unwrap_or(0.0) >= 1.0
    });
    assert!(
        rr.child.try_wait().unwrap().is_none(),
        "exited on a bad reload:\n{}",
        rr.log()
    );
    assert_eq!(rr.status()["peers"], before);
    assert_eq!(rr.get("/healthz").0, 200);
    wait_until(
        Duration::from_secs(5),
        "the reload error in the log",
        || {
            rr.log()
                .contains("peers[2].address: 127.0.0.2: already used by peers[0]")
        },
    );

    // The graceful restart marker exists while running.
    assert!(state.join("running").exists());

    // SIGTERM: graceful shutdown, exit 0, marker kept for the next start.
    rr.signal("TERM");
    let exit = rr.wait_exit(Duration::from_secs(20));
    assert_eq!(exit.code(), Some(0), "{}", rr.log());
    assert!(
        state.join("running").exists(),
        "graceful exit keeps the marker"
    );
}

#[test]
fn graceful_restart_marker_sets_the_restart_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port(), free_port());
    let config = dir.path().join("rr.yaml");
    let state = dir.path().join("state");
    std::fs::write(&config, rr_yaml(listen, admin, &["127.0.0.2"], "")).unwrap();

    // First start: no marker, so not restarting; SIGINT is graceful too.
    let mut first = Rr::start(dir.path(), &config, admin, &state);
    first.wait_ready();
    assert_eq!(first.status()["config"]["restarting"], false);
    first.signal("INT");
    assert_eq!(
        first.wait_exit(Duration::from_secs(20)).code(),
        Some(0),
        "{}",
        first.log()
    );
    assert!(state.join("running").exists());

    // Second start within the restart time: restarting (R bit).
    let mut second = Rr::start(dir.path(), &config, admin, &state);
    second.wait_ready();
    assert_eq!(
        second.status()["config"]["restarting"],
        true,
        "{}",
        second.log()
    );
    second.signal("TERM");
    assert_eq!(second.wait_exit(Duration::from_secs(20)).code(), Some(0));
    let marker = std::fs::read_to_string(state.join("running")).unwrap();
    assert!(
        marker.contains(&format!(
            "owner router-id 127.0.0.1 config {}",
            config.canonicalize().unwrap().display()
        )),
        "{marker}"
    );

    // Another configuration file with the same state directory: the
    // marker is not its own, so it starts fresh (and says why).
    let other = dir.path().join("other.yaml");
    std::fs::copy(&config, &other).unwrap();
    let mut stranger = Rr::start(dir.path(), &other, admin, &state);
    stranger.wait_ready();
    assert_eq!(stranger.status()["config"]["restarting"], false);
    assert!(
        stranger
            .log()
            .contains("the graceful restart marker is another's"),
        "{}",
        stranger.log()
    );
    stranger.signal("TERM");
    assert_eq!(stranger.wait_exit(Duration::from_secs(20)).code(), Some(0));
    // It left its own marker: the first configuration is the stranger now.
    let mut back = Rr::start(dir.path(), &config, admin, &state);
    back.wait_ready();
    assert_eq!(back.status()["config"]["restarting"], false);
    back.signal("TERM");
    assert_eq!(back.wait_exit(Duration::from_secs(20)).code(), Some(0));

    // A marker older than the restart time does not count.
    let old = std::time::SystemTime::now() - Duration::from_secs(600);
    std::fs::File::options()
        .write(true)
        .open(state.join("running"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let mut third = Rr::start(dir.path(), &config, admin, &state);
    third.wait_ready();
    assert_eq!(third.status()["config"]["restarting"], false);

    // Graceful restart switched off by a reload: the marker goes away, and
    // the exit is a hard one that leaves no marker.
    write_atomically(
        &config,
        &rr_yaml(
            listen,
            admin,
            &["127.0.0.2"],
            "gracefulRestart:\n  enabled: false\n",
        ),
    );
    third.signal("HUP");
    wait_until(Duration::from_secs(15), "the marker removal", || {
        !state.join("running").exists()
    });
    third.signal("TERM");
    assert_eq!(third.wait_exit(Duration::from_secs(20)).code(), Some(0));
    assert!(!state.join("running").exists());
}

#[test]
fn in_place_edit_of_a_symlinked_file_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port(), free_port());
    let real_dir = dir.path().join("real");
    let link_dir = dir.path().join("etc");
    std::fs::create_dir_all(&real_dir).unwrap();
    std::fs::create_dir_all(&link_dir).unwrap();
    let target = real_dir.join("rr.yaml");
    let link = link_dir.join("rr.yaml");
    std::fs::write(&target, rr_yaml(listen, admin, &["127.0.0.2"], "")).unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let mut rr = Rr::start(dir.path(), &link, admin, &dir.path().join("state"));
    rr.wait_ready();
    assert_eq!(rr.peer_addresses(), vec!["127.0.0.2"]);
    // No signal: only the watch on the target's directory can see this.
    std::fs::write(
        &target,
        rr_yaml(listen, admin, &["127.0.0.2", "127.0.0.5"], ""),
    )
    .unwrap();
    wait_until(
        Duration::from_secs(10),
        "the reload through the symlink",
        || rr.peer_addresses() == vec!["127.0.0.2", "127.0.0.5"],
    );
    assert!(
        rr.log().contains("+127.0.0.5"),
        "the reload names the added peer:\n{}",
        rr.log()
    );
}

#[test]
fn busy_admin_port_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = busy.local_addr().unwrap().port();
    let config = dir.path().join("rr.yaml");
    std::fs::write(&config, rr_yaml(free_port(), admin, &["127.0.0.2"], "")).unwrap();
    let mut rr = Rr::start(dir.path(), &config, admin, &dir.path().join("state"));
    assert_eq!(
        rr.wait_exit(Duration::from_secs(10)).code(),
        Some(1),
        "{}",
        rr.log()
    );
    let want = format!("admin: cannot listen on 127.0.0.1:{admin}");
    assert!(rr.log().contains(&want), "want {want:?} in:\n{}", rr.log());
}
