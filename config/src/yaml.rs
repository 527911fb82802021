//! YAML text to typed structs, strictly.
//!
//! We parse with `yaml-rust2` (the parser the `config` crate uses) and
//! convert the tree to a `serde_json::Value`, whose deserializer never
//! coerces: through `config`'s own value layer `holdTime: 1.5` became 2 and
//! `enabled: 3` became `true`, which hides mistakes. `serde_path_to_error`
//! then gives every serde error the full path of the field.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;
use yaml_rust2::{Yaml, YamlLoader};

use crate::error::ConfigError;

/// Where each field of a document starts: `peers[1].holdTime` -> line.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    lines: HashMap<String, usize>,
}

/// Builds [`Lines`] from the parser's events.
#[derive(Default)]
struct LineCollector {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
}

/// An open collection while walking the events.
enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

/// Parses one YAML document into `T`, and returns where each field is so
/// that later validation errors can be located too. An empty document is an
/// empty map.
pub(crate) fn from_str_located<T: DeserializeOwned>(text: &str) -> Result<(T, Lines), ConfigError> {
    let lines = Lines::of(text);
    match from_str(text) {
        Ok(value) => Ok((value, lines)),
        Err(e) => Err(lines.locate(e)),
    }
}

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
    from_value(root)
}

/// Deserializes an already converted tree into `T`, giving serde errors
/// the full path of the field (`spec.cidr`).
pub(crate) fn from_value<T: DeserializeOwned>(root: Value) -> Result<T, ConfigError> {
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

/// One document of a multi-document (`---`) file.
#[derive(Debug)]
pub(crate) struct Document {
    /// The document as a strictly typed tree.
    pub value: Value,
    /// Where each of its fields is (lines of the whole file).
    pub lines: Lines,
    /// The 1-based line where the document starts.
    pub line: usize,
}

/// Parses every document of `text` (separated by `---`). Empty documents
/// (a trailing `---`, comments only) are left out.
pub(crate) fn documents(text: &str) -> Result<Vec<Document>, ConfigError> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
    let mut collector = DocumentCollector::default();
    let mut parser = Parser::new_from_str(text);
    // The loader above already accepted the text, so this parse succeeds.
    parser
        .load(&mut collector, true)
        .map_err(|e| ConfigError::Yaml(e.to_string()))?;
    let mut out = Vec::new();
    for (index, doc) in docs.iter().enumerate() {
        let (lines, line) = collector.docs.get(index).cloned().unwrap_or_default();
        if matches!(doc, Yaml::Null) {
            continue;
        }
        let lines = Lines { lines };
        let value = to_json(doc, "").map_err(|e| lines.locate(e))?;
        out.push(Document { value, lines, line });
    }
    Ok(out)
}

/// Per-document [`LineCollector`]s: one map of field lines per document.
#[derive(Default)]
struct DocumentCollector {
    current: LineCollector,
    start: usize,
    docs: Vec<(HashMap<String, usize>, usize)>,
}

impl MarkedEventReceiver for DocumentCollector {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::DocumentStart => {
                self.current = LineCollector::default();
                self.start = 0;
            }
            Event::DocumentEnd => {
                let done = std::mem::take(&mut self.current);
                self.docs.push((done.lines, self.start));
            }
            other => {
                // The document starts at its first node, not at `---`.
                if self.start == 0 {
                    self.start = mark.line();
                }
                self.current.on_event(other, mark)
            }
        }
    }
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

// ===== impl Lines =====

impl Lines {
    /// The lines of every field of `text`; empty if it does not parse.
    fn of(text: &str) -> Lines {
        let mut collector = LineCollector::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut collector, false).is_err() {
            return Lines::default();
        }
        Lines {
            lines: collector.lines,
        }
    }

    /// The line of `field`, or of the nearest enclosing field present.
    fn line_of(&self, field: &str) -> Option<usize> {
        let mut path = field;
        loop {
            if let Some(line) = self.lines.get(path) {
                return Some(*line);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }

    /// The line of `field` (or of its nearest enclosing field present).
    pub(crate) fn line(&self, field: &str) -> Option<usize> {
        self.line_of(field)
    }

    /// Wraps `error` in [`ConfigError::At`] when its field has a line.
    pub(crate) fn locate(&self, error: ConfigError) -> ConfigError {
        match error.field().and_then(|f| self.line_of(f)) {
            Some(line) if error.line().is_none() => ConfigError::At {
                line,
                error: Box::new(error),
            },
            _ => error,
        }
    }
}

// ===== impl LineCollector =====

impl LineCollector {
    /// The path of the node that starts now, inside the top frame.
    fn child_path(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Map {
                path,
                key: Some(key),
            }) if path.is_empty() => Some(key.clone()),
            Some(Frame::Map {
                path,
                key: Some(key),
            }) => Some(format!("{path}.{key}")),
            Some(Frame::Map { key: None, .. }) => None,
            Some(Frame::Seq { path, index }) => Some(format!("{path}[{index}]")),
        }
    }

    fn record(&mut self, path: &str, mark: &Marker) {
        if !path.is_empty() {
            self.lines.entry(path.to_string()).or_insert(mark.line());
        }
    }

    /// A value node ended: the map wants a key next, the list an index.
    fn advance(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { index, .. }) => *index += 1,
            None => {}
        }
    }
}

impl MarkedEventReceiver for LineCollector {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, ..) => match self.stack.last_mut() {
                Some(Frame::Map {
                    path,
                    key: key @ None,
                }) => {
                    let full = if path.is_empty() {
                        text.clone()
                    } else {
                        format!("{path}.{text}")
                    };
                    *key = Some(text);
                    self.record(&full, &mark);
                }
                _ => {
                    if let Some(path) = self.child_path() {
                        self.record(&path, &mark);
                    }
                    self.advance();
                }
            },
            Event::Alias(_) => self.advance(),
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // A complex key (a map used as a key) gets no path.
                let path = self.child_path().unwrap_or_else(|| "?".into());
                self.record(&path, &mark);
                self.stack
                    .push(if matches!(event, Event::MappingStart(..)) {
                        Frame::Map { path, key: None }
                    } else {
                        Frame::Seq { path, index: 0 }
                    });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.advance();
            }
            _ => {}
        }
    }
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
    fn fields_are_located() {
        let text = "a: 1\nlist:\n  - x: 1\n    y: [1, 2]\n  - x: 2\n\n    z:\n      deep: true\n";
        let lines = Lines::of(text);
        let want = [
            ("a", 1),
            ("list", 2),
            ("list[0]", 3),
            ("list[0].x", 3),
            ("list[0].y", 4),
            ("list[0].y[1]", 4),
            ("list[1].x", 5),
            ("list[1].z", 7),
            ("list[1].z.deep", 8),
            // Not in the file: the nearest enclosing field.
            ("list[1].w", 5),
        ];
        for (field, line) in want {
            assert_eq!(lines.line_of(field), Some(line), "{field}");
        }
        assert_eq!(lines.line_of("missing"), None);
        let e = from_str_located::<T>("a: 1\nb: true\nc: 3\n").unwrap_err();
        assert_eq!(
            (e.line(), e.to_string().as_str()),
            (Some(3), "c: unknown field `c`, expected `a` or `b`")
        );
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
