//! `spec.commitStatusExpr`: a CEL expression that makes the commit-status id in place of
//! `<kind>/<name>/<provider id>`, evaluated as Flux does (its `newCommitStatus`): the variables
//! `event` (the event, metadata combined with the Alert's), `alert` and `provider` (their
//! manifest objects), the standard library with the strings and encoders extensions and
//! optional types, and a string result.
//!
//! Flux compiles the expression with cel-go's type checker; the `cel` crate has none, so herald
//! checks at build time what a checker would refuse of the expressions a status id is made of:
//! a reference to anything but the three variables (and CEL's own type and extension names),
//! and a result that is not known to be a string when it can be told without types
//! (`event.metadata.app` alone is `dyn` to cel-go, and so refused). What only types could tell
//! is caught at evaluation, where a result that is not a string is an error too.

use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, LiteralValue};
use cel::common::value::Val;
use cel::{Context, Env, IdedExpr, Program, Value};
use herald_core::Event;

/// The variables Flux declares (`cel.WithStructVariables("event", "alert", "provider")`).
const VARIABLES: [&str; 3] = ["event", "alert", "provider"];

/// Names an expression may use besides the variables: CEL's type identifiers and the
/// namespaces of the enabled extensions (`base64.encode`, `optional.of`, ...).
const BUILTIN_NAMES: [&str; 16] = [
    "bool",
    "bytes",
    "double",
    "dyn",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
    "duration",
    "timestamp",
    "optional",
    "base64",
    "strings",
];

/// Functions whose result is a string whatever their arguments (the standard `string()`
/// conversion and the strings extension's members).
const STRING_FUNCTIONS: [&str; 10] = [
    "string",
    "charAt",
    "format",
    "join",
    "lowerAscii",
    "quote",
    "replace",
    "substring",
    "trim",
    "upperAscii",
];

/// A compiled `spec.commitStatusExpr`.
pub(crate) struct StatusExpr {
    source: String,
    program: Program,
    env: Arc<Env>,
}

impl std::fmt::Debug for StatusExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StatusExpr").field(&self.source).finish()
    }
}

/// What can be told of an expression's result without types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    String,
    /// A field, index or variable of the `Struct` variables: cel-go's `dyn`.
    Dyn,
    /// A literal of another type: its cel-go name.
    Other(&'static str),
    /// Only evaluation can tell.
    Unknown,
}

impl StatusExpr {
    /// Compiles `source` once, with Flux's message for what it refuses: `failed to compile
    /// expression: ...`.
    pub(crate) fn compile(source: &str) -> Result<StatusExpr, String> {
        let env = Arc::new(environment());
        let program = env
            .compile(source)
            .map_err(|e| parse_failure(source, &e.to_string()))?;
        if let Some((name, id)) = undeclared(program.expression(), &mut Vec::new()) {
            let offset = program.source_info().offset_for(id);
            let message = format!("undeclared reference to '{name}' (in container '')");
            return Err(parse_failure(source, &issue_at(source, offset, &message)));
        }
        match known(program.expression()) {
            Known::Dyn => return Err(mismatch("dyn")),
            Known::Other(ty) => return Err(mismatch(ty)),
            Known::String | Known::Unknown => {}
        }
        Ok(StatusExpr {
            source: source.to_owned(),
            program,
            env,
        })
    }

    /// The status id for `event`, with Flux's message on failure (a missing key, a result
    /// that is not a string).
    pub(crate) fn evaluate(
        &self,
        event: &Event,
        alert: &serde_json::Value,
        provider: &serde_json::Value,
    ) -> Result<String, String> {
        let failed = |e: &dyn std::fmt::Display| {
            format!(
                "failed to evaluate the CEL expression '{}': {e}",
                self.source
            )
        };
        let mut context = Context::with_env(self.env.clone());
        for (name, value) in [
            ("event", cel::to_value(event)),
            ("alert", cel::to_value(object(alert))),
            ("provider", cel::to_value(object(provider))),
        ] {
            // (`Context::add_variable_from_value` would panic where this fails.)
            let value: Box<dyn Val> = value
                .map_err(|e| failed(&e))?
                .try_into()
                .map_err(|e: cel::ExecutionError| failed(&e))?;
            context.add_variable_as_val(name, value);
        }
        match self.program.execute(&context) {
            Ok(Value::String(s)) => Ok(s.to_string()),
            Ok(_) => Err(format!(
                "failed to evaluate CEL expression as string: '{}'",
                self.source
            )),
            Err(e) => Err(failed(&e)),
        }
    }
}

/// Flux's environment: the standard library, optional types, the strings and encoders
/// extensions (cel-go's sets extension has no counterpart in the `cel` crate).
fn environment() -> Env {
    let mut env = Env::stdlib();
    // The extensions declare distinct functions on a fresh environment: nothing can clash.
    let _ = env.add_extension(cel::extensions::strings);
    let _ = env.add_extension(cel::extensions::encoders);
    env
}

/// A Struct variable is a map: an object that is not one (a Provider built without a manifest)
/// is the empty map, whose fields are missing keys.
fn object(value: &serde_json::Value) -> &serde_json::Value {
    static EMPTY: std::sync::LazyLock<serde_json::Value> =
        std::sync::LazyLock::new(|| serde_json::Value::Object(serde_json::Map::new()));
    if value.is_object() { value } else { &EMPTY }
}

fn parse_failure(source: &str, issues: &str) -> String {
    format!("failed to compile expression: failed to parse the CEL expression '{source}': {issues}")
}

fn mismatch(got: &str) -> String {
    format!(
        "failed to compile expression: CEL expression output type mismatch: expected string, got \
         {got}"
    )
}

/// cel-go's display of an issue at byte `offset`: `ERROR: <input>:<line>:<column>: <message>`
/// (the column from 1), then the line and a caret under the place (`.` per character before
/// it, full-width for a wide one).
fn issue_at(source: &str, offset: Option<(u32, u32)>, message: &str) -> String {
    let start = offset.map_or(0, |(start, _)| start as usize);
    let before = source.get(..start).unwrap_or(source);
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column: Vec<char> = before[line_start..].chars().collect();
    let line = source[line_start..]
        .lines()
        .next()
        .unwrap_or("")
        .replace('\t', " ");
    let wide = |c: char| c.len_utf8() > 1;
    let mut caret: String = column
        .iter()
        .map(|&c| if wide(c) { '\u{ff0e}' } else { '.' })
        .collect();
    let at = source[start.min(source.len())..].chars().next();
    caret.push(if at.is_some_and(wide) {
        '\u{ff3e}'
    } else {
        '^'
    });
    format!(
        "ERROR: <input>:{line_no}:{}: {message}\n | {line}\n | {caret}",
        column.len() + 1
    )
}

/// The first name `expr` uses that is neither a variable, a builtin name nor bound by an
/// enclosing comprehension (`exists(k, ...)`), with its node id.
fn undeclared<'e>(expr: &'e IdedExpr, bound: &mut Vec<&'e str>) -> Option<(&'e str, u64)> {
    match &expr.expr {
        Expr::Ident(name) => {
            let declared = VARIABLES.contains(&name.as_str())
                || BUILTIN_NAMES.contains(&name.as_str())
                || bound.contains(&name.as_str())
                // The parser's own accumulator names.
                || name.starts_with('@');
            (!declared).then_some((name.as_str(), expr.id))
        }
        Expr::Call(call) => call
            .target
            .iter()
            .map(|t| t.as_ref())
            .chain(&call.args)
            .find_map(|e| undeclared(e, bound)),
        Expr::Select(select) => undeclared(&select.operand, bound),
        Expr::List(list) => list.elements.iter().find_map(|e| undeclared(e, bound)),
        Expr::Map(map) => map.entries.iter().find_map(|entry| match &entry.expr {
            EntryExpr::MapEntry(e) => {
                undeclared(&e.key, bound).or_else(|| undeclared(&e.value, bound))
            }
            EntryExpr::StructField(f) => undeclared(&f.value, bound),
        }),
        Expr::Struct(s) => s.entries.iter().find_map(|entry| match &entry.expr {
            EntryExpr::StructField(f) => undeclared(&f.value, bound),
            EntryExpr::MapEntry(e) => undeclared(&e.value, bound),
        }),
        Expr::Comprehension(c) => {
            if let Some(found) = undeclared(&c.iter_range, bound) {
                return Some(found);
            }
            let depth = bound.len();
            bound.push(&c.iter_var);
            bound.extend(c.iter_var2.as_deref());
            bound.push(&c.accu_var);
            let found = [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result]
                .into_iter()
                .find_map(|e| undeclared(e, bound));
            bound.truncate(depth);
            found
        }
        Expr::Literal(_) | Expr::Unspecified => None,
    }
}

/// The result type of `expr`, as far as it can be told without types.
fn known(expr: &IdedExpr) -> Known {
    match &expr.expr {
        Expr::Literal(literal) => match literal {
            LiteralValue::String(_) => Known::String,
            LiteralValue::Boolean(_) => Known::Other("bool"),
            LiteralValue::Bytes(_) => Known::Other("bytes"),
            LiteralValue::Double(_) => Known::Other("double"),
            LiteralValue::Int(_) => Known::Other("int"),
            LiteralValue::UInt(_) => Known::Other("uint"),
            LiteralValue::Null => Known::Other("null_type"),
        },
        Expr::Ident(_) | Expr::Select(_) => Known::Dyn,
        Expr::Call(call) => match call.func_name.as_str() {
            "_[_]" => Known::Dyn,
            // string + anything is string (or a type error the evaluation reports).
            "_+_" if call.args.iter().any(|a| known(a) == Known::String) => Known::String,
            "_?_:_" => match call
                .args
                .get(1..3)
                .map(|arms| (known(&arms[0]), known(&arms[1])))
            {
                Some((Known::String, Known::String)) => Known::String,
                _ => Known::Unknown,
            },
            name if STRING_FUNCTIONS.contains(&name) => Known::String,
            _ => Known::Unknown,
        },
        Expr::List(_) => Known::Other("list"),
        Expr::Map(_) => Known::Other("map"),
        Expr::Comprehension(_) | Expr::Struct(_) | Expr::Unspecified => Known::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::ObjectReference;
    use serde_json::json;

    const UID: &str = "0c9c2e41-d2f9-4f9b-9c41-bebc1984d67a";

    /// The event, Alert and Provider of Flux's `Test_newCommitStatus`.
    fn flux_case(metadata: &[(&str, &str)]) -> (Event, serde_json::Value, serde_json::Value) {
        let event = Event {
            involved_object: ObjectReference {
                kind: "Kustomization".into(),
                name: "gitops-system".into(),
                ..Default::default()
            },
            metadata: metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        };
        let alert = json!({"metadata": {"name": "test-alert"}});
        let provider = json!({"metadata": {"uid": UID}});
        (event, alert, provider)
    }

    fn evaluate(source: &str, metadata: &[(&str, &str)]) -> Result<String, String> {
        let (event, alert, provider) = flux_case(metadata);
        StatusExpr::compile(source)?.evaluate(&event, &alert, &provider)
    }

    /// An expression, the event's metadata, and the result (`None`: it fails).
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);

    /// Flux's `Test_newCommitStatus`, case by case: the result, or that it fails.
    #[test]
    fn fluxs_cases() {
        let production = [("environment", "production")];
        let cases: [Case<'_>; 4] = [
            (
                "event.involvedObject.kind + '/' + event.involvedObject.name + '/' + \
                 event.metadata.environment + '/' + provider.metadata.uid + '/' + \
                 alert.metadata.name",
                &production,
                Some(
                    "Kustomization/gitops-system/production/0c9c2e41-d2f9-4f9b-9c41-bebc1984d67a/test-alert",
                ),
            ),
            (
                "(event.involvedObject.kind + '/' + event.involvedObject.name + '/' + \
                 event.metadata.environment + '/' + provider.metadata.uid + '/' + \
                 alert.metadata.name).lowerAscii()",
                &production,
                Some(
                    "kustomization/gitops-system/production/0c9c2e41-d2f9-4f9b-9c41-bebc1984d67a/test-alert",
                ),
            ),
            (
                "event.involvedObject.kind + '/' + event.involvedObject.name + '/' + \
                 notification.metadata.name",
                &production,
                None,
            ),
            (
                "kustomization.metadata.name + '/' + provider.metadata.uid",
                &[],
                None,
            ),
        ];
        for (source, metadata, want) in cases {
            let got = evaluate(source, metadata);
            assert_eq!(got.as_deref().ok(), want, "{source}: {got:?}");
        }
    }

    /// Flux refuses the undeclared names at compile time, with cel-go's message.
    #[test]
    fn undeclared_names_fail_to_compile_with_cel_gos_message() {
        let source = "event.involvedObject.kind + '/' + event.involvedObject.name + '/' + \
                      notification.metadata.name";
        let err = StatusExpr::compile(source).unwrap_err();
        let dots = ".".repeat(68);
        assert_eq!(
            err,
            format!(
                "failed to compile expression: failed to parse the CEL expression '{source}': \
                 ERROR: <input>:1:69: undeclared reference to 'notification' (in container '')\n | \
                 {source}\n | {dots}^"
            )
        );
        let err = StatusExpr::compile("kustomization.metadata.name + '/' + provider.metadata.uid")
            .unwrap_err();
        assert!(
            err.contains("ERROR: <input>:1:1: undeclared reference to 'kustomization'"),
            "{err}"
        );
    }

    #[test]
    fn comprehension_variables_and_builtin_names_are_declared() {
        let metadata = [("environment", "production")];
        let cases = [
            (
                "event.metadata.exists(k, k == 'environment') ? 'has' : 'has not'",
                "has",
            ),
            ("event.metadata.filter(k, k != '').join(',')", "environment"),
            ("string(type(event) == map)", "true"),
            ("base64.encode(b'ab')", "YWI="),
            (
                "'%s/%s'.format([event.involvedObject.name, 'x'])",
                "gitops-system/x",
            ),
            (
                "event.metadata.?team.orValue('none') + '/' + \
                 'A-B'.replace('-', '_').lowerAscii()",
                "none/a_b",
            ),
        ];
        for (source, want) in cases {
            assert_eq!(evaluate(source, &metadata).as_deref(), Ok(want), "{source}");
        }
        // A comprehension variable is not declared outside its comprehension.
        let err = StatusExpr::compile("event.metadata.exists(k, true) ? k : ''").unwrap_err();
        assert!(err.contains("undeclared reference to 'k'"), "{err}");
    }

    /// What cel-go's checker types as something other than a string is refused at compile
    /// time: a bare field (`dyn`), a literal of another type.
    #[test]
    fn results_not_known_to_be_strings_fail_to_compile() {
        for (source, got) in [
            ("event.metadata.environment", "dyn"),
            ("event.metadata['environment']", "dyn"),
            ("provider", "dyn"),
            ("42", "int"),
            ("true", "bool"),
            ("['a']", "list"),
        ] {
            assert_eq!(
                StatusExpr::compile(source).unwrap_err(),
                format!(
                    "failed to compile expression: CEL expression output type mismatch: \
                     expected string, got {got}"
                ),
                "{source}"
            );
        }
        assert!(StatusExpr::compile("string(event.metadata.environment)").is_ok());
    }

    #[test]
    fn syntax_errors_fail_to_compile() {
        let err = StatusExpr::compile("event.metadata.environment +").unwrap_err();
        assert!(
            err.starts_with(
                "failed to compile expression: failed to parse the CEL expression \
                 'event.metadata.environment +': ERROR: <input>:1:"
            ),
            "{err}"
        );
    }

    #[test]
    fn evaluation_failures_have_fluxs_messages() {
        let source = "event.metadata.environment + '/x'";
        let err = evaluate(source, &[("team", "a")]).unwrap_err();
        assert_eq!(
            err,
            format!("failed to evaluate the CEL expression '{source}': No such key: environment")
        );
        // As in Flux, an event without metadata has no `metadata` key at all.
        assert!(
            evaluate(source, &[])
                .unwrap_err()
                .ends_with("No such key: metadata")
        );
        let source = "size(event.involvedObject.name)";
        assert_eq!(
            evaluate(source, &[]).unwrap_err(),
            format!("failed to evaluate CEL expression as string: '{source}'")
        );
    }

    /// A Provider built without a manifest has an empty object: its fields are missing keys.
    #[test]
    fn a_provider_without_a_manifest_is_an_empty_map() {
        let (event, alert, _) = flux_case(&[]);
        let expr = StatusExpr::compile("has(provider.metadata) ? 'x' : 'none'").unwrap();
        assert_eq!(
            expr.evaluate(&event, &alert, &serde_json::Value::Null),
            Ok("none".into())
        );
    }

    #[test]
    fn issues_point_at_their_place_as_cel_go_does() {
        assert_eq!(
            issue_at("ab\n  cd", Some((5, 7)), "m"),
            "ERROR: <input>:2:3: m\n |   cd\n | ..^"
        );
        assert_eq!(
            issue_at("é x", Some((3, 4)), "m"),
            "ERROR: <input>:1:3: m\n | é x\n | \u{ff0e}.^"
        );
    }
}
