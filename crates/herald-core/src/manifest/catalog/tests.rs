use std::path::Path;

use super::*;
use crate::{Event, Family, NotifyFuture, ProviderType};

#[derive(Debug)]
struct Nop;

impl Notifier for Nop {
    fn post<'a>(&'a self, _event: &'a Event) -> NotifyFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

fn nop(_: &ProviderConfig) -> Result<Arc<dyn Notifier>, BuildError> {
    Ok(Arc::new(Nop))
}

/// Refuses an empty token, and quotes a token it does not like (to check masking).
fn picky(config: &ProviderConfig) -> Result<Arc<dyn Notifier>, BuildError> {
    match config.token.as_ref().map(|t| t.expose()) {
        None | Some("") => Err(BuildError::invalid(
            "secret key \"token\"",
            "HMAC key is empty",
        )),
        Some(t) if t.starts_with("bad") => Err(BuildError::invalid(
            "spec.address",
            format!("{t} is not accepted"),
        )),
        Some(_) => Ok(Arc::new(Nop)),
    }
}

/// A build with the generic family only (so `slack` is not compiled in).
fn registry() -> Registry {
    let mut r = Registry::new();
    r.add_family(Family::Generic);
    r.register(ProviderType::Generic, nop);
    r.register(ProviderType::GenericHmac, picky);
    r
}

fn catalog(files: &[(&str, &str)]) -> Catalog {
    let mut set = ManifestSet::default();
    for (name, text) in files {
        set.add_file(Path::new(name), text);
    }
    Catalog::new(set, &registry())
}

fn provider(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: {name}, namespace: ns}}\nspec:\n{spec}\n"
    )
}

fn alert(name: &str, provider: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata: {{name: {name}, namespace: ns}}\nspec:\n  providerRef: {{name: {provider}}}\n  eventSources: [{{kind: Bucket, name: '*'}}]\n{extra}\n"
    )
}

fn secret(name: &str, body: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: ns}}\n{body}\n"
    )
}

fn key(kind: Kind, name: &str) -> ObjectKey {
    ObjectKey::new(kind, "ns", name)
}

fn reasons(c: &Catalog, kind: Kind, name: &str) -> Vec<String> {
    c.status(&key(kind, name))
        .unwrap_or_else(|| panic!("no status for {kind} {name}"))
        .reasons()
}

/// One good Provider and Alert, and one broken object of each kind: each is judged on its own.
#[test]
fn each_object_stands_or_falls_alone() {
    let text = [
        provider("good", "  type: generic\n  address: http://127.0.0.1:1/"),
        alert("good", "good", ""),
        provider("unknown-type", "  type: slak"),
        provider("not-compiled", "  type: slack\n  address: http://x"),
        provider("no-secret", "  type: generic\n  secretRef: {name: missing}"),
        provider("bad-secret", "  type: generic\n  secretRef: {name: broken}"),
        secret("broken", "data:\n  token: '!!notbase64'"),
        provider("empty-key", "  type: generic-hmac\n  address: http://x"),
        provider(
            "identity",
            "  type: generic\n  address: http://x\n  serviceAccountName: sa",
        ),
        provider("typo", "  type: generic\n  adress: http://x"),
        alert("severity", "missing", "  eventSeverity: warning"),
        alert("to-broken", "not-compiled", ""),
        secret("twice", "stringData: {a: b}"),
        secret("twice", "stringData: {a: c}"),
        "---\napiVersion: v1\nkind: Secret\nmetadata: {namespace: ns}\n".to_owned(),
    ]
    .concat();
    let c = catalog(&[("m.yaml", &text), ("bad.yaml", "a: [\n")]);

    assert!(c.status(&key(Kind::Provider, "good")).unwrap().is_ready());
    assert!(c.status(&key(Kind::Alert, "good")).unwrap().is_ready());
    let ready: Vec<&str> = c.ready_providers().map(|(p, _)| p.name.as_str()).collect();
    assert_eq!(ready, ["good"]);
    assert!(c.provider("ns", "good").is_some());
    assert!(!c.all_ready());

    let one = |kind, name| {
        let r = reasons(&c, kind, name);
        assert_eq!(r.len(), 1, "{kind} {name}: {r:?}");
        r.into_iter().next().unwrap_or_default()
    };
    assert!(
        one(Kind::Provider, "unknown-type")
            .starts_with("m.yaml:21 (document 3): spec.type: unknown provider type \"slak\""),
        "{:?}",
        reasons(&c, Kind::Provider, "unknown-type")
    );
    assert_eq!(
        one(Kind::Provider, "not-compiled"),
        "m.yaml:27 (document 4): spec.type: provider type `slack` needs the `chat` feature, which this build of herald does not include (compiled families: generic); rebuild with `--features chat`"
    );
    assert_eq!(
        one(Kind::Provider, "no-secret"),
        "m.yaml:35 (document 5): spec.secretRef.name: Secret ns/missing not found in the manifests (a Provider's Secrets must be in its namespace)"
    );
    assert_eq!(
        one(Kind::Provider, "bad-secret"),
        "m.yaml:42 (document 6): spec.secretRef.name: Secret ns/broken is not ready: data.token: not valid base64 (a character that is not base64 at offset 0); put clear text under stringData instead"
    );
    assert_eq!(
        one(Kind::Secret, "broken"),
        "m.yaml:48 (document 7): data.token: not valid base64 (a character that is not base64 at offset 0); put clear text under stringData instead"
    );
    assert_eq!(
        one(Kind::Provider, "empty-key"),
        "m.yaml:53 (document 8): secret key \"token\": HMAC key is empty"
    );
    assert!(
        one(Kind::Provider, "identity").starts_with("m.yaml:63 (document 9): spec.serviceAccountName: workload identity through a Kubernetes ServiceAccount is not available to herald"),
        "{:?}",
        reasons(&c, Kind::Provider, "identity")
    );
    assert!(
        one(Kind::Provider, "typo")
            .starts_with("m.yaml:70 (document 10): spec: unknown field `adress`"),
        "{:?}",
        reasons(&c, Kind::Provider, "typo")
    );
    // Every problem of the Alert, of every stage: its field and its missing Provider.
    assert_eq!(
        reasons(&c, Kind::Alert, "severity"),
        [
            "m.yaml:78 (document 11): spec.eventSeverity: \"warning\" is not one of \"info\", \"error\"",
            "m.yaml:76 (document 11): spec.providerRef.name: Provider ns/missing not found in the manifests (an Alert's Provider must be in the Alert's namespace)",
        ]
    );
    assert_eq!(
        one(Kind::Alert, "to-broken"),
        "m.yaml:84 (document 12): spec.providerRef.name: Provider ns/not-compiled is not ready: spec.type: provider type `slack` needs the `chat` feature, which this build of herald does not include (compiled families: generic); rebuild with `--features chat`"
    );
    assert_eq!(
        one(Kind::Secret, "twice"),
        "m.yaml:95 (document 14): defined twice; first at m.yaml:88"
    );
    // Problems that belong to no object make their file not ready.
    let file = |name: &str| ObjectKey::file(Path::new(name));
    assert_eq!(
        c.status(&file("m.yaml")).unwrap().reasons(),
        ["m.yaml:100 (document 15): metadata.name: a Secret needs a name"]
    );
    let bad = c.status(&file("bad.yaml")).unwrap().reasons();
    assert!(bad[0].starts_with("bad.yaml:"), "{bad:?}");

    // Matching uses the Alerts whose own fields are valid, ready or not.
    let matchable: Vec<&str> = c.matchable_alerts().map(|a| a.name.as_str()).collect();
    assert_eq!(matchable, ["good", "to-broken"]);
    // Statuses come by kind, namespace and name.
    let order: Vec<String> = c.statuses().map(|s| s.key.to_string()).collect();
    assert_eq!(
        order.first().map(String::as_str),
        Some("Provider ns/bad-secret")
    );
    assert_eq!(order.last().map(String::as_str), Some("File m.yaml"));
    // `problems` lists them all, by file and line.
    let all = c.problems();
    assert_eq!(all.len(), 14, "{all:#?}");
    assert!(all[0].to_string().starts_with("bad.yaml:"));
}

#[test]
fn build_errors_are_masked_and_placed_at_their_field() {
    let text = [
        provider(
            "p",
            "  type: generic-hmac\n  address: http://x\n  secretRef: {name: s}",
        ),
        secret("s", "stringData: {token: bad-9f3c1e}"),
    ]
    .concat();
    let c = catalog(&[("m.yaml", &text)]);
    assert_eq!(
        reasons(&c, Kind::Provider, "p"),
        ["m.yaml:7 (document 1): spec.address: ***** is not accepted"]
    );
}

#[test]
fn a_later_check_fails_an_object_and_its_alerts() {
    let text = [
        provider("p", "  type: generic\n  address: http://x"),
        alert("a", "p", ""),
    ]
    .concat();
    let mut c = catalog(&[("m.yaml", &text)]);
    assert!(c.all_ready());
    let p = key(Kind::Provider, "p");
    let problem = ManifestError::at(&c.set().providers[0].origin, &["metadata"])
        .object(Kind::Provider, "ns", "p")
        .field("metadata.annotations")
        .message("bad template");
    c.fail(&p, problem.clone());
    c.fail(&p, problem);
    assert!(c.provider("ns", "p").is_none());
    assert_eq!(
        reasons(&c, Kind::Alert, "a"),
        [
            "m.yaml:13 (document 2): spec.providerRef.name: Provider ns/p is not ready: metadata.annotations: bad template"
        ],
        "the Alert is told once"
    );
    assert_eq!(
        c.matchable_alerts().count(),
        1,
        "still matched, to count its events"
    );
}

#[test]
fn the_uid_reaches_the_provider_config() {
    let text = "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata:\n  name: p\n  namespace: ns\n  uid: 0c9c2e41-d2f5-4e4b-9c1a-2a6b1f0e7d3c\nspec: {type: generic, address: 'http://x'}\n---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {name: q, namespace: ns}\nspec: {type: generic, address: 'http://x'}\n";
    let c = catalog(&[("m.yaml", text)]);
    let p = &c.provider("ns", "p").unwrap().config;
    assert_eq!(
        p.uid.as_deref(),
        Some("0c9c2e41-d2f5-4e4b-9c1a-2a6b1f0e7d3c")
    );
    // Flux's default commit-status id is `<kind>/<name>/<first UID segment>`, lowercased.
    assert_eq!(p.uid_prefix(), Some("0c9c2e41"));
    let q = &c.provider("ns", "q").unwrap().config;
    assert_eq!((q.uid.as_deref(), q.uid_prefix()), (None, None));
}

#[test]
fn providers_and_alerts_keep_their_manifest_objects() {
    let text = "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata:\n  name: p\n  namespace: ns\n  uid: 0c9c2e41-d2f5\n  labels: {team: a}\nspec: {type: generic, address: 'http://x'}\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: notification.toolkit.fluxcd.io/v1beta3\n  kind: Alert\n  metadata: {name: a, namespace: ns}\n  spec:\n    providerRef: {name: p}\n    eventSources: [{kind: Kustomization, name: '*'}]\n";
    let c = catalog(&[("m.yaml", text)]);
    // The `provider` and `alert` of a commitStatusExpr: the documents as written.
    let p = &c.provider("ns", "p").unwrap().config;
    assert_eq!(p.object["metadata"]["labels"]["team"], "a");
    assert_eq!(p.object["metadata"]["uid"], "0c9c2e41-d2f5");
    assert_eq!(p.object["spec"]["type"], "generic");
    let a = &c.set().alerts[0];
    assert_eq!(a.object["metadata"]["name"], "a");
    assert_eq!(a.object["spec"]["providerRef"]["name"], "p");
    assert_eq!(c.set().providers[0].object, p.object);
}

/// A Provider or Alert document whose metadata carries `annotations` (block style).
fn annotated(kind: &str, name: &str, annotations: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: ns\n  annotations:\n{annotations}\nspec:\n{spec}\n"
    )
}

const GENERIC: &str = "  type: generic\n  address: http://127.0.0.1:1/hook";

fn alert_spec(provider: &str) -> String {
    format!("  providerRef: {{name: {provider}}}\n  eventSources: [{{kind: Bucket, name: '*'}}]")
}

/// Templates inline and from ConfigMaps: a bad one makes only its object not ready, with the
/// file, line, annotation, and the line and column inside the template.
#[cfg(feature = "templates")]
#[test]
fn templates_are_checked_per_object() {
    let templates = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: msgs\n  namespace: ns\ndata:\n  good: '{\"text\": {{ event.message | json }}}'\n  bad: |\n    {\"text\": \"ok\",\n     \"who\": {{ nobody }}}\n";
    let files = [
        (
            "p.yaml",
            [
                annotated(
                    "Provider",
                    "inline",
                    "    herald.dev/template: '{\"obj\": \"{{ obj }}\"}'",
                    GENERIC,
                ),
                annotated(
                    "Provider",
                    "syntax",
                    "    herald.dev/template: |\n      {\"a\": 1}\n      {{ event.message }",
                    GENERIC,
                ),
                annotated(
                    "Provider",
                    "from",
                    "    herald.dev/template-from: msgs/good",
                    GENERIC,
                ),
                annotated(
                    "Provider",
                    "missing",
                    "    herald.dev/template-from: msgs/nope",
                    GENERIC,
                ),
                annotated("Provider", "plain", "    herald.dev/other: x", GENERIC),
                provider("untemplated", GENERIC),
            ]
            .concat(),
        ),
        (
            "a.yaml",
            [
                annotated(
                    "Alert",
                    "bad-from",
                    "    herald.dev/template-from: msgs/bad",
                    &alert_spec("untemplated"),
                ),
                annotated(
                    "Alert",
                    "good",
                    "    herald.dev/template: '{\"alert\": \"{{ alert.name }}\"}'",
                    &alert_spec("untemplated"),
                ),
                alert("plain", "untemplated", ""),
                alert("of-syntax", "syntax", ""),
            ]
            .concat(),
        ),
        ("t.yaml", templates.to_owned()),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(f, t)| (*f, t.as_str())).collect();
    let c = catalog(&files);
    for ready in [
        (Kind::Provider, "inline"),
        (Kind::Provider, "from"),
        (Kind::Provider, "untemplated"),
        (Kind::Alert, "good"),
        (Kind::Alert, "plain"),
        (Kind::ConfigMap, "msgs"),
    ] {
        assert_eq!(
            reasons(&c, ready.0, ready.1),
            Vec::<String>::new(),
            "{ready:?}"
        );
    }
    assert_eq!(
        reasons(&c, Kind::Provider, "syntax"),
        [
            "p.yaml:19 (document 2): metadata.annotations.herald.dev/template: template: line 2, \
          column 18: syntax error: unexpected `}`, expected end of variable block"
        ]
    );
    assert_eq!(
        reasons(&c, Kind::Provider, "missing"),
        [
            "p.yaml:43 (document 4): metadata.annotations.herald.dev/template-from: ConfigMap \
          ns/msgs has no key \"nope\" in its data"
        ]
    );
    assert_eq!(
        reasons(&c, Kind::Provider, "plain"),
        [
            "p.yaml:54 (document 5): metadata.annotations.herald.dev/other: unknown herald \
          annotation for a Provider (herald reads herald.dev/max-in-flight, herald.dev/template, \
          herald.dev/template-from, herald.dev/template-content-type)"
        ]
    );
    assert_eq!(
        reasons(&c, Kind::Alert, "bad-from"),
        [
            "a.yaml:8 (document 1): metadata.annotations.herald.dev/template-from: template \"bad\" \
          of ConfigMap ns/msgs (t.yaml:9): line 2, column 12: undefined value: `nobody` is \
          undefined (rendering the sample info event)"
        ]
    );
    let of_syntax = reasons(&c, Kind::Alert, "of-syntax");
    assert!(
        of_syntax[0].contains("Provider ns/syntax is not ready"),
        "{of_syntax:?}"
    );

    let templates = &c.provider("ns", "untemplated").unwrap().config.templates;
    let rendered = |alert: &str| {
        let object = serde_json::json!({"metadata": {"name": alert, "namespace": "ns"}});
        templates
            .for_alert(&object)
            .map(|t| t.render(&Event::default(), &object).unwrap())
    };
    assert_eq!(rendered("good").as_deref(), Some(r#"{"alert": "good"}"#));
    assert_eq!(
        rendered("plain"),
        None,
        "an untemplated Alert keeps Flux's body"
    );
    assert_eq!(rendered("bad-from"), None);
    assert!(
        c.provider("ns", "inline")
            .unwrap()
            .config
            .templates
            .for_alert(&serde_json::Value::Null)
            .is_some()
    );
}

/// A build without the engine (feature `templates` off) refuses each templated object with the
/// feature that would take it, and its Alerts with it; the others stand.
#[cfg(not(feature = "templates"))]
#[test]
fn without_the_engine_only_templated_objects_are_not_ready() {
    let p = [
        annotated(
            "Provider",
            "templated",
            "    herald.dev/template: '{\"obj\": \"{{ obj }}\"}'",
            GENERIC,
        ),
        provider("plain", GENERIC),
    ]
    .concat();
    let a = [
        alert("of-templated", "templated", ""),
        annotated(
            "Alert",
            "templated-alert",
            "    herald.dev/template: x",
            &alert_spec("plain"),
        ),
        alert("of-plain", "plain", ""),
    ]
    .concat();
    let c = catalog(&[("p.yaml", &p), ("a.yaml", &a)]);
    assert_eq!(
        reasons(&c, Kind::Provider, "templated"),
        [
            "p.yaml:8 (document 1): metadata.annotations.herald.dev/template: template: this \
          herald is built without message templates; build it with the cargo feature \
          `templates` (on by default), or remove the annotation"
        ]
    );
    let of_templated = reasons(&c, Kind::Alert, "of-templated");
    assert!(
        of_templated.len() == 1 && of_templated[0].contains("Provider ns/templated is not ready"),
        "{of_templated:?}"
    );
    let templated_alert = reasons(&c, Kind::Alert, "templated-alert");
    assert!(
        templated_alert.len() == 1
            && templated_alert[0].contains("built without message templates"),
        "{templated_alert:?}"
    );
    for ready in [(Kind::Provider, "plain"), (Kind::Alert, "of-plain")] {
        assert_eq!(
            reasons(&c, ready.0, ready.1),
            Vec::<String>::new(),
            "{ready:?}"
        );
    }
}

#[test]
fn template_annotations_are_read_strictly() {
    let cases = [
        (
            "    herald.dev/template: x\n    herald.dev/template-from: a/b",
            "herald.dev/template-from: set either herald.dev/template or herald.dev/template-from, not both",
        ),
        (
            "    herald.dev/template-from: just-a-name",
            "herald.dev/template-from: \"just-a-name\" is not <configmap>/<key>",
        ),
        (
            "    herald.dev/template-content-type: text/plain",
            "herald.dev/template-content-type: a content type without a template",
        ),
        (
            "    herald.dev/max-in-flight: '2'",
            "herald.dev/max-in-flight: unknown herald annotation for an Alert",
        ),
        (
            "    herald.dev/template-from: other/key",
            "herald.dev/template-from: ConfigMap ns/other not found in the manifests",
        ),
    ];
    for (annotations, want) in cases {
        let text = [
            provider("p", GENERIC),
            annotated("Alert", "a", annotations, &alert_spec("p")),
        ]
        .concat();
        let c = catalog(&[("f.yaml", &text)]);
        let got = reasons(&c, Kind::Alert, "a");
        assert!(
            got.len() == 1 && got[0].contains(want),
            "{annotations}: {got:?}"
        );
        assert!(c.status(&key(Kind::Provider, "p")).unwrap().is_ready());
    }
}
