//! Tokens of a JSONata expression.

use super::{JsonataError, jerr};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    ValueSource(f64),
    Str(String),
    Name(String),
    Var(String),
    Op(String),
    Regex(String, String),
}

impl Tok {
    pub(super) fn text(&self) -> String {
        match self {
            Tok::ValueSource(n) => n.to_string(),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Name(s) => s.clone(),
            Tok::Var(s) => format!("${s}"),
            Tok::Op(s) => s.clone(),
            Tok::Regex(s, _) => format!("/{s}/"),
        }
    }
}

pub(super) fn lex(src: &str) -> Result<Vec<Tok>, JsonataError> {
    let cs: Vec<char> = src.chars().collect();
    let mut out: Vec<Tok> = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '/' && cs.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < cs.len() && !(cs[i] == '*' && cs[i + 1] == '/') {
                i += 1;
            }
            i += 2;
            continue;
        }
        // A '/' starts a regex where an operand is expected.
        let operand_expected = match out.last() {
            None => true,
            Some(Tok::Op(o)) => !matches!(o.as_str(), ")" | "]" | "}"),
            _ => false,
        };
        if c == '/' && operand_expected {
            let mut j = i + 1;
            let mut pat = String::new();
            while j < cs.len() && cs[j] != '/' {
                if cs[j] == '\\' && j + 1 < cs.len() {
                    pat.push(cs[j]);
                    j += 1;
                }
                pat.push(cs[j]);
                j += 1;
            }
            if j >= cs.len() {
                return Err(jerr("S0302", "No terminating / in regular expression"));
            }
            j += 1;
            let mut flags = String::new();
            while j < cs.len() && cs[j].is_ascii_alphabetic() {
                flags.push(cs[j]);
                j += 1;
            }
            out.push(Tok::Regex(pat, flags));
            i = j;
            continue;
        }
        if c == '"' || c == '\'' {
            let mut j = i + 1;
            let mut s = String::new();
            while j < cs.len() && cs[j] != c {
                if cs[j] == '\\' && j + 1 < cs.len() {
                    j += 1;
                    match cs[j] {
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        'r' => s.push('\r'),
                        'b' => s.push('\u{8}'),
                        'f' => s.push('\u{c}'),
                        'u' => {
                            let hex: String = cs.get(j + 1..j + 5).unwrap_or(&[]).iter().collect();
                            let code = u32::from_str_radix(&hex, 16)
                                .map_err(|_| jerr("S0104", "Invalid unicode escape"))?;
                            s.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                            j += 4;
                        }
                        o => s.push(o),
                    }
                } else {
                    s.push(cs[j]);
                }
                j += 1;
            }
            if j >= cs.len() {
                return Err(jerr(
                    "S0101",
                    "String literal must be terminated by a matching quote",
                ));
            }
            out.push(Tok::Str(s));
            i = j + 1;
            continue;
        }
        if c.is_ascii_digit() {
            let mut j = i;
            while j < cs.len() && (cs[j].is_ascii_digit() || cs[j] == '.') {
                if cs[j] == '.' && cs.get(j + 1) == Some(&'.') {
                    break;
                }
                j += 1;
            }
            if j < cs.len() && (cs[j] == 'e' || cs[j] == 'E') {
                j += 1;
                if j < cs.len() && (cs[j] == '+' || cs[j] == '-') {
                    j += 1;
                }
                while j < cs.len() && cs[j].is_ascii_digit() {
                    j += 1;
                }
            }
            let t: String = cs[i..j].iter().collect();
            out.push(Tok::ValueSource(t.parse().map_err(|_| {
                jerr("S0102", format!("Number out of range: {t}"))
            })?));
            i = j;
            continue;
        }
        if c == '`' {
            let mut j = i + 1;
            while j < cs.len() && cs[j] != '`' {
                j += 1;
            }
            out.push(Tok::Name(cs[i + 1..j.min(cs.len())].iter().collect()));
            i = j + 1;
            continue;
        }
        if c == '$' {
            let mut j = i + 1;
            while j < cs.len() && (cs[j].is_alphanumeric() || cs[j] == '_' || cs[j] == '$') {
                j += 1;
            }
            out.push(Tok::Var(cs[i + 1..j].iter().collect()));
            i = j;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let mut j = i;
            while j < cs.len() && (cs[j].is_alphanumeric() || cs[j] == '_') {
                j += 1;
            }
            out.push(Tok::Name(cs[i..j].iter().collect()));
            i = j;
            continue;
        }
        let two: String = cs[i..(i + 2).min(cs.len())].iter().collect();
        if [":=", "!=", "<=", ">=", "..", "**", "?:", "??", "~>"].contains(&two.as_str()) {
            out.push(Tok::Op(two));
            i += 2;
            continue;
        }
        if "()[]{}.,;:?+-*/%&=<>!|^~@#".contains(c) {
            out.push(Tok::Op(c.to_string()));
            i += 1;
            continue;
        }
        return Err(jerr("S0204", format!("Unknown operator: {c}")));
    }
    Ok(out)
}
