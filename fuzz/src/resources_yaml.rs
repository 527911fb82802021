//! Target `resources_yaml`: the resource loader behind `resources.yaml`
//! (file datastore) and `tortiectl apply -f`: `load_documents` on a
//! multi-document YAML text of `projectcalico.org/v3` and `tortie.io/v1`
//! kinds, with the Calico compatibility table, strict serde, validation
//! and selectors.
//!
//! Input: the text (invalid UTF-8 replaced, as the fuzzer's mutations
//! make some).
//!
//! Checked, besides "no panic":
//! - an error names a line of the text (or the one after), if any;
//! - every loaded resource validates again to itself (validation has
//!   filled in every default already);
//! - `Resource::to_value` reads back unchanged with `Resource::from_value`
//!   and no warning (as its doc says), and so does its JSON text with
//!   `Resource::from_json` (how the datastores read records);
//! - `tortiectl get -o yaml` (`tortie_ctl::yaml_out`) writes it so that
//!   `load_documents` (`tortiectl apply -f`) reads it back unchanged.

use tortie_config::resources::{load_documents, Resource};

/// The target's body.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let loaded = match load_documents(&text) {
        Ok(l) => l,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            // yaml-rust2 marks an empty node at the very end (`!tag`,
            // `key:`) just past the last line break: one more line.
            if let Some(line) = e.line() {
                assert!(line >= 1 && line <= yaml_lines(&text) + 1, "line {line}: {e}");
            }
            return;
        }
    };
    for r in &loaded.resources {
        check(r);
    }
}

fn check(r: &Resource) {
    let mut again = r.clone();
    again.validate().expect("a loaded resource validates again");
    assert_eq!(&again, r, "validation is idempotent");

    let value = r.to_value();
    match Resource::from_value(value.clone()) {
        Ok((back, warnings)) => {
            assert_eq!(&back, r, "from_value(to_value) of {value}");
            assert!(warnings.is_empty(), "{warnings:?}");
        }
        Err(e) => panic!("{value} does not read back: {e}"),
    }
    match Resource::from_json(r.kind(), &value.to_string()) {
        Ok((back, _)) => assert_eq!(&back, r, "from_json(to_value) of {value}"),
        Err(e) => panic!("{value} as JSON does not read back: {e}"),
    }

    let yaml = tortie_ctl::yaml_out::to_string(&value);
    match load_documents(&yaml) {
        Ok(l) => assert_eq!(l.resources, [r.clone()], "through YAML:\n{yaml}"),
        Err(e) => panic!("tortiectl's YAML does not load: {e}\n{yaml}"),
    }
}

/// Lines as YAML counts them: a line break is CR LF, LF or a lone CR
/// (YAML 1.2 §5.4), and one past the last break counts.
fn yaml_lines(text: &str) -> usize {
    let b = text.as_bytes();
    let crs = (0..b.len())
        .filter(|i| b[*i] == b'\r' && b.get(i + 1) != Some(&b'\n'))
        .count();
    1 + b.iter().filter(|c| **c == b'\n').count() + crs
}
