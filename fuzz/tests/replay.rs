//! The fuzz targets on stable, without libFuzzer: every committed seed
//! and every kept crash input (`fuzz/regressions/<target>/`) runs through
//! its target's body, then proptest feeds each target random inputs and
//! seeds with random octets changed. A crash found by `cargo fuzz` is
//! kept by copying its artifact into `regressions/<target>/`.
//!
//! `cargo test --manifest-path fuzz/Cargo.toml` (any toolchain).

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use tortie_fuzz::TARGETS;

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.map(|e| e.expect("a directory entry").path()).collect();
        paths.sort();
        out.extend(paths.iter().map(|p| fs::read(p).expect("an input file")));
    }
    out
}

fn body(target: &str) -> fn(&[u8]) {
    TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .map(|(_, f)| *f)
        .expect("a target")
}

#[test]
fn every_target_has_seeds() {
    for (name, _) in TARGETS {
        assert!(!inputs(name).is_empty(), "fuzz/seeds/{name}/ is empty");
    }
}

#[test]
fn seeds_and_regressions_pass() {
    for (name, run) in TARGETS {
        for input in inputs(name) {
            run(&input);
        }
    }
}

/// A seed of `target` with `edits` (index, octet) applied.
fn mutated(target: &str, which: usize, edits: &[(usize, u8)]) -> Vec<u8> {
    let seeds = inputs(target);
    let mut s = seeds[which % seeds.len()].clone();
    for (i, b) in edits {
        if !s.is_empty() {
            let n = s.len();
            s[i % n] = *b;
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_inputs(t in 0..TARGETS.len(), data in prop::collection::vec(any::<u8>(), 0..512)) {
        (TARGETS[t].1)(&data);
    }

    #[test]
    fn mutated_seeds(t in 0..TARGETS.len(), which in any::<usize>(), edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let name = TARGETS[t].0;
        body(name)(&mutated(name, which, &edits));
    }
}

/// The session seeds get where their names say (so that the fuzzer
/// starts from sessions that are up, not from connections the speaker
/// refused).
#[test]
fn session_seeds_reach_their_states() {
    use bgp_speaker::SessionState::*;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/bgp_session");
    let seed = |name: &str| fs::read(root.join(name)).expect("a seed");
    let status = |name: &str| tortie_fuzz::bgp_session::status_after(&seed(name));
    let peer = |name: &str, addr: &str| {
        let s = status(name);
        let addr: std::net::IpAddr = addr.parse().unwrap();
        s.peers
            .iter()
            .find(|p| p.address == addr)
            .cloned()
            .unwrap_or_else(|| panic!("{name}: no peer {addr}: {s:#?}"))
    };
    let p = peer("inbound-established-routes", "10.0.0.2");
    assert_eq!((p.state, p.prefixes_received), (Established, 3), "{p:#?}");
    let p = peer("outbound-dial-accepted", "10.0.0.2");
    assert_eq!((p.state, p.prefixes_received), (Established, 1), "{p:#?}");
    assert!(p.prefixes_advertised >= 2, "{p:#?}");
    let p = peer("collision-inbound-and-outbound", "10.0.0.2");
    assert_eq!(p.state, Established, "{p:#?}");
    let p = peer("hold-timer-expires", "10.0.0.2");
    assert!(p.last_error.as_deref().unwrap_or_default().contains("4/0"), "{p:#?}");
    let p = peer("graceful-restart-helper", "10.0.0.2");
    assert!(p.flaps >= 1, "{p:#?}");
    let p = peer("max-prefix-teardown", "10.0.0.2");
    assert!(p.last_error.as_deref().unwrap_or_default().contains("6/1"), "{p:#?}");
    let s = status("dynamic-peers-reflected");
    let up = s.peers.iter().filter(|p| p.state == Established).count();
    assert_eq!((up, s.loc_rib_prefixes), (2, 3), "{s:#?}");
    assert_eq!(s.refused.not_a_peer, 1, "{s:#?}");
    let p = peer("ebgp-loop-and-bad-next-hop", "10.0.0.2");
    assert_eq!(p.state, Established, "{p:#?}");
    let p = peer("reconfigured-while-up", "10.0.0.2");
    assert!(p.state != Established, "re-added, active: {p:#?}");
}

/// The resource and CNI seeds are valid input (the fuzzer mutates from
/// documents that load, not from errors).
#[test]
fn resource_and_cni_seeds_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for e in fs::read_dir(root.join("resources_yaml")).unwrap() {
        let path = e.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        let loaded = tortie_config::resources::load_documents(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!loaded.resources.is_empty(), "{}", path.display());
    }
    for e in fs::read_dir(root.join("cni_request")).unwrap() {
        let path = e.unwrap().path();
        let data = fs::read(&path).unwrap();
        let stdin = data.split(|b| *b == 0).next().unwrap();
        if !path.ends_with("version") {
            tortie_cni::config::NetConf::parse(stdin)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}
