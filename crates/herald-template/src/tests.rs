use serde_json::json;

use super::*;

fn ctx() -> serde_json::Value {
    json!({
        "event": {"message": "a <b> & \"c\" 1.2_3", "severity": "error", "metadata": {"env": "prod"}},
        "items": [1, 2, 3],
        "n": 3,
    })
}

fn render(source: &str) -> Result<String, TemplateError> {
    Template::compile(source, &Limits::default())?.render(&ctx())
}

#[test]
fn renders_with_the_filters() {
    let cases = [
        ("{{ event.message }}", "a <b> & \"c\" 1.2_3"),
        (
            "{{ event.message | telegram }}",
            "a <b\\> & \"c\" 1\\.2\\_3",
        ),
        (
            "{{ event.message | slack }}",
            "a &lt;b&gt; &amp; \"c\" 1.2_3",
        ),
        (
            "{{ event.message | html }}",
            "a &lt;b&gt; &amp; &#34;c&#34; 1.2_3",
        ),
        ("{{ event.message | json }}", r#""a <b> & \"c\" 1.2_3""#),
        ("{{ event.metadata | json }}", r#"{"env":"prod"}"#),
        ("{{ items | json }}", "[1,2,3]"),
        ("{{ n | telegram }} {{ n | json }}", "3 3"),
        ("{{ event.message | truncate(5) }}", "a <b…"),
        ("{{ event.message | truncate(5, '...') }}", "a ..."),
        ("{{ 'short' | truncate(5) }}", "short"),
        ("{{ 'ünïcödé' | truncate(4) }}", "ünï…"),
        ("{{ event.severity | upper }}", "ERROR"),
        ("{% for i in items %}{{ i }},{% endfor %}", "1,2,3,"),
        ("{{ event.missing | default('none') }}", "none"),
        (
            "{% if event.severity == 'error' %}❌{% else %}✅{% endif %}",
            "❌",
        ),
    ];
    for (source, want) in cases {
        assert_eq!(render(source).unwrap(), want, "{source}");
    }
}

#[test]
fn errors_say_what_and_where() {
    // Source, kind, line, column (when checked) and a part of the message.
    type Case = (
        &'static str,
        ErrorKind,
        Option<usize>,
        Option<usize>,
        &'static str,
    );
    let cases: [Case; 7] = [
        // An undefined value given to a filter.
        (
            "{{ nope | slack }}",
            ErrorKind::Undefined,
            Some(1),
            None,
            "undefined",
        ),
        (
            "{{ n }\n",
            ErrorKind::Syntax,
            Some(1),
            Some(6),
            "syntax error",
        ),
        (
            "ok\n{% for i in items %}\n{{ i }}\n",
            ErrorKind::Syntax,
            Some(3),
            None,
            "syntax error",
        ),
        (
            "line one\n  {{ nope }}",
            ErrorKind::Undefined,
            Some(2),
            Some(6),
            "undefined value",
        ),
        (
            "{{ event.nope.deeper }}",
            ErrorKind::Undefined,
            Some(1),
            None,
            "undefined value",
        ),
        (
            "{{ n | truncate('x') }}",
            ErrorKind::Render,
            Some(1),
            None,
            "",
        ),
        // No loader: a template cannot read another one.
        (
            "{% include 'x' %}",
            ErrorKind::Syntax,
            Some(1),
            Some(4),
            "unknown statement include",
        ),
    ];
    for (source, kind, line, column, message) in cases {
        let err = render(source).unwrap_err();
        assert_eq!(err.kind, kind, "{source}: {err}");
        assert_eq!(err.line, line, "{source}: {err}");
        if column.is_some() {
            assert_eq!(err.column, column, "{source}: {err}");
        }
        assert!(err.message.contains(message), "{source}: {err}");
    }
}

#[test]
fn limits_stop_runaway_templates() {
    let limits = Limits::default();
    let cases = [
        // A loop that does not end in practice: 10^10 iterations.
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        // Output that grows without bound.
        "{% for a in range(100000) %}{{ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' }}{% endfor %}",
        // Values that grow without bound.
        "{% set s = 'x' * 100000000 %}{{ s | length }}",
    ];
    for source in cases {
        let err = Template::compile(source, &limits)
            .and_then(|t| t.render(&ctx()))
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Limit, "{source}: {err}");
    }
    let small = Limits {
        max_output: 10,
        ..Limits::DEFAULT
    };
    let t = Template::compile("{{ event.message }}", &small).unwrap();
    let err = t.render(&ctx()).unwrap_err();
    assert_eq!(err.message, "the output is larger than the limit");
    assert_eq!(
        Template::compile("0123456789", &small)
            .unwrap()
            .render(&ctx())
            .unwrap(),
        "0123456789"
    );
}

#[test]
fn deep_nesting_is_refused() {
    let depth = 200;
    let source = format!(
        "{}x{}",
        "{% if true %}".repeat(depth),
        "{% endif %}".repeat(depth)
    );
    let err = render(&source).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Limit, "{err}");
}

#[test]
fn columns_count_characters() {
    assert_eq!(column_of("ab\ncdé f", 3), 1);
    assert_eq!(column_of("ab\ncdé f", 8), 5);
    assert_eq!(column_of("x", 99), 2);
}

#[test]
fn a_compiled_template_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Template>();
}
