//! A small YAML writer for `tortiectl get -o yaml`: block mappings and
//! sequences, scalars quoted whenever plain YAML could read them as
//! something else. What it writes, `tortiectl apply -f` reads back.

use serde_json::Value;

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
                out.push_str(&format!("{pad}{}:", scalar_str(k)));
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
        && !s.contains('\n')
        && s.parse::<f64>().is_err()
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "~" | "y" | "n"
        );
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
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
    fn sequences_of_mappings() {
        let v = serde_json::json!({"a": [{"x": 1, "z": "on"}, 2], "e": [], "m": {}});
        assert_eq!(
            to_string(&v),
            "a:\n  - x: 1\n    z: \"on\"\n  - 2\ne: []\nm: {}\n"
        );
    }
}
