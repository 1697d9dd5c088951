use std::path::Path;
use std::time::Duration;

use super::*;

fn parse(text: &str) -> (ManifestSet, Vec<String>) {
    let (set, errors) = parse_str(Path::new("m.yaml"), text);
    (set, errors.iter().map(ToString::to_string).collect())
}

const GOOD: &str = r#"
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: slack
  namespace: flux-system
spec:
  type: slack
  channel: general
  address: https://hooks.slack.com/services/x
  timeout: 30s
  secretRef:
    name: slack-url
  proxySecretRef:
    name: proxy
  certSecretRef:
    name: ca
---
apiVersion: v1
kind: Secret
metadata:
  name: slack-url
  namespace: flux-system
stringData:
  address: "  https://hooks.slack.com/services/T0/B0/secret-token  "
  token: raw-token
  username: bot
  password: pw
  headers: |
    X-One: "1"
    Authorization: Bearer abc
data:
  token: aWdub3JlZA==
---
apiVersion: v1
kind: Secret
metadata: {name: proxy, namespace: flux-system}
stringData:
  address: http://127.0.0.1:3128
  username: puser
  password: ppass
---
apiVersion: v1
kind: Secret
metadata: {name: ca, namespace: flux-system}
data:
  ca.crt: LS0tLS1CRUdJTg==
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta1
kind: Alert
metadata:
  name: on-call
  namespace: flux-system
spec:
  providerRef:
    name: slack
  eventSeverity: error
  eventSources:
    - kind: Kustomization
      name: "*"
  exclusionList: ["^Dependencies"]
"#;

#[test]
fn loads_and_resolves_a_full_setup() {
    let (set, errors) = parse(GOOD);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        (
            set.providers.len(),
            set.secrets.len(),
            set.alerts.len(),
            set.config_maps.len(),
            set.skipped.len()
        ),
        (1, 3, 1, 1, 0)
    );
    let p = set.provider("flux-system", "slack").unwrap();
    assert_eq!(p.origin.line, 2);
    assert_eq!(p.spec.timeout, Some(Duration::from_secs(30)));
    let c = set.provider_config(p).unwrap();
    assert_eq!(
        c.address.expose(),
        "https://hooks.slack.com/services/T0/B0/secret-token"
    );
    assert!(c.address_from_secret);
    assert_eq!(
        c.token.as_ref().unwrap().expose(),
        "raw-token",
        "stringData wins over data"
    );
    assert_eq!(
        (c.username.as_str(), c.password.as_ref().unwrap().expose()),
        ("bot", "pw")
    );
    assert_eq!(c.headers["X-One"].expose(), "1");
    assert_eq!(c.headers["Authorization"].expose(), "Bearer abc");
    let proxy = c.proxy.as_ref().unwrap();
    assert_eq!(
        (proxy.url.as_str(), proxy.username.as_deref()),
        ("http://127.0.0.1:3128", Some("puser"))
    );
    assert_eq!(c.tls.ca_pem.as_ref().unwrap().expose(), b"-----BEGIN");
    assert_eq!(c.timeout, Duration::from_secs(30));
    let masked = c
        .masker()
        .mask("to https://hooks.slack.com/services/T0/B0/secret-token with raw-token, ppass");
    assert_eq!(masked, "to ***** with *****, *****");
    let a = &set.alerts[0];
    assert_eq!(a.spec.event_severity, "error");
    assert_eq!(a.spec.event_sources[0].namespace, None);
    assert!(a.spec.exclusion_list[0].is_match("Dependencies not ready"));
    assert!(set.check_references().is_empty());
}

#[test]
fn namespace_defaults_and_lists_are_read() {
    let (set, errors) = parse(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: notification.toolkit.fluxcd.io/v1beta2\n  kind: Provider\n  metadata: {name: hook}\n  spec: {type: generic, address: 'http://x'}\n",
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(set.providers[0].namespace, "default");
}

#[test]
fn errors_name_file_line_object_and_field() {
    let (_, errors) = parse(
        "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata:\n  name: p\nspec:\n  type: slak\n  timeout: 1h\n",
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("m.yaml:6 (document 1): Provider default/p: spec.type: unknown provider type \"slak\"; known types: generic, generic-hmac, slack"), "{}", errors[0]);
    assert_eq!(
        errors[1],
        "m.yaml:7 (document 1): Provider default/p: spec.timeout: invalid timeout \"1h\": units must be ms, s or m"
    );
}

#[test]
fn typos_and_version_mismatches_are_caught() {
    let (_, errors) = parse(
        "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata:\n  name: p\nspec:\n  type: generic\n  adress: http://x\n",
    );
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .starts_with("m.yaml:8 (document 1): Provider default/p: spec: unknown field `adress`, expected one of"),
        "{}",
        errors[0]
    );

    let (_, errors) = parse(
        "apiVersion: notification.toolkit.fluxcd.io/v1beta1\nkind: Alert\nmetadata:\n  name: a\nspec:\n  providerRef: {name: p}\n  eventSources: [{kind: Bucket, name: b}]\n  eventMetadata: {env: prod}\n",
    );
    assert_eq!(
        errors,
        [
            "m.yaml:8 (document 1): Alert default/a: spec.eventMetadata: not a field of notification.toolkit.fluxcd.io/v1beta1 Alert; it exists from v1beta2 on: change apiVersion to notification.toolkit.fluxcd.io/v1beta2 or later"
        ]
    );

    let (_, errors) = parse(
        "apiVersion: notification.toolkit.fluxcd.io/v1beta1\nkind: Provider\nmetadata:\n  name: p\nspec:\n  type: generic\n  proxySecretRef: {name: x}\n",
    );
    assert!(
        errors[0].contains(
            "spec.proxySecretRef: not a field of notification.toolkit.fluxcd.io/v1beta1 Provider"
        ),
        "{errors:?}"
    );

    let (_, errors) =
        parse("apiVersion: notification.toolkit.fluxcd.io/v2\nkind: Alert\nmetadata: {name: a}\n");
    assert!(
        errors[0].contains("apiVersion: Alert version \"v2\" is not one herald reads"),
        "{errors:?}"
    );
}

#[test]
fn alert_mistakes() {
    let (_, errors) = parse(
        "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata:\n  name: a\n  namespace: apps\nspec:\n  eventSeverity: warning\n  eventSources:\n    - kind: Kustomization\n  inclusionList: [\"ok\", \"(unclosed\"]\n",
    );
    let want = [
        "m.yaml:6 (document 1): Alert apps/a: spec.providerRef: missing; name the Provider this Alert sends to",
        "m.yaml:7 (document 1): Alert apps/a: spec.eventSeverity: \"warning\" is not one of \"info\", \"error\"",
        "m.yaml:8 (document 1): Alert apps/a: spec.eventSources[0].name: missing (use \"*\" for every name)",
    ];
    assert_eq!(&errors[..3], want);
    assert!(errors[3].starts_with("m.yaml:10 (document 1): Alert apps/a: spec.inclusionList[1]: invalid regular expression \"(unclosed\""), "{}", errors[3]);
}

#[test]
fn secret_and_reference_mistakes() {
    let (_, errors) =
        parse("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  token: '!!notbase64'\n");
    assert!(
        errors[0]
            .starts_with("m.yaml:5 (document 1): Secret default/s: data.token: not valid base64"),
        "{errors:?}"
    );

    let (set, errors) = parse(
        "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {name: p}\nspec:\n  type: generic\n  secretRef:\n    name: missing\n---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata: {name: a, namespace: other}\nspec:\n  providerRef: {name: p}\n  eventSources: [{kind: Bucket, name: '*'}]\n",
    );
    assert!(errors.is_empty());
    let e = set
        .provider_config(&set.providers[0])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "m.yaml:7 (document 1): Provider default/p: spec.secretRef.name: Secret default/missing not found in the manifests (a Provider's Secrets must be in its namespace)"
    );
    let refs: Vec<String> = set
        .check_references()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        refs,
        [
            "m.yaml:13 (document 2): Alert other/a: spec.providerRef.name: Provider other/p not found in the manifests (an Alert's Provider must be in the Alert's namespace)"
        ]
    );
}

#[test]
fn bad_headers_and_half_certificates_are_errors() {
    let base = "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {name: p}\nspec:\n  type: generic\n  secretRef: {name: s}\n  certSecretRef: {name: c}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: c}\nstringData:\n  tls.crt: x\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  headers: \"- not\\n- a map\"\n";
    let (set, errors) = parse(base);
    assert!(errors.is_empty(), "{errors:?}");
    let e = set
        .provider_config(&set.providers[0])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("spec.secretRef.name: key \"headers\" of Secret default/s: not a YAML map"),
        "{e}"
    );
}

#[test]
fn garbage_never_panics() {
    for text in [
        "",
        "---\n---\n",
        "- a\n- b\n",
        "just a string",
        "{{{{",
        "apiVersion: [\n",
        "kind: Provider\n",
        "apiVersion: v1\nkind: Secret\n",
        "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\n",
        "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {name: x}\nspec: 5\n",
        "\u{0}\u{1}",
        "a: &a [*a]\n",
        "apiVersion: v1\nkind: List\nitems: [1, {kind: Secret}]\n",
    ] {
        let _ = parse(text);
    }
    let (_, errors) = parse("- a\n- b\n");
    assert_eq!(
        errors,
        [
            "m.yaml:1 (document 1): not a Kubernetes object: expected a mapping with apiVersion and kind"
        ]
    );
}

#[test]
fn duplicates_are_reported() {
    let doc = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n";
    let (_, errors) = parse(&format!("{doc}---\n{doc}"));
    assert_eq!(
        errors,
        ["m.yaml:7 (document 2): Secret default/s: defined twice; first at m.yaml:1"]
    );
}

#[test]
fn secret_problems_never_quote_values() {
    for body in [
        "data:\n  token: 123456789\n",
        "stringData:\n  token: [917264, 2]\n",
        "data:\n  token: '!9172645'\n",
    ] {
        let (_, errors) = parse(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\n{body}"
        ));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("Secret default/s"), "{errors:?}");
        for secret in ["123456789", "917264", "9172645", "!"] {
            assert!(!errors[0].contains(secret), "{secret} in {errors:?}");
        }
    }
}

#[test]
fn herald_annotations_set_the_window_and_typos_are_errors() {
    let provider = |annotations: &str| {
        format!(
            "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata:\n  name: p\n  namespace: ns\n  annotations:\n{annotations}\nspec:\n  type: generic\n  address: http://x\n"
        )
    };
    let (set, errors) = parse(&provider(
        "    herald.dev/max-in-flight: \"8\"\n    kustomize.toolkit.fluxcd.io/ignored: x",
    ));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(set.providers[0].max_in_flight, Some(8));
    let (set, errors) = parse(&provider("    other.example/x: y"));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(set.providers[0].max_in_flight, None);

    let (_, errors) = parse(&provider("    herald.dev/max-in-flight: \"0\""));
    assert_eq!(
        errors,
        [
            "m.yaml:7 (document 1): Provider ns/p: metadata.annotations.herald.dev/max-in-flight: \"0\" is not a whole number of at least 1"
        ]
    );
    let (_, errors) = parse(&provider("    herald.dev/max-inflight: \"4\""));
    assert_eq!(
        errors,
        [
            "m.yaml:7 (document 1): Provider ns/p: metadata.annotations.herald.dev/max-inflight: unknown herald annotation for a Provider (herald reads herald.dev/max-in-flight, herald.dev/template, herald.dev/template-from, herald.dev/template-content-type)"
        ]
    );
}

#[test]
fn a_unicode_class_needs_the_unicode_engine_and_says_so_where() {
    let (set, errors) = parse(
        "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata: {name: a, namespace: apps}\nspec:\n  providerRef: {name: p}\n  eventSources: [{kind: Kustomization, name: '*'}]\n  exclusionList: ['\\p{Greek}']\n",
    );
    if crate::pattern::UNICODE_BUILT_IN {
        assert!(errors.is_empty(), "{errors:?}");
        assert!(set.alerts[0].spec.exclusion_list[0].is_match("λ"));
    } else {
        assert_eq!(
            errors,
            [
                "m.yaml:7 (document 1): Alert apps/a: spec.exclusionList[0]: invalid regular expression \"\\\\p{Greek}\": the Unicode class `\\p` needs herald built with the cargo feature `unicode-regex`"
            ]
        );
    }
}
