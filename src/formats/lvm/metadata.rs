//! The LVM2 text metadata format (lvm2's config syntax), parsed sans-I/O into a tree.
//!
//! The grammar, as lvm2 writes it into a metadata area:
//!
//! ```text
//! file    := item*
//! item    := name '=' value | name '{' item* '}'
//! value   := scalar | '[' (scalar (',' scalar)* ','?)? ']'
//! scalar  := integer | float | "string"          # strings escape `"` and `\` with a backslash
//! ```
//!
//! `#` starts a comment that runs to the end of the line; a NUL byte ends the text (lvm2 stores the
//! text NUL-terminated). Every size is bounded by a named limit: the text length
//! ([`MAX_TEXT`]), the nesting depth of sections ([`MAX_DEPTH`]), the number of values
//! ([`MAX_NODES`]) and the length of one string ([`MAX_STRING`]); a name repeated inside one
//! section is an error (lvm2 never writes one, and which copy wins would be a guess).

use std::fmt;

/// Longest metadata text accepted (lvm2's default metadata area is 1 MiB; VGs with thousands of
/// LVs stay well below this).
pub const MAX_TEXT: usize = 16 << 20;
/// Deepest nesting of sections (lvm2 writes 4: VG, logical_volumes, LV, segment).
pub const MAX_DEPTH: usize = 16;
/// Most values (sections, keys, array elements) in one text.
pub const MAX_NODES: usize = 1 << 20;
/// Longest single string or name.
pub const MAX_STRING: usize = 64 << 10;

/// A malformed metadata text: what was wrong and on which line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line of the offending token.
    pub line: usize,
    /// What was wrong, naming the offending value.
    pub what: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LVM metadata text, line {}: {}", self.line, self.what)
    }
}

impl std::error::Error for ParseError {}

impl From<ParseError> for crate::Error {
    fn from(e: ParseError) -> Self {
        crate::Error::corrupt(e.to_string())
    }
}

/// One scalar or array value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// An integer (lvm2 writes sizes and counts as decimal integers).
    Int(i64),
    /// A number with a fractional part (rare; kept so such texts parse).
    Float(f64),
    /// A string, escapes resolved.
    Str(String),
    /// `[a, b, ...]` of scalars.
    Array(Vec<Value>),
}

/// The contents of a section (or of the whole text): ordered named entries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Section {
    /// `key = value` entries in text order.
    pub values: Vec<(String, Value)>,
    /// `name { ... }` subsections in text order.
    pub sections: Vec<(String, Section)>,
}

impl Section {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    /// The subsection `name`, if present.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|(k, _)| k == name).map(|(_, s)| s)
    }
    /// `key` as an integer, if present and one.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }
    /// `key` as a string, if present and one.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }
    /// `key` as an array of strings (non-strings skipped); empty when absent.
    pub fn strings(&self, key: &str) -> Vec<&str> {
        match self.get(key) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| match v {
                    Value::Str(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Parse a whole metadata text. Bytes after the first NUL are ignored.
pub fn parse(text: &[u8]) -> Result<Section, ParseError> {
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    let text = &text[..end];
    if text.len() > MAX_TEXT {
        return Err(ParseError { line: 1, what: format!("text of {} bytes exceeds {MAX_TEXT}", text.len()) });
    }
    let mut p = Parser { s: text, pos: 0, line: 1, nodes: 0 };
    let root = p.items(0)?;
    p.skip_ws();
    if p.pos < p.s.len() {
        return Err(p.err(format!("unexpected {:?}", p.s[p.pos] as char)));
    }
    Ok(root)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
    nodes: usize,
}

fn is_name_byte(b: u8) -> bool {
    !b.is_ascii_whitespace() && !matches!(b, b'{' | b'}' | b'[' | b']' | b'=' | b',' | b'"' | b'#' | 0)
}

impl Parser<'_> {
    fn err(&self, what: impl Into<String>) -> ParseError {
        ParseError { line: self.line, what: what.into() }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// Skip white space and comments.
    fn skip_ws(&mut self) {
        while let Some(b) = self.peek() {
            if b == b'\n' {
                self.line += 1;
                self.pos += 1;
            } else if b.is_ascii_whitespace() {
                self.pos += 1;
            } else if b == b'#' {
                while self.peek().is_some_and(|b| b != b'\n') {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    fn count_node(&mut self) -> Result<(), ParseError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(self.err(format!("more than {MAX_NODES} values")));
        }
        Ok(())
    }

    /// Items up to a closing `}` (depth > 0) or the end of the text (depth 0).
    fn items(&mut self, depth: usize) -> Result<Section, ParseError> {
        let mut sec = Section::default();
        // Names seen in this section: a set, so a hostile section of many keys stays linear.
        let mut seen = std::collections::HashSet::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None if depth == 0 => return Ok(sec),
                None => return Err(self.err("section not closed: '}' missing at the end of the text")),
                Some(b'}') if depth > 0 => {
                    self.pos += 1;
                    return Ok(sec);
                }
                Some(_) => {}
            }
            let name = self.name()?;
            self.skip_ws();
            self.count_node()?;
            if !seen.insert(name.clone()) {
                return Err(self.err(format!("{name:?} appears twice in one section")));
            }
            match self.peek() {
                Some(b'=') => {
                    self.pos += 1;
                    self.skip_ws();
                    let v = self.value()?;
                    sec.values.push((name, v));
                }
                Some(b'{') => {
                    self.pos += 1;
                    if depth + 1 > MAX_DEPTH {
                        return Err(self.err(format!("sections nested deeper than {MAX_DEPTH}")));
                    }
                    let inner = self.items(depth + 1)?;
                    sec.sections.push((name, inner));
                }
                Some(b) => return Err(self.err(format!("expected '=' or '{{' after {name:?}, found {:?}", b as char))),
                None => return Err(self.err(format!("text ends after {name:?}"))),
            }
        }
    }

    fn name(&mut self) -> Result<String, ParseError> {
        if self.peek() == Some(b'"') {
            return self.string();
        }
        let start = self.pos;
        while self.peek().is_some_and(is_name_byte) {
            self.pos += 1;
        }
        if self.pos == start {
            let b = self.peek().map_or("the end".to_string(), |b| format!("{:?}", b as char));
            return Err(self.err(format!("expected a name, found {b}")));
        }
        if self.pos - start > MAX_STRING {
            return Err(self.err(format!("name of {} bytes exceeds {MAX_STRING}", self.pos - start)));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        if self.peek() != Some(b'[') {
            return self.scalar();
        }
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(b']') {
                self.pos += 1;
                return Ok(Value::Array(items));
            }
            self.count_node()?;
            items.push(self.scalar()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {}
                Some(b) => return Err(self.err(format!("expected ',' or ']' in an array, found {:?}", b as char))),
                None => return Err(self.err("array not closed: ']' missing at the end of the text")),
            }
        }
    }

    fn scalar(&mut self) -> Result<Value, ParseError> {
        match self.peek() {
            Some(b'"') => self.string().map(Value::Str),
            Some(b) if b == b'-' || b == b'+' || b.is_ascii_digit() || b == b'.' => self.number(),
            Some(b) => Err(self.err(format!("expected a value, found {:?}", b as char))),
            None => Err(self.err("text ends where a value was expected")),
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')) {
            self.pos += 1;
            if self.pos - start > 64 {
                return Err(self.err("number longer than 64 characters"));
            }
        }
        let tok = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        if let Ok(i) = tok.parse::<i64>() {
            return Ok(Value::Int(i));
        }
        match tok.parse::<f64>() {
            Ok(f) if f.is_finite() && tok.contains('.') => Ok(Value::Float(f)),
            _ => Err(self.err(format!("bad number {tok:?}"))),
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let start_line = self.line;
        self.pos += 1; // opening quote
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(ParseError { line: start_line, what: "string not closed: '\"' missing".into() });
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => match self.peek() {
                    Some(e) => {
                        self.pos += 1;
                        if e == b'\n' {
                            self.line += 1;
                        }
                        out.push(e);
                    }
                    None => return Err(self.err("text ends inside a string escape")),
                },
                b'\n' => {
                    self.line += 1;
                    out.push(b);
                }
                _ => out.push(b),
            }
            if out.len() > MAX_STRING {
                return Err(ParseError { line: start_line, what: format!("string longer than {MAX_STRING} bytes") });
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_lvm2_shapes() {
        let t = b"vg {\nid = \"a-b\"\nseqno = 4 # comment\nstatus = [\"READ\", \"WRITE\"]\nflags = []\n\
                  physical_volumes {\npv0 {\ndev_size = 131072\n}\n}\n}\n# trailer\ncontents = \"T \\\"q\\\" \\\\\"\nversion = 1\nx = -1.5\n\0garbage";
        let root = parse(t).unwrap();
        let vg = root.section("vg").unwrap();
        assert_eq!(vg.str("id"), Some("a-b"));
        assert_eq!(vg.int("seqno"), Some(4));
        assert_eq!(vg.strings("status"), ["READ", "WRITE"]);
        assert_eq!(vg.get("flags"), Some(&Value::Array(vec![])));
        assert_eq!(vg.section("physical_volumes").unwrap().section("pv0").unwrap().int("dev_size"), Some(131072));
        assert_eq!(root.str("contents"), Some("T \"q\" \\"));
        assert_eq!(root.get("x"), Some(&Value::Float(-1.5)));
    }

    #[test]
    fn many_keys_parse_in_linear_time() {
        let mut t = String::from("s {\n");
        for i in 0..100_000 {
            t.push_str(&format!("k{i} = {i}\n"));
        }
        t.push('}');
        let t0 = std::time::Instant::now();
        let root = parse(t.as_bytes()).unwrap();
        assert_eq!(root.section("s").unwrap().values.len(), 100_000);
        assert!(t0.elapsed().as_secs() < 20, "{:?}", t0.elapsed());
    }

    #[test]
    fn rejects_malformed_and_hostile_text() {
        for (t, want) in [
            (&b"a {"[..], "not closed"),
            (b"a = ", "value was expected"),
            (b"a = [1, 2", "array not closed"),
            (b"a = \"x", "string not closed"),
            (b"a = 1\na = 2", "twice"),
            (b"}", "expected a name"),
            (b"a = 12abc", "bad number"),
            (b"a = [[1]]", "expected a value"),
            (b"a b", "expected '='"),
        ] {
            let e = parse(t).unwrap_err();
            assert!(e.what.contains(want), "{:?}: {e}", String::from_utf8_lossy(t));
        }
        let deep = "a{".repeat(MAX_DEPTH + 1) + &"}".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes()).unwrap_err().what.contains("nested deeper"));
        let ok = "a{".repeat(MAX_DEPTH) + &"}".repeat(MAX_DEPTH);
        parse(ok.as_bytes()).unwrap();
        assert_eq!(parse(b"a = 1\nb = \"\nx\"\n c").unwrap_err().line, 4);
    }
}
