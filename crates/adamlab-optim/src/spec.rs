//! The spec language of `--optimizer`: a name, or a torch-like call with keyword arguments.
//!
//! ```text
//! sgd
//! sgd(momentum=0.9, nesterov=true)
//! adamw(betas=(0.8, 0.9), weight_decay=0.1, amsgrad=True)
//! sequential(linear(start_factor=0.1, total_iters=10), cosine(t_max=90))
//! ```
//!
//! Numbers as Rust or Python write them (`1e-3`, `0.9`, `10`); booleans `true`/`false` (Python's
//! `True`/`False` too); tuples in parentheses or brackets; `None`; bare names for choices. A call
//! may also appear as a value (positionally or by keyword), which learning-rate schedules use to
//! chain schedules.

use std::fmt;

/// A value written in a spec: `0.9`, `true`, `(0.9, 0.999)`, `None`, or a bare name.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number (whole numbers too).
    Number(f64),
    /// `true`/`false` (Python's `True`/`False` too).
    Bool(bool),
    /// `(a, b, …)` or `[a, b, …]`.
    Tuple(Vec<Value>),
    /// `None`.
    None,
    /// A bare or quoted name, for choices: `adjust_lr_fn=original`.
    Name(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(x) => write!(f, "{x:?}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Tuple(values) => {
                let parts: Vec<String> = values.iter().map(ToString::to_string).collect();
                write!(f, "({})", parts.join(", "))
            }
            Value::None => f.write_str("None"),
            Value::Name(name) => f.write_str(name),
        }
    }
}

/// A parsed call: `name(arg, key=value, …)`, or a bare `name` with no arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The callee.
    pub name: String,
    /// Its arguments, in order.
    pub args: Vec<Arg>,
}

/// One argument of a [`Call`].
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// The keyword, or `None` for a positional argument.
    pub keyword: Option<String>,
    /// The value.
    pub value: Expr,
}

/// An argument's value: a plain value or a nested call.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number, boolean, tuple, `None` or name.
    Value(Value),
    /// A nested call with arguments, `cosine(t_max=90)`.
    Call(Call),
}

/// How deeply calls, tuples and lists may nest in a spec: far beyond any schedule (sequential
/// holds calls that hold tuples: depth 3), far below what the recursive parser's stack holds.
pub const MAX_DEPTH: usize = 32;

/// The most characters of a spec an error quotes, around the place it names.
const EXCERPT_CHARS: usize = 40;

/// A spec that does not parse. One line: what was expected, where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot parse `{spec}`: {message} at character {at}")]
pub struct SyntaxError {
    /// The text around the error, at most 40 characters (`…` where cut), with control and
    /// non-ASCII characters escaped.
    pub spec: String,
    /// What was wrong.
    pub message: String,
    /// 1-based character position.
    pub at: usize,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if self.args.is_empty() {
            return Ok(());
        }
        let args: Vec<String> = self
            .args
            .iter()
            .map(|arg| match &arg.keyword {
                Some(k) => format!("{k}={}", arg.value),
                None => arg.value.to_string(),
            })
            .collect();
        write!(f, "({})", args.join(", "))
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Value(v) => v.fmt(f),
            Expr::Call(c) => c.fmt(f),
        }
    }
}

/// Parses a whole spec: `name` or `name(args)`.
pub fn parse_call(text: &str) -> Result<Call, SyntaxError> {
    let mut parser = Parser::new(text);
    parser.skip_space();
    let name = parser.name()?;
    let call = parser.call_rest(name)?;
    parser.skip_space();
    if !parser.at_end() {
        let after = if call.args.is_empty() { "the name" } else { "the closing parenthesis" };
        return Err(parser.error(&format!("unexpected {} after {after}", parser.found())));
    }
    Ok(call)
}

/// Parses one value, as a default is written in the registry: `0.9`, `(0.9, 0.999)`, `None`.
pub fn parse_value(text: &str) -> Result<Value, SyntaxError> {
    let mut parser = Parser::new(text);
    parser.skip_space();
    let expr = parser.expr()?;
    parser.skip_space();
    if !parser.at_end() {
        return Err(parser.error(&format!("unexpected {} after the value", parser.found())));
    }
    match expr {
        Expr::Value(v) => Ok(v),
        Expr::Call(_) => Err(parser.error("expected a value, not a call")),
    }
}

/// `text` with control characters, quotes and anything outside printable ASCII escaped, so that
/// an error line neither spans lines nor sends escape sequences to the terminal.
pub fn escaped(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c.to_string()
            } else {
                c.escape_default().to_string()
            }
        })
        .collect()
}

/// At most [`EXCERPT_CHARS`] characters of `chars` around position `at`, escaped, with `…` where
/// the text goes on.
fn excerpt(chars: &[char], at: usize) -> String {
    let start = at.saturating_sub(EXCERPT_CHARS / 2).min(chars.len().saturating_sub(EXCERPT_CHARS));
    let end = (start + EXCERPT_CHARS).min(chars.len());
    let text: String = chars[start..end].iter().collect();
    format!(
        "{}{}{}",
        if start > 0 { "…" } else { "" },
        escaped(&text),
        if end < chars.len() { "…" } else { "" }
    )
}

/// Whether `text` (ASCII digits, `.`, signs, exponent letters and `_`) is a number as Python
/// writes one: an underscore only between two digits (`1_000`, not `1__0`, `1_` or `1_.5`).
fn underscores_as_python(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().all(|(i, b)| {
        *b != b'_'
            || (i > 0
                && bytes[i - 1].is_ascii_digit()
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
    })
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn new(text: &str) -> Self {
        Self {
            chars: text.chars().collect(),
            pos: 0,
            depth: 0,
        }
    }

    fn error(&self, message: &str) -> SyntaxError {
        SyntaxError {
            spec: excerpt(&self.chars, self.pos),
            message: message.to_string(),
            at: self.pos + 1,
        }
    }

    /// One level deeper into a call, tuple or list: an error past [`MAX_DEPTH`], before the
    /// recursion could exhaust the stack.
    fn descend(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(&format!("nested more than {MAX_DEPTH} deep")));
        }
        Ok(())
    }

    /// What the character at the cursor is, escaped, for an error: `` `é` ``, or the end.
    fn found(&self) -> String {
        match self.peek() {
            Some(c) => format!("`{}`", escaped(&c.to_string())),
            None => "the end".to_string(),
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn name(&mut self) -> Result<String, SyntaxError> {
        self.skip_space();
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.pos += 1;
        }
        if start == self.pos || !self.chars[start].is_ascii_alphabetic() {
            self.pos = start;
            return Err(self.error(&format!("expected a name, found {}", self.found())));
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    /// After a name: `(args)` or nothing.
    fn call_rest(&mut self, name: String) -> Result<Call, SyntaxError> {
        let mut args = Vec::new();
        if !self.eat('(') {
            return Ok(Call { name, args });
        }
        self.descend()?;
        if self.eat(')') {
            self.depth -= 1;
            return Ok(Call { name, args });
        }
        loop {
            self.skip_space();
            let start = self.pos;
            let keyword = match self.name() {
                Ok(k) if self.eat('=') => Some(k),
                _ => {
                    self.pos = start;
                    None
                }
            };
            let value = self.expr()?;
            args.push(Arg { keyword, value });
            if self.eat(',') {
                // A trailing comma before `)` is fine, as in Python.
                if self.eat(')') {
                    break;
                }
                continue;
            }
            if self.eat(')') {
                break;
            }
            return Err(self.error(&format!("expected `,` or `)`, found {}", self.found())));
        }
        self.depth -= 1;
        Ok(Call { name, args })
    }

    fn expr(&mut self) -> Result<Expr, SyntaxError> {
        self.skip_space();
        match self.peek() {
            Some('(' | '[') => {
                let close = if self.peek() == Some('(') { ')' } else { ']' };
                self.descend()?;
                self.pos += 1;
                let mut values = Vec::new();
                if self.eat(close) {
                    self.depth -= 1;
                    return Ok(Expr::Value(Value::Tuple(values)));
                }
                loop {
                    match self.expr()? {
                        Expr::Value(v) => values.push(v),
                        Expr::Call(_) => return Err(self.error("a tuple holds values, not calls")),
                    }
                    if self.eat(',') {
                        if self.eat(close) {
                            break;
                        }
                        continue;
                    }
                    if self.eat(close) {
                        break;
                    }
                    return Err(self.error(&format!("expected `,` or `{close}`, found {}", self.found())));
                }
                self.depth -= 1;
                Ok(Expr::Value(Value::Tuple(values)))
            }
            Some('"' | '\'') => {
                let quote = self.peek().unwrap_or('"');
                self.pos += 1;
                let start = self.pos;
                while self.peek().is_some_and(|c| c != quote) {
                    self.pos += 1;
                }
                if self.at_end() {
                    return Err(self.error("unterminated string"));
                }
                let s: String = self.chars[start..self.pos].iter().collect();
                self.pos += 1;
                Ok(Expr::Value(Value::Name(s)))
            }
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let start = self.pos;
                self.pos += 1;
                while self.peek().is_some_and(|c| {
                    c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '+' || c == '-'
                }) {
                    // A sign inside a number only follows an exponent marker.
                    let c = self.chars[self.pos];
                    if (c == '+' || c == '-') && !matches!(self.chars[self.pos - 1], 'e' | 'E') {
                        break;
                    }
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                match text.replace('_', "").parse::<f64>() {
                    Ok(x) if x.is_finite() && underscores_as_python(&text) => {
                        Ok(Expr::Value(Value::Number(x)))
                    }
                    _ => {
                        self.pos = start;
                        let shown = excerpt(&self.chars[start..start + text.chars().count()], 0);
                        Err(self.error(&format!("`{shown}` is not a finite number as Python writes one")))
                    }
                }
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let name = self.name()?;
                match name.as_str() {
                    "true" | "True" => return Ok(Expr::Value(Value::Bool(true))),
                    "false" | "False" => return Ok(Expr::Value(Value::Bool(false))),
                    "None" | "none" => return Ok(Expr::Value(Value::None)),
                    "inf" | "Inf" => return Ok(Expr::Value(Value::Number(f64::INFINITY))),
                    _ => {}
                }
                self.skip_space();
                if self.peek() == Some('(') {
                    Ok(Expr::Call(self.call_rest(name)?))
                } else {
                    Ok(Expr::Value(Value::Name(name)))
                }
            }
            _ => Err(self.error(&format!("expected a value, found {}", self.found()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(call: &Call, key: &str) -> Expr {
        call.args
            .iter()
            .find(|a| a.keyword.as_deref() == Some(key))
            .map(|a| a.value.clone())
            .unwrap()
    }

    #[test]
    fn a_bare_name_is_a_call_without_arguments() {
        assert_eq!(
            parse_call(" sgd ").unwrap(),
            Call {
                name: "sgd".into(),
                args: vec![]
            }
        );
        assert_eq!(parse_call("schedule-free-adamw").unwrap().name, "schedule-free-adamw");
    }

    #[test]
    fn keywords_take_numbers_booleans_tuples_and_none() {
        let call = parse_call("adamw(betas=(0.8, 0.9), weight_decay=1e-1, amsgrad=True, eps=(None, 1e-3), x=[1,2,])")
            .unwrap();
        assert_eq!(call.name, "adamw");
        assert_eq!(
            kw(&call, "betas"),
            Expr::Value(Value::Tuple(vec![Value::Number(0.8), Value::Number(0.9)]))
        );
        assert_eq!(kw(&call, "weight_decay"), Expr::Value(Value::Number(0.1)));
        assert_eq!(kw(&call, "amsgrad"), Expr::Value(Value::Bool(true)));
        assert_eq!(
            kw(&call, "eps"),
            Expr::Value(Value::Tuple(vec![Value::None, Value::Number(1e-3)]))
        );
        assert_eq!(
            kw(&call, "x"),
            Expr::Value(Value::Tuple(vec![Value::Number(1.0), Value::Number(2.0)]))
        );
    }

    #[test]
    fn calls_nest_as_values() {
        let call =
            parse_call("sequential(linear(start_factor=0.1, total_iters=10), cosine(t_max=90))").unwrap();
        assert_eq!(call.args.len(), 2);
        assert!(call.args.iter().all(|a| a.keyword.is_none()));
        let Expr::Call(first) = &call.args[0].value else {
            panic!("a call")
        };
        assert_eq!(first.name, "linear");
        assert_eq!(kw(first, "total_iters"), Expr::Value(Value::Number(10.0)));
        assert_eq!(call.to_string(), "sequential(linear(start_factor=0.1, total_iters=10.0), cosine(t_max=90.0))");
    }

    #[test]
    fn negative_numbers_and_exponents_parse() {
        assert_eq!(parse_value("-0.8").unwrap(), Value::Number(-0.8));
        assert_eq!(parse_value("1e-8").unwrap(), Value::Number(1e-8));
        assert_eq!(parse_value("2.5E+3").unwrap(), Value::Number(2500.0));
    }

    /// Deep nesting is an error, not a stack overflow; the error quotes an excerpt, not the
    /// input.
    #[test]
    fn nesting_is_bounded_and_errors_quote_an_excerpt() {
        let deep = format!("sgd(lr={}1{})", "(".repeat(18_000), ")".repeat(18_000));
        let err = parse_call(&deep).unwrap_err().to_string();
        assert!(err.contains(&format!("nested more than {MAX_DEPTH} deep")), "{err}");
        assert!(err.len() < 200, "{err}");
        let long = format!("sgd(lr=1{})", "0".repeat(300_000));
        let err = parse_call(&long).unwrap_err().to_string();
        assert!(err.len() < 200 && err.lines().count() == 1, "{err}");
        let nested = format!("s(a={}1{})", "(".repeat(MAX_DEPTH - 1), ")".repeat(MAX_DEPTH - 1));
        assert!(parse_call(&nested).is_ok());
    }

    /// Underscores as Python takes them in numbers: only between two digits.
    #[test]
    fn numbers_take_underscores_as_python_does() {
        assert_eq!(parse_value("1_000.5").unwrap(), Value::Number(1000.5));
        assert_eq!(parse_value("1e1_0").unwrap(), Value::Number(1e10));
        for bad in ["1__0", "1_", "1_.5", "1._5", "1_e5"] {
            let err = parse_value(bad).unwrap_err().to_string();
            assert!(err.contains("not a finite number"), "{bad}: {err}");
        }
    }

    /// A character that cannot start or continue a name is named, escaped, in the error.
    #[test]
    fn unexpected_characters_are_named_and_escaped() {
        let err = parse_call("sgdé(lr=1)").unwrap_err().to_string();
        assert!(err.contains("unexpected `\\u{e9}` after the name"), "{err}");
        let err = parse_call("sgd\u{1b}[31m").unwrap_err().to_string();
        assert!(!err.contains('\u{1b}') && err.contains("\\u{1b}"), "{err}");
        let err = parse_call("sgd(lr=1)x").unwrap_err().to_string();
        assert!(err.contains("unexpected `x` after the closing parenthesis"), "{err}");
    }

    #[test]
    fn syntax_errors_say_where() {
        for bad in ["sgd(", "sgd(momentum=)", "sgd(momentum=0.9", "sgd(momentum=0.9))", "(", "sgd(lr=1e999)", "sgd(lr=0.1.2)"] {
            let err = parse_call(bad).unwrap_err();
            assert!(err.to_string().contains("at character"), "{bad}: {err}");
        }
    }
}
