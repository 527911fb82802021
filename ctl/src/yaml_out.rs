//! A small YAML writer for `tortiectl get -o yaml`: block mappings and
//! sequences, scalars quoted whenever plain YAML could read them as
//! something else. What it writes, `tortiectl apply -f` reads back.

use serde_json::Value;

/// The longest key written as `key: value`. YAML (1.2 §7.4.2, "implicit
/// keys are restricted to a single line ... at most 1024 Unicode
/// characters") and its parsers refuse a longer one; a longer key is
/// written as an explicit `? key` (kept well under the limit, so that no
/// parser's way of counting matters).
const IMPLICIT_KEY_MAX: usize = 512;

/// The YAML text of `value` (a mapping at the top).
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write(value, 0, &mut out);
    out
}

fn write(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = scalar_str(k);
                if key.chars().count() > IMPLICIT_KEY_MAX {
                    // An explicit key: `? key` then `: value` below it.
                    out.push_str(&format!("{pad}? {key}\n{pad}:"));
                } else {
                    out.push_str(&format!("{pad}{key}:"));
                }
                block_or_inline(v, indent, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                out.push_str(&format!("{pad}-"));
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        // The first key on the dash's line, the rest below.
                        let mut inner = String::new();
                        write(v, indent + 2, &mut inner);
                        out.push(' ');
                        out.push_str(inner.trim_start());
                    }
                    _ => block_or_inline(v, indent, out),
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

/// After `key:` or `-`: a nested block on the next lines, or a scalar (or
/// empty collection) on the same line.
fn block_or_inline(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            write(v, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            write(v, indent + 2, out);
        }
        Value::Object(_) => out.push_str(" {}\n"),
        Value::Array(_) => out.push_str(" []\n"),
        s => {
            out.push(' ');
            out.push_str(&scalar(s));
            out.push('\n');
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar_str(s),
        _ => unreachable!("collections are written as blocks"),
    }
}

/// A string, quoted unless it reads back as the same plain string.
fn scalar_str(s: &str) -> String {
    let plain = !s.is_empty()
        && !s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@` ".contains(c))
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.contains(|c: char| c != ' ' && (c.is_whitespace() || c.is_control() || escaped(c)))
        && s.parse::<f64>().is_err()
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "~" | "y" | "n"
        );
    if plain {
        return s.to_string();
    }
    // JSON's string is a YAML double-quoted scalar, once the characters
    // YAML may not hold raw (and JSON leaves so) are escaped too.
    let mut out = String::with_capacity(s.len() + 2);
    for c in serde_json::to_string(s).unwrap_or_default().chars() {
        if escaped(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters JSON leaves raw that YAML must not hold raw: DEL and the
/// C1 controls (YAML 1.2 §5.1 prints none but NEL, a line break in YAML
/// 1.1), the line and paragraph separators, the byte order mark, and the
/// non-characters U+FFFE and U+FFFF.
fn escaped(c: char) -> bool {
    matches!(
        c,
        '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_reads_back_unchanged() {
        let text = "apiVersion: tortie.io/v1\nkind: BGPPeer\nmetadata:\n  name: tor\n  labels:\n    rack: \"1\"\nspec:\n  peerIP: 192.168.1.254:1179\n  asNumber: 65000\n  nodeSelector: rack == 'a'\n";
        let loaded = tortie_config::resources::load_documents(text).unwrap();
        let value = loaded.resources[0].to_value();
        let yaml = to_string(&value);
        let again = tortie_config::resources::load_documents(&yaml).unwrap();
        assert_eq!(again.resources, loaded.resources, "{yaml}");
        assert!(yaml.contains("    rack: \"1\"\n"), "{yaml}");
    }

    #[test]
    fn control_characters_read_back() {
        // Found by fuzz/ (resources_yaml): a NUL in a string was written
        // raw, and `apply -f` of the output lost it and the next field.
        let v = serde_json::json!({
            "apiVersion": "tortie.io/v1",
            "kind": "BGPPeer",
            "metadata": {"name": "tor", "annotations": {
                "nul": "2021-1\0-18", "del": "a\u{7f}b", "c1": "a\u{85}b\u{9f}",
                "tab": "a\tb\t", "cr": "a\rb", "ls": "a\u{2028}b", "bom": "\u{feff}a",
            }},
            "spec": {"peerIP": "192.168.1.254", "asNumber": 65000},
        });
        let yaml = to_string(&v);
        let again = tortie_config::resources::load_documents(&yaml)
            .unwrap_or_else(|e| panic!("{e}:\n{yaml}"));
        let got = serde_json::to_value(&again.resources[0].metadata().annotations).unwrap();
        assert_eq!(got, v["metadata"]["annotations"], "{yaml}");
    }

    #[test]
    fn long_keys_read_back() {
        // Found by fuzz/ (resources_yaml): a 1,200-character annotation key
        // was written as an implicit key, which YAML refuses past 1024.
        let long = format!("example.com/{}", "k".repeat(1200));
        let v = serde_json::json!({
            "apiVersion": "tortie.io/v1",
            "kind": "BGPPeer",
            "metadata": {"name": "tor", "annotations": {
                long.clone(): "v", "short": "w", "nested\t": "x",
            }},
            "spec": {"peerIP": "192.168.1.254", "asNumber": 65000},
        });
        let yaml = to_string(&v);
        assert!(yaml.contains(&format!("    ? {long}\n    : v\n")), "{yaml}");
        let again = tortie_config::resources::load_documents(&yaml)
            .unwrap_or_else(|e| panic!("{e}:\n{yaml}"));
        let got = serde_json::to_value(&again.resources[0].metadata().annotations).unwrap();
        assert_eq!(got, v["metadata"]["annotations"], "{yaml}");
        // In a sequence item too (the first key on the dash's line).
        let w = serde_json::json!({"a": [{long.clone(): 1, "z": 2}]});
        let yaml = to_string(&w);
        assert!(
            yaml.starts_with(&format!("a:\n  - ? {long}\n    : 1\n    z: 2\n")),
            "{yaml}"
        );
    }

    #[test]
    fn sequences_of_mappings() {
        let v = serde_json::json!({"a": [{"x": 1, "z": "on"}, 2], "e": [], "m": {}});
        assert_eq!(
            to_string(&v),
            "a:\n  - x: 1\n    z: \"on\"\n  - 2\ne: []\nm: {}\n"
        );
    }
}
