//! YAML text to typed structs, strictly.
//!
//! We parse with `yaml-rust2` (the parser the `config` crate uses) and
//! convert the tree to a `serde_json::Value`, whose deserializer never
//! coerces: through `config`'s own value layer `holdTime: 1.5` became 2 and
//! `enabled: 3` became `true`, which hides mistakes. `serde_path_to_error`
//! then gives every serde error the full path of the field.

use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlLoader};

use crate::error::ConfigError;

/// Parses one YAML document into `T`. An empty document is an empty map.
pub(crate) fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let mut docs = YamlLoader::load_from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
    let root = match docs.len() {
        0 => Value::Object(Map::new()),
        1 => to_json(&docs.remove(0), "")?,
        n => {
            return Err(ConfigError::Yaml(format!(
                "found {n} documents (separated by ---), expected exactly one"
            )))
        }
    };
    if !root.is_object() {
        return Err(ConfigError::Yaml(
            "the top level must be a mapping (key: value lines)".into(),
        ));
    }
    serde_path_to_error::deserialize(root).map_err(|e| {
        let path = e.path().to_string();
        ConfigError::Schema {
            field: if path == "." {
                "(top level)".into()
            } else {
                path
            },
            message: e.into_inner().to_string(),
        }
    })
}

/// Converts a YAML node; `path` is where it sits, for errors.
fn to_json(node: &Yaml, path: &str) -> Result<Value, ConfigError> {
    let shown = |p: &str| {
        if p.is_empty() {
            "(top level)".to_string()
        } else {
            p.to_string()
        }
    };
    Ok(match node {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::Number(Number::from(*i)),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Real(text) => {
            let n = text
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .ok_or_else(|| ConfigError::Schema {
                    field: shown(path),
                    message: format!("{text} is not a finite number"),
                })?;
            Value::Number(n)
        }
        Yaml::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_json(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Hash(hash) => {
            let mut map = Map::new();
            for (key, value) in hash {
                let Yaml::String(key) = key else {
                    return Err(ConfigError::Schema {
                        field: shown(path),
                        message: format!("key {key:?} is not a string; keys are field names"),
                    });
                };
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                map.insert(key.clone(), to_json(value, &child)?);
            }
            Value::Object(map)
        }
        Yaml::Alias(_) | Yaml::BadValue => {
            return Err(ConfigError::Schema {
                field: shown(path),
                message: "YAML aliases and tags are not supported".into(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct T {
        a: u16,
        #[serde(default)]
        b: Option<bool>,
    }

    #[test]
    fn no_coercion_and_paths() {
        let cases: &[(&str, &str)] = &[
            (
                "a: 1.5",
                "a: invalid type: floating point `1.5`, expected u16",
            ),
            (
                "a: 1\nb: 3",
                "b: invalid type: integer `3`, expected a boolean",
            ),
            ("a: \"1\"", "a: invalid type: string \"1\", expected u16"),
            ("a: 1\nc: 2", "c: unknown field `c`, expected `a` or `b`"),
            ("b: true", "(top level): missing field `a`"),
            (
                "- 1",
                "not valid YAML: the top level must be a mapping (key: value lines)",
            ),
            (
                "a: 1\n---\na: 2",
                "not valid YAML: found 2 documents (separated by ---), expected exactly one",
            ),
            (
                "1: 1",
                "(top level): key Integer(1) is not a string; keys are field names",
            ),
        ];
        for (text, want) in cases {
            let got = from_str::<T>(text).unwrap_err().to_string();
            assert_eq!(&got, want, "input {text:?}");
        }
        assert_eq!(from_str::<T>("a: 7").unwrap(), T { a: 7, b: None });
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        let err = from_str::<T>("a: 1\n  b: [\n").unwrap_err().to_string();
        assert!(
            err.starts_with("not valid YAML: ") && err.contains("line 2"),
            "{err}"
        );
        let dup = from_str::<T>("a: 1\na: 2\n").unwrap_err().to_string();
        assert!(
            dup.contains("duplicated key") && dup.contains("line 2"),
            "{dup}"
        );
    }
}
