//! herald-template: the engine of herald's message templates.
//!
//! A [`Template`] is one Jinja template (the `herald.dev/template` annotation of a Provider or
//! an Alert), compiled once when the manifests are loaded and rendered for every delivery
//! against a context the caller serializes (herald-core's `template` module builds the one
//! herald uses: `event`, `alert`, `provider` and the helpers). It runs in a sandbox:
//! [minijinja](https://docs.rs/minijinja) without a template loader, includes, imports or
//! macros, so a template reads nothing but its context; undefined names are errors (strict
//! undefined), and every render is bounded by [`Limits`]: fuel (the number of instructions
//! and the memory they allocate), nesting depth, and the size of the output. Errors carry the
//! line and column inside the template ([`TemplateError`]).
//!
//! Besides minijinja's built-in filters (`upper`, `lower`, `default`, `join`, `replace`, ...),
//! every template has the escaping filters of herald's targets ([`filters`]): `telegram`
//! (MarkdownV2), `slack` (mrkdwn), `html`, `json` (a JSON value, strings quoted), and
//! `truncate(n)` to a service's limit, in characters.
//!
//! It is not a provider and knows no herald type: it depends on no herald crate.
//!
//! ```
//! use herald_template::{Limits, Template};
//! let t = Template::compile("{{ who | upper }}: {{ text | truncate(8) }}", &Limits::default())
//!     .unwrap();
//! let ctx = serde_json::json!({"who": "flux", "text": "reconciled in 1.2s"});
//! assert_eq!(t.render(&ctx).unwrap(), "FLUX: reconci…");
//!
//! let err = Template::compile("{{ who }\n", &Limits::default()).unwrap_err();
//! assert_eq!((err.line, err.column), (Some(1), Some(8)));
//! let t = Template::compile("{{ who }} {{ what }}", &Limits::default()).unwrap();
//! let err = t.render(&serde_json::json!({"who": "flux"})).unwrap_err();
//! assert_eq!(err.kind, herald_template::ErrorKind::Undefined);
//! assert_eq!(err.to_string(), "line 1, column 14: undefined value: `what` is undefined");
//! ```

pub mod filters;

use std::fmt;
use std::io;

use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

/// The bounds of every render of a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The engine's fuel: roughly one unit per instruction, and more for the values it
    /// allocates. A loop that does not end runs out of it.
    pub fuel: u64,
    /// The largest output, in bytes.
    pub max_output: usize,
    /// The deepest nesting of loops, conditions and calls.
    pub recursion: usize,
}

impl Limits {
    /// 200 000 units of fuel (a typical chat template takes a few hundred), 256 KiB of output
    /// (more than any service herald posts to accepts in one message), nesting 64 deep.
    pub const DEFAULT: Limits = Limits {
        fuel: 200_000,
        max_output: 256 * 1024,
        recursion: 64,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// What kind of problem a template has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// It does not parse.
    Syntax,
    /// It uses a name, attribute or key the context does not have.
    Undefined,
    /// It ran out of fuel, nested too deeply or wrote more than the output limit.
    Limit,
    /// Any other failure while rendering (a filter given the wrong type, say).
    Render,
}

/// A problem with a template: what, and where in the template (1-based line and column, when
/// the engine knows them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// The kind of problem.
    pub kind: ErrorKind,
    /// The 1-based line inside the template.
    pub line: Option<usize>,
    /// The 1-based column (in characters) inside that line.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// `line 3, column 7: undefined value: ...`.
impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "line {line}, column {column}: ")?,
            (Some(line), None) => write!(f, "line {line}: ")?,
            _ => {}
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemplateError {}

/// The name the template has inside its environment (never shown).
const NAME: &str = "template";

/// A compiled template (see the crate documentation). Cheap to render many times; `Send` and
/// `Sync`, so one compiled template serves every delivery.
pub struct Template {
    env: Environment<'static>,
    source: String,
    limits: Limits,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Template {
    /// Compiles `source`; a syntax error says where.
    pub fn compile(source: &str, limits: &Limits) -> Result<Template, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(limits.fuel));
        env.set_recursion_limit(limits.recursion);
        // Keeps the span of each instruction, for the column of an error.
        env.set_debug(true);
        filters::add_all(&mut env);
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|e| convert(&e, source, false))?;
        Ok(Template {
            env,
            source: source.to_owned(),
            limits: *limits,
        })
    }

    /// The source it was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders against `context` (anything serde can serialize, usually a struct or map whose
    /// fields are the template's variables).
    pub fn render<C: Serialize + ?Sized>(&self, context: &C) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| convert(&e, "", false))?;
        let mut out = CappedOutput::new(self.limits.max_output);
        let result = template.render_captured_to(Value::from(Serde(context)), &mut out);
        match result {
            Ok(_) => String::from_utf8(out.bytes).map_err(|_| TemplateError {
                kind: ErrorKind::Render,
                line: None,
                column: None,
                message: "the output is not valid UTF-8".to_owned(),
            }),
            Err(e) => Err(convert(&e, &self.source, out.exceeded)),
        }
    }
}

/// The output of one render, refusing to grow past the limit.
struct CappedOutput {
    bytes: Vec<u8>,
    max: usize,
    exceeded: bool,
}

impl CappedOutput {
    fn new(max: usize) -> Self {
        CappedOutput {
            bytes: Vec::with_capacity(256),
            max,
            exceeded: false,
        }
    }
}

impl io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > self.max {
            self.exceeded = true;
            return Err(io::Error::other("output limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The engine's error as a [`TemplateError`], with the column worked out from its byte range
/// in `source`.
fn convert(e: &minijinja::Error, source: &str, output_exceeded: bool) -> TemplateError {
    use minijinja::ErrorKind as K;
    let kind = match e.kind() {
        _ if output_exceeded || is_recursion(e) => ErrorKind::Limit,
        K::SyntaxError => ErrorKind::Syntax,
        K::UndefinedError => ErrorKind::Undefined,
        K::OutOfFuel => ErrorKind::Limit,
        _ => ErrorKind::Render,
    };
    let message = if output_exceeded {
        "the output is larger than the limit".to_owned()
    } else if kind == ErrorKind::Limit && e.kind() == K::OutOfFuel {
        "the template ran out of fuel (a loop that does not end, or one that does too much \
         work)"
            .to_owned()
    } else {
        match e.detail() {
            Some(detail) => format!("{}: {detail}", e.kind()),
            None => e.kind().to_string(),
        }
    };
    let column = e.range().map(|range| column_of(source, range.start));
    TemplateError {
        kind,
        line: e.line(),
        column,
        message,
    }
}

fn is_recursion(e: &minijinja::Error) -> bool {
    e.detail().is_some_and(|d| d.contains("recursion"))
}

/// The 1-based column, in characters, of byte `offset` of `source`.
fn column_of(source: &str, offset: usize) -> usize {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    before[line_start..].chars().count() + 1
}

#[cfg(test)]
mod tests;
