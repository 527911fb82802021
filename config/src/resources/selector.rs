//! Label selectors as Calico writes them: `rack == 'r1'`, `rack != 'r1'`,
//! `has(route-reflector)`, `!has(x)`, `all()`, `k in {'a','b'}`,
//! `k not in {'a'}`, `k contains 's'`, `k starts with 's'`,
//! `k ends with 's'`, joined with `&&`, `||`, `!` and parentheses (`&&`
//! binds tighter than `||`). An empty selector selects everything.
//!
//! As in Calico, `k != 'v'` and `k not in {...}` also match objects
//! without the label `k`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A parsed selector; keeps its text for display and serialization.
#[derive(Clone, Debug)]
pub struct Selector {
    text: String,
    expr: Expr,
}

/// Why a selector did not parse; `column` is 1-based, in characters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("selector {text:?}: column {column}: {message}")]
pub struct SelectorError {
    /// The selector as written.
    pub text: String,
    /// Where the problem is (1-based, characters).
    pub column: usize,
    /// What was expected there.
    pub message: String,
}

/// The parsed expression.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    All,
    Has(String),
    Eq(String, String),
    Ne(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Contains(String, String),
    StartsWith(String, String),
    EndsWith(String, String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// One token and the column it starts at.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Str(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    EqEq,
    NotEq,
    Bang,
    AndAnd,
    OrOr,
    End,
}

/// Recursive-descent parser over the tokens.
struct Parser<'a> {
    text: &'a str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
}

// ===== impl Selector =====

impl Selector {
    /// `all()`: selects everything.
    pub fn all() -> Selector {
        Selector {
            text: "all()".into(),
            expr: Expr::All,
        }
    }

    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        if text.trim().is_empty() {
            return Ok(Selector {
                text: text.to_string(),
                expr: Expr::All,
            });
        }
        let toks = tokenize(text)?;
        let mut p = Parser { text, toks, pos: 0 };
        let expr = p.or()?;
        match p.peek() {
            (Tok::End, _) => Ok(Selector {
                text: text.to_string(),
                expr,
            }),
            (tok, col) => Err(p.error(
                col,
                format!("unexpected {} after a complete expression", describe(&tok)),
            )),
        }
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.expr.eval(labels)
    }

    /// The selector as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Selector {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Selector::parse(&text).map_err(serde::de::Error::custom)
    }
}

// ===== impl Expr =====

impl Expr {
    fn eval(&self, labels: &BTreeMap<String, String>) -> bool {
        let get = |k: &String| labels.get(k);
        match self {
            Expr::All => true,
            Expr::Has(k) => labels.contains_key(k),
            Expr::Eq(k, v) => get(k) == Some(v),
            Expr::Ne(k, v) => get(k) != Some(v),
            Expr::In(k, set) => get(k).is_some_and(|v| set.contains(v)),
            Expr::NotIn(k, set) => !get(k).is_some_and(|v| set.contains(v)),
            Expr::Contains(k, s) => get(k).is_some_and(|v| v.contains(s.as_str())),
            Expr::StartsWith(k, s) => get(k).is_some_and(|v| v.starts_with(s.as_str())),
            Expr::EndsWith(k, s) => get(k).is_some_and(|v| v.ends_with(s.as_str())),
            Expr::Not(e) => !e.eval(labels),
            Expr::And(a, b) => a.eval(labels) && b.eval(labels),
            Expr::Or(a, b) => a.eval(labels) || b.eval(labels),
        }
    }
}

// ===== impl Parser =====

impl Parser<'_> {
    fn peek(&self) -> (Tok, usize) {
        self.toks[self.pos.min(self.toks.len() - 1)].clone()
    }

    fn next(&mut self) -> (Tok, usize) {
        let t = self.peek();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn error(&self, column: usize, message: impl Into<String>) -> SelectorError {
        SelectorError {
            text: self.text.to_string(),
            column,
            message: message.into(),
        }
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<(), SelectorError> {
        let (tok, col) = self.next();
        if tok == want {
            Ok(())
        } else {
            Err(self.error(col, format!("expected {what}, found {}", describe(&tok))))
        }
    }

    fn or(&mut self) -> Result<Expr, SelectorError> {
        let mut left = self.and()?;
        while self.peek().0 == Tok::OrOr {
            self.next();
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, SelectorError> {
        let mut left = self.unary()?;
        while self.peek().0 == Tok::AndAnd {
            self.next();
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, SelectorError> {
        if self.peek().0 == Tok::Bang {
            self.next();
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, SelectorError> {
        let (tok, col) = self.next();
        match tok {
            Tok::LParen => {
                let e = self.or()?;
                self.expect(Tok::RParen, "')'")?;
                Ok(e)
            }
            Tok::Word(w) if w == "all" && self.peek().0 == Tok::LParen => {
                self.next();
                self.expect(Tok::RParen, "')' (all() takes no argument)")?;
                Ok(Expr::All)
            }
            Tok::Word(w) if w == "has" && self.peek().0 == Tok::LParen => {
                self.next();
                let key = match self.next() {
                    (Tok::Word(k), _) => k,
                    (t, c) => {
                        return Err(self.error(
                            c,
                            format!("expected a label key inside has(), found {}", describe(&t)),
                        ))
                    }
                };
                self.expect(Tok::RParen, "')'")?;
                Ok(Expr::Has(key))
            }
            Tok::Word(key) => self.comparison(key),
            other => Err(self.error(
                col,
                format!(
                    "expected a label key, has(...), all(), '!' or '(', found {}",
                    describe(&other)
                ),
            )),
        }
    }

    /// After a label key: the operator and its operand.
    fn comparison(&mut self, key: String) -> Result<Expr, SelectorError> {
        let (op, col) = self.next();
        match op {
            Tok::EqEq => Ok(Expr::Eq(key, self.string()?)),
            Tok::NotEq => Ok(Expr::Ne(key, self.string()?)),
            Tok::Word(w) if w == "in" => Ok(Expr::In(key, self.set()?)),
            Tok::Word(w) if w == "not" => {
                self.expect(Tok::Word("in".into()), "'in' after 'not'")?;
                Ok(Expr::NotIn(key, self.set()?))
            }
            Tok::Word(w) if w == "contains" => Ok(Expr::Contains(key, self.string()?)),
            Tok::Word(w) if w == "starts" => {
                self.expect(Tok::Word("with".into()), "'with' after 'starts'")?;
                Ok(Expr::StartsWith(key, self.string()?))
            }
            Tok::Word(w) if w == "ends" => {
                self.expect(Tok::Word("with".into()), "'with' after 'ends'")?;
                Ok(Expr::EndsWith(key, self.string()?))
            }
            other => Err(self.error(
                col,
                format!(
                    "expected ==, !=, in, not in, contains, starts with or ends with after label key {key:?}, found {}",
                    describe(&other)
                ),
            )),
        }
    }

    fn string(&mut self) -> Result<String, SelectorError> {
        match self.next() {
            (Tok::Str(s), _) => Ok(s),
            (Tok::Word(w), c) => Err(self.error(
                c,
                format!("expected a quoted value, found {w}; write '{w}'"),
            )),
            (t, c) => Err(self.error(
                c,
                format!("expected a quoted value, found {}", describe(&t)),
            )),
        }
    }

    fn set(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        self.expect(Tok::LBrace, "'{' starting a set of values")?;
        let mut set = BTreeSet::new();
        if self.peek().0 == Tok::RBrace {
            self.next();
            return Ok(set);
        }
        loop {
            set.insert(self.string()?);
            match self.next() {
                (Tok::Comma, _) => continue,
                (Tok::RBrace, _) => return Ok(set),
                (t, c) => {
                    return Err(
                        self.error(c, format!("expected ',' or '}}', found {}", describe(&t)))
                    )
                }
            }
        }
    }
}

// ===== helpers =====

/// Characters of a label key (Kubernetes: alphanumerics, `-`, `_`, `.`, and
/// one `/` after a DNS prefix).
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn tokenize(text: &str) -> Result<Vec<(Tok, usize)>, SelectorError> {
    let chars: Vec<char> = text.chars().collect();
    let err = |column: usize, message: String| SelectorError {
        text: text.to_string(),
        column,
        message,
    };
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let two = |a: char, b: char| c == a && chars.get(i + 1) == Some(&b);
        let (tok, len) = match c {
            _ if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '{' => (Tok::LBrace, 1),
            '}' => (Tok::RBrace, 1),
            ',' => (Tok::Comma, 1),
            _ if two('=', '=') => (Tok::EqEq, 2),
            _ if two('!', '=') => (Tok::NotEq, 2),
            _ if two('&', '&') => (Tok::AndAnd, 2),
            _ if two('|', '|') => (Tok::OrOr, 2),
            '!' => (Tok::Bang, 1),
            '\'' | '"' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|d| *d == c)
                    .ok_or_else(|| err(col, format!("string starting here has no closing {c}")))?;
                let s: String = chars[i + 1..i + 1 + end].iter().collect();
                (Tok::Str(s), end + 2)
            }
            _ if is_key_char(c) => {
                let n = chars[i..].iter().take_while(|d| is_key_char(**d)).count();
                (Tok::Word(chars[i..i + n].iter().collect()), n)
            }
            '=' => return Err(err(col, "single '='; write '==' to compare".into())),
            '&' => return Err(err(col, "single '&'; write '&&'".into())),
            '|' => return Err(err(col, "single '|'; write '||'".into())),
            _ => return Err(err(col, format!("unexpected character {c:?}"))),
        };
        toks.push((tok, col));
        i += len;
    }
    toks.push((Tok::End, chars.len() + 1));
    Ok(toks)
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Word(w) => format!("{w:?}"),
        Tok::Str(s) => format!("'{s}'"),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::LBrace => "'{'".into(),
        Tok::RBrace => "'}'".into(),
        Tok::Comma => "','".into(),
        Tok::EqEq => "'=='".into(),
        Tok::NotEq => "'!='".into(),
        Tok::Bang => "'!'".into(),
        Tok::AndAnd => "'&&'".into(),
        Tok::OrOr => "'||'".into(),
        Tok::End => "the end".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn evaluation_table() {
        let r1 = labels(&[
            ("rack", "r1"),
            ("route-reflector", "true"),
            ("zone", "eu-west-1a"),
        ]);
        let r2 = labels(&[("rack", "r2")]);
        let none = labels(&[]);
        // (selector, matches r1, matches r2, matches no labels)
        let rows: &[(&str, bool, bool, bool)] = &[
            ("all()", true, true, true),
            ("", true, true, true),
            ("rack == 'r1'", true, false, false),
            ("rack == \"r1\"", true, false, false),
            ("rack != 'r1'", false, true, true),
            ("has(route-reflector)", true, false, false),
            ("!has(route-reflector)", false, true, true),
            ("!!has(route-reflector)", true, false, false),
            ("rack in {'r1','r3'}", true, false, false),
            ("rack in { 'r2' , 'r3' }", false, true, false),
            ("rack in {}", false, false, false),
            ("rack not in {'r1'}", false, true, true),
            ("zone contains 'west'", true, false, false),
            ("zone starts with 'eu-'", true, false, false),
            ("zone ends with '1a'", true, false, false),
            ("rack == 'r1' && has(route-reflector)", true, false, false),
            ("rack == 'r2' || has(route-reflector)", true, true, false),
            // && binds tighter than ||.
            (
                "rack == 'r2' || rack == 'r1' && !has(route-reflector)",
                false,
                true,
                false,
            ),
            (
                "(rack == 'r2' || rack == 'r1') && !has(route-reflector)",
                false,
                true,
                false,
            ),
            ("!(rack == 'r1')", false, true, true),
            ("has(all)", false, false, false),
            ("example.com/rack == 'x'", false, false, false),
        ];
        for (text, a, b, c) in rows {
            let s = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                (s.matches(&r1), s.matches(&r2), s.matches(&none)),
                (*a, *b, *c),
                "{text}"
            );
        }
    }

    #[test]
    fn error_table() {
        // (selector, column, start of the message)
        let rows: &[(&str, usize, &str)] = &[
            ("rack = 'r1'", 6, "single '='"),
            (
                "rack == r1",
                9,
                "expected a quoted value, found r1; write 'r1'",
            ),
            ("rack == 'r1", 9, "string starting here has no closing '"),
            ("rack", 5, "expected ==, !=, in, not in"),
            ("has(rack", 9, "expected ')', found the end"),
            ("has()", 5, "expected a label key inside has()"),
            ("all(x)", 5, "expected ')' (all() takes no argument)"),
            ("(rack == 'a'", 13, "expected ')'"),
            ("rack == 'a' &&", 15, "expected a label key"),
            ("rack == 'a' & b", 13, "single '&'"),
            ("rack in {'a' 'b'}", 14, "expected ',' or '}'"),
            ("rack in 'a'", 9, "expected '{'"),
            ("rack not {'a'}", 10, "expected 'in' after 'not'"),
            (
                "rack == 'a' rack",
                13,
                "unexpected \"rack\" after a complete expression",
            ),
            ("rack == 'a' # x", 13, "unexpected character '#'"),
        ];
        for (text, column, message) in rows {
            let e = Selector::parse(text).expect_err(text);
            assert_eq!(e.column, *column, "{text}: {e}");
            assert!(e.message.starts_with(message), "{text}: {e}");
            assert!(e.to_string().contains(&format!("column {column}")), "{e}");
        }
    }

    #[test]
    fn serde_round_trip_keeps_the_text() {
        let s: Selector = serde_json::from_str("\"rack in {'a','b'}\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"rack in {'a','b'}\"");
        let e = serde_json::from_str::<Selector>("\"rack ==\"").unwrap_err();
        assert!(e.to_string().contains("column 8"), "{e}");
    }
}
