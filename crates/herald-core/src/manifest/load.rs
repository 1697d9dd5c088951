//! Parsing manifest text: multi-document YAML, strict per-version fields.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use base64::Engine as _;
use serde::de::DeserializeOwned;

use super::raw;
use super::{
    Alert, AlertSpec, DEFAULT_NAMESPACE, EventSource, HERALD_ANNOTATION_PREFIX, Kind,
    MAX_IN_FLIGHT_ANNOTATION, ManifestError, ManifestSet, NOTIFICATION_GROUP,
    NOTIFICATION_VERSIONS, ObjectKey, Origin, Provider, ProviderSpec, Secret, TemplateSource,
    TemplateText,
};
use crate::pattern::Pattern;
use crate::template::{
    TEMPLATE_ANNOTATION, TEMPLATE_CONTENT_TYPE_ANNOTATION, TEMPLATE_FROM_ANNOTATION,
};
use crate::{ProviderType, SecretBytes, duration};

/// The longest `address`, `channel`, `username` and `proxy` the CRD accepts.
pub(super) const MAX_FIELD_LEN: usize = 2048;

/// Parses the text of one file (named `file` in messages). Returns what was read and the
/// problems found, duplicates within the text included; references are not checked.
pub fn parse_str(file: &Path, text: &str) -> (ManifestSet, Vec<ManifestError>) {
    let mut set = ManifestSet::default();
    parse_into(file, text, &mut set);
    let mut errors = std::mem::take(&mut set.problems);
    errors.extend(duplicates(&set));
    (set, errors)
}

/// Splits a YAML stream into documents: `(first line, text)`, lines 1-based.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    let mut ended = false;
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if let Some(rest) = line.strip_prefix("---")
            && (rest.is_empty() || rest.starts_with([' ', '\t']))
        {
            docs.push((start, std::mem::take(&mut current)));
            ended = false;
            let rest = rest.trim_start();
            if rest.is_empty() || rest.starts_with('#') {
                start = lineno + 1;
            } else {
                start = lineno;
                current.push_str(rest);
                current.push('\n');
            }
            continue;
        }
        if line == "..." || line.starts_with("... ") {
            ended = true;
            continue;
        }
        if !ended {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.push((start, current));
    let is_content = |l: &str| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#') && !t.starts_with('%')
    };
    // A document starts at its first line of content: drop leading blank and comment lines.
    docs.into_iter()
        .filter_map(|(start, doc)| {
            let skip = doc.lines().position(is_content)?;
            let text: String = doc.lines().skip(skip).flat_map(|l| [l, "\n"]).collect();
            Some((start + skip, text))
        })
        .collect()
}

/// Where a document's fields come from: its text (with line numbers) or a `List` item.
#[derive(Clone, Copy)]
enum Source<'a> {
    Text(&'a str),
    Value(&'a serde_yaml_ng::Value),
}

impl Source<'_> {
    /// The document as JSON (`null` if it has what JSON cannot hold, such as a non-string key).
    fn object(&self) -> serde_json::Value {
        self.read().unwrap_or_default()
    }

    fn read<T: DeserializeOwned>(&self) -> Result<T, serde_yaml_ng::Error> {
        match self {
            Source::Text(t) => serde_yaml_ng::from_str(t),
            Source::Value(v) => serde_yaml_ng::from_value((*v).clone()),
        }
    }
}

fn yaml_error(origin: &Origin, err: &serde_yaml_ng::Error) -> ManifestError {
    let mut message = err.to_string();
    // The location goes into the error's own line; drop serde_yaml's copy of it.
    if let Some(pos) = message.rfind(" at line ") {
        message.truncate(pos);
    }
    let line = err
        .location()
        .map(|l| origin.line + l.line() - 1)
        .unwrap_or(origin.line);
    ManifestError {
        file: Some(origin.file.clone()),
        line: Some(line),
        document: Some(origin.document),
        object: None,
        field: None,
        message,
    }
}

pub(super) fn parse_into(file: &Path, text: &str, set: &mut ManifestSet) {
    for (index, (line, doc)) in split_documents(text).into_iter().enumerate() {
        let origin = Origin::new(file, index + 1, line, &doc);
        parse_document(&origin, Source::Text(&doc), set);
    }
}

/// The kinds herald reads, by their `kind`.
fn kind_of(kind: &str) -> Option<Kind> {
    match kind {
        "Provider" => Some(Kind::Provider),
        "Alert" => Some(Kind::Alert),
        "Secret" => Some(Kind::Secret),
        "ConfigMap" => Some(Kind::ConfigMap),
        _ => None,
    }
}

fn parse_document(origin: &Origin, source: Source<'_>, set: &mut ManifestSet) {
    let header: raw::Header = match source.read() {
        Ok(h) => h,
        Err(e) => {
            let mut err = yaml_error(origin, &e);
            if err.message.contains("expected struct Header") {
                err.message =
                    "not a Kubernetes object: expected a mapping with apiVersion and kind".into();
            }
            set.problems.push(err);
            return;
        }
    };
    let (Some(api_version), Some(kind)) = (header.api_version.clone(), header.kind.clone()) else {
        set.skipped
            .push((origin.clone(), "(no apiVersion or kind)".into()));
        return;
    };
    let (group, version) = api_version
        .split_once('/')
        .unwrap_or(("", api_version.as_str()));
    // The object a problem of this document belongs to, read leniently so that even a
    // document herald cannot read names its object.
    let owner = |kind: Kind, err: ManifestError| -> ManifestError {
        let meta = header.meta();
        match meta.name.filter(|n| !n.is_empty()) {
            Some(name) => err.object(kind, &namespace_of(&meta.namespace), &name),
            None => err,
        }
    };
    match (group, kind.as_str()) {
        (NOTIFICATION_GROUP, "Provider" | "Alert") if !NOTIFICATION_VERSIONS.contains(&version) => {
            let err = ManifestError::at(origin, &["apiVersion"]).field("apiVersion").message(format!(
                "{kind} version {version:?} is not one herald reads (use {NOTIFICATION_GROUP}/v1beta1, \
                 v1beta2 or v1beta3)"
            ));
            set.problems
                .push(owner(kind_of(&kind).unwrap_or(Kind::File), err));
        }
        (NOTIFICATION_GROUP, "Provider") => match source.read::<raw::Object<raw::ProviderSpec>>() {
            Ok(raw) => match provider(origin, &api_version, version, raw) {
                Ok(p) => set.providers.push(Provider {
                    object: source.object(),
                    ..p
                }),
                Err(e) => set.problems.extend(e),
            },
            Err(e) => {
                let err = with_version_hint(yaml_error(origin, &e), "Provider", version);
                set.problems.push(owner(Kind::Provider, err));
            }
        },
        (NOTIFICATION_GROUP, "Alert") => match source.read::<raw::Object<raw::AlertSpec>>() {
            Ok(raw) => match alert(origin, &api_version, version, raw) {
                Ok((a, problems)) => {
                    let a = Alert {
                        object: source.object(),
                        ..a
                    };
                    warn_match_labels(&a, set);
                    set.problems.extend(problems);
                    set.alerts.push(a);
                }
                Err(e) => set.problems.extend(e),
            },
            Err(e) => {
                let err = with_version_hint(yaml_error(origin, &e), "Alert", version);
                set.problems.push(owner(Kind::Alert, err));
            }
        },
        ("", "Secret") if version == "v1" => match source.read::<raw::Secret>() {
            Ok(raw) => match secret(origin, raw) {
                Ok(s) => set.secrets.push(s),
                Err(e) => set.problems.extend(e),
            },
            Err(e) => {
                let mut err = yaml_error(origin, &e);
                err.message = without_values(&err.message);
                set.problems.push(owner(Kind::Secret, err));
            }
        },
        ("", "ConfigMap") if version == "v1" => match source.read::<raw::ConfigMap>() {
            Ok(raw) => match config_map(origin, raw) {
                Ok(c) => set.config_maps.push(c),
                Err(e) => set.problems.push(e),
            },
            Err(e) => set
                .problems
                .push(owner(Kind::ConfigMap, yaml_error(origin, &e))),
        },
        ("", "List") if version == "v1" => match source.read::<raw::List>() {
            Ok(list) => {
                for item in &list.items {
                    parse_document(origin, Source::Value(item), set);
                }
            }
            Err(e) => set.problems.push(yaml_error(origin, &e)),
        },
        _ => set
            .skipped
            .push((origin.clone(), format!("{api_version} {kind}"))),
    }
}

/// An event source with `matchLabels` never matches here: say so when loading.
fn warn_match_labels(a: &Alert, set: &mut ManifestSet) {
    for (i, source) in a.spec.event_sources.iter().enumerate() {
        if source.match_labels.is_some() {
            set.warnings.push(
                ManifestError::at(&a.origin, &["spec", "eventSources"])
                    .object(Kind::Alert, &a.namespace, &a.name)
                    .field(format!("spec.eventSources[{i}].matchLabels"))
                    .message(
                        "herald runs outside the cluster and cannot read the object's labels, so \
                         this source never matches; list the objects by name (or \"*\") instead",
                    ),
            );
        }
    }
}

/// A decoding message without the value it quotes (`invalid type: integer `123`, expected a
/// string`): in a Secret that value is secret.
pub(super) fn without_values(message: &str) -> String {
    let Some(at) = message
        .find("invalid type: ")
        .or_else(|| message.find("invalid value: "))
    else {
        return message.to_owned();
    };
    let (head, tail) = message.split_at(at);
    match tail.split_once(" `").and_then(|(kind, rest)| {
        let (_, after) = rest.split_once('`')?;
        Some(format!("{kind}{after}"))
    }) {
        Some(cleaned) => format!("{head}{cleaned}"),
        None => message.to_owned(),
    }
}

/// `unknown field `eventMetadata`` in a v1beta2 Alert: say which version has it.
fn with_version_hint(mut err: ManifestError, kind: &str, version: &str) -> ManifestError {
    let fields = if kind == "Provider" {
        raw::PROVIDER_FIELDS
    } else {
        raw::ALERT_FIELDS
    };
    if let Some(rest) = err.message.split("unknown field `").nth(1) {
        let field = rest.split('`').next().unwrap_or_default();
        if let Some((_, since)) = fields.iter().find(|(f, _)| *f == field) {
            err.message = format!(
                "{}; `{field}` is a field of {NOTIFICATION_GROUP}/{since} (this {kind} is {version})",
                err.message
            );
        }
    }
    err
}

/// `metadata.namespace`, or `default` when absent or empty.
fn namespace_of(namespace: &Option<String>) -> String {
    namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

fn name_and_namespace(
    origin: &Origin,
    meta: &raw::Meta,
    kind: Kind,
) -> Result<(String, String), ManifestError> {
    let namespace = namespace_of(&meta.namespace);
    match meta.name.as_deref() {
        Some(name) if !name.is_empty() => Ok((namespace, name.to_owned())),
        _ => Err(ManifestError::at(origin, &["metadata"])
            .field("metadata.name")
            .message(format!("a {kind} needs a name"))),
    }
}

fn check_versioned_fields(
    origin: &Origin,
    key: &ObjectKey,
    version: &str,
    present: &[(&str, bool)],
    table: &[(&str, &str)],
    errors: &mut Vec<ManifestError>,
) {
    let kind = key.kind;
    for (field, is_set) in present {
        if !is_set {
            continue;
        }
        if let Some((_, since)) = table.iter().find(|(f, _)| f == field)
            && *since > version
        {
            errors.push(
                ManifestError::at(origin, &["spec", field])
                    .object(kind, &key.namespace, &key.name)
                    .field(format!("spec.{field}"))
                    .message(format!(
                        "not a field of {NOTIFICATION_GROUP}/{version} {kind}; it exists from \
                             {since} on: change apiVersion to {NOTIFICATION_GROUP}/{since} or later"
                    )),
            );
        }
    }
}

fn provider(
    origin: &Origin,
    api_version: &str,
    version: &str,
    raw: raw::Object<raw::ProviderSpec>,
) -> Result<Provider, Vec<ManifestError>> {
    let (namespace, name) =
        name_and_namespace(origin, &raw.metadata, Kind::Provider).map_err(|e| vec![e])?;
    let key = ObjectKey::new(Kind::Provider, &namespace, &name);
    let err = |path: &[&str]| {
        ManifestError::at(origin, path)
            .object(Kind::Provider, &namespace, &name)
            .field(path.join("."))
    };
    let Some(spec) = raw.spec else {
        return Err(vec![
            err(&["spec"]).message("a Provider needs a spec with at least `type`"),
        ]);
    };
    let mut errors = Vec::new();
    check_versioned_fields(
        origin,
        &key,
        version,
        &[
            ("interval", spec.interval.is_some()),
            ("proxySecretRef", spec.proxy_secret_ref.is_some()),
            ("commitStatusExpr", spec.commit_status_expr.is_some()),
            ("serviceAccountName", spec.service_account_name.is_some()),
        ],
        raw::PROVIDER_FIELDS,
        &mut errors,
    );
    let provider_type = match spec.ty.as_deref() {
        None | Some("") => {
            errors.push(err(&["spec", "type"]).message("missing; every Provider needs a type"));
            None
        }
        Some(t) => match t.parse::<ProviderType>() {
            Ok(t) => Some(t),
            Err(e) => {
                errors.push(err(&["spec", "type"]).message(e));
                None
            }
        },
    };
    let timeout = match spec.timeout.as_deref() {
        None => None,
        Some(t) => match duration::parse_provider_timeout(t) {
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(err(&["spec", "timeout"]).message(e));
                None
            }
        },
    };
    for (field, value) in [
        ("address", &spec.address),
        ("channel", &spec.channel),
        ("username", &spec.username),
        ("proxy", &spec.proxy),
    ] {
        if value.as_ref().is_some_and(|v| v.len() > MAX_FIELD_LEN) {
            errors
                .push(err(&["spec", field]).message(format!("longer than {MAX_FIELD_LEN} bytes")));
        }
    }
    if let Some(proxy) = &spec.proxy
        && !(proxy.starts_with("http://") || proxy.starts_with("https://"))
    {
        errors.push(err(&["spec", "proxy"]).message("must start with http:// or https://"));
    }
    let annotations = herald_annotations(&raw.metadata, Kind::Provider, &err, &mut errors);
    let Some(provider_type) = provider_type else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Provider {
        namespace,
        name,
        uid: raw.metadata.uid.filter(|u| !u.is_empty()),
        api_version: api_version.to_owned(),
        spec: ProviderSpec {
            provider_type,
            interval: spec.interval,
            channel: spec.channel.unwrap_or_default(),
            username: spec.username.unwrap_or_default(),
            address: spec.address.unwrap_or_default(),
            timeout,
            proxy: spec.proxy.filter(|p| !p.is_empty()),
            proxy_secret_ref: spec.proxy_secret_ref.map(|r| r.name),
            secret_ref: spec.secret_ref.map(|r| r.name),
            cert_secret_ref: spec.cert_secret_ref.map(|r| r.name),
            suspend: spec.suspend.unwrap_or(false),
            commit_status_expr: spec.commit_status_expr,
            service_account_name: spec.service_account_name,
        },
        max_in_flight: annotations.max_in_flight,
        template: annotations.template,
        object: serde_json::Value::Null,
        origin: origin.clone(),
    })
}

/// The `herald.dev/` annotations of a Provider or an Alert.
#[derive(Default)]
struct HeraldAnnotations {
    max_in_flight: Option<usize>,
    template: Option<TemplateSource>,
}

/// The herald annotations each kind reads.
fn known_annotations(kind: Kind) -> &'static [&'static str] {
    const TEMPLATES: [&str; 3] = [
        TEMPLATE_ANNOTATION,
        TEMPLATE_FROM_ANNOTATION,
        TEMPLATE_CONTENT_TYPE_ANNOTATION,
    ];
    const PROVIDER: [&str; 4] = [
        MAX_IN_FLIGHT_ANNOTATION,
        TEMPLATE_ANNOTATION,
        TEMPLATE_FROM_ANNOTATION,
        TEMPLATE_CONTENT_TYPE_ANNOTATION,
    ];
    match kind {
        Kind::Provider => &PROVIDER,
        _ => &TEMPLATES,
    }
}

/// Reads the `herald.dev/` annotations of a Provider or an Alert (`kind`); an unknown one is an
/// error (a typo would otherwise be ignored silently).
fn herald_annotations(
    meta: &raw::Meta,
    kind: Kind,
    err: &dyn Fn(&[&str]) -> ManifestError,
    errors: &mut Vec<ManifestError>,
) -> HeraldAnnotations {
    let mut out = HeraldAnnotations::default();
    let known = known_annotations(kind);
    let annotations = meta.annotations.iter().flatten();
    let at = |key: &str| {
        err(&["metadata", "annotations", key]).field(format!("metadata.annotations.{key}"))
    };
    for (key, value) in annotations.filter(|(k, _)| k.starts_with(HERALD_ANNOTATION_PREFIX)) {
        if !known.contains(&key.as_str()) {
            errors.push(at(key).message(format!(
                "unknown herald annotation for a{} {kind} (herald reads {})",
                if kind == Kind::Alert { "n" } else { "" },
                known.join(", ")
            )));
            continue;
        }
        if key == MAX_IN_FLIGHT_ANNOTATION {
            match value.trim().parse::<usize>() {
                Ok(n) if n >= 1 => out.max_in_flight = Some(n),
                _ => errors.push(
                    at(key).message(format!("{value:?} is not a whole number of at least 1")),
                ),
            }
        }
    }
    match template_source(meta.annotations.as_ref()) {
        Ok(template) => out.template = template,
        Err((key, message)) => errors.push(at(key).message(message)),
    }
    out
}

/// The template the annotations give, if any; `Err` names the annotation at fault.
fn template_source(
    annotations: Option<&BTreeMap<String, String>>,
) -> Result<Option<TemplateSource>, (&'static str, String)> {
    let get = |key: &str| annotations.and_then(|a| a.get(key));
    let content_type = get(TEMPLATE_CONTENT_TYPE_ANNOTATION).map(|c| c.trim().to_owned());
    let text = match (get(TEMPLATE_ANNOTATION), get(TEMPLATE_FROM_ANNOTATION)) {
        (Some(_), Some(_)) => {
            return Err((
                TEMPLATE_FROM_ANNOTATION,
                format!("set either {TEMPLATE_ANNOTATION} or {TEMPLATE_FROM_ANNOTATION}, not both"),
            ));
        }
        (Some(inline), None) => TemplateText::Inline(inline.clone()),
        (None, Some(from)) => match from.trim().split_once('/') {
            Some((config_map, key)) if !config_map.is_empty() && !key.is_empty() => {
                TemplateText::From {
                    config_map: config_map.to_owned(),
                    key: key.to_owned(),
                }
            }
            _ => {
                return Err((
                    TEMPLATE_FROM_ANNOTATION,
                    format!(
                        "{from:?} is not <configmap>/<key> (a ConfigMap in the same namespace \
                         and a key of its data)"
                    ),
                ));
            }
        },
        (None, None) if content_type.is_some() => {
            return Err((
                TEMPLATE_CONTENT_TYPE_ANNOTATION,
                format!(
                    "a content type without a template: set {TEMPLATE_ANNOTATION} or \
                     {TEMPLATE_FROM_ANNOTATION}"
                ),
            ));
        }
        (None, None) => return Ok(None),
    };
    if content_type.as_deref() == Some("") {
        return Err((TEMPLATE_CONTENT_TYPE_ANNOTATION, "empty".to_owned()));
    }
    Ok(Some(TemplateSource { text, content_type }))
}

fn compile_list(
    list: Option<Vec<String>>,
    field: &str,
    err: &dyn Fn(&[&str]) -> ManifestError,
    errors: &mut Vec<ManifestError>,
) -> Vec<Pattern> {
    let mut out = Vec::new();
    for (i, expr) in list.unwrap_or_default().into_iter().enumerate() {
        match Pattern::new(&expr) {
            Ok(re) => out.push(re),
            Err(e) => errors.push(
                err(&["spec", field])
                    .field(format!("spec.{field}[{i}]"))
                    .message(format!(
                        "invalid regular expression {expr:?}: {}",
                        one_line(&e)
                    )),
            ),
        }
    }
    out
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The Alert, with the problems in its fields (an Alert with problems is never used to match
/// events, but its Provider reference is still checked). `Err` when there is no Alert to speak
/// of: no name, or no spec.
fn alert(
    origin: &Origin,
    api_version: &str,
    version: &str,
    raw: raw::Object<raw::AlertSpec>,
) -> Result<(Alert, Vec<ManifestError>), Vec<ManifestError>> {
    let (namespace, name) =
        name_and_namespace(origin, &raw.metadata, Kind::Alert).map_err(|e| vec![e])?;
    let key = ObjectKey::new(Kind::Alert, &namespace, &name);
    let err = |path: &[&str]| {
        ManifestError::at(origin, path)
            .object(Kind::Alert, &namespace, &name)
            .field(path.join("."))
    };
    let Some(spec) = raw.spec else {
        return Err(vec![err(&["spec"]).message(
            "an Alert needs a spec with providerRef and eventSources",
        )]);
    };
    let mut errors = Vec::new();
    let annotations = herald_annotations(&raw.metadata, Kind::Alert, &err, &mut errors);
    check_versioned_fields(
        origin,
        &key,
        version,
        &[
            ("inclusionList", spec.inclusion_list.is_some()),
            ("eventMetadata", spec.event_metadata.is_some()),
        ],
        raw::ALERT_FIELDS,
        &mut errors,
    );
    let provider_ref = match spec.provider_ref {
        Some(r) if !r.name.is_empty() => r.name,
        _ => {
            errors.push(
                err(&["spec", "providerRef"])
                    .message("missing; name the Provider this Alert sends to"),
            );
            String::new()
        }
    };
    let event_severity = spec.event_severity.unwrap_or_else(|| "info".to_owned());
    if event_severity != "info" && event_severity != "error" {
        errors.push(err(&["spec", "eventSeverity"]).message(format!(
            "{event_severity:?} is not one of \"info\", \"error\""
        )));
    }
    let mut event_sources = Vec::new();
    match spec.event_sources {
        Some(sources) if !sources.is_empty() => {
            for (i, s) in sources.into_iter().enumerate() {
                let field = |f: &str| format!("spec.eventSources[{i}].{f}");
                let kind = s.kind.unwrap_or_default();
                let src_name = s.name.unwrap_or_default();
                if kind.is_empty() {
                    errors.push(
                        err(&["spec", "eventSources"])
                            .field(field("kind"))
                            .message("missing"),
                    );
                }
                if src_name.is_empty() {
                    errors.push(
                        err(&["spec", "eventSources"])
                            .field(field("name"))
                            .message("missing (use \"*\" for every name)"),
                    );
                }
                event_sources.push(EventSource {
                    api_version: s.api_version,
                    kind,
                    name: src_name,
                    namespace: s.namespace.filter(|n| !n.is_empty()),
                    match_labels: s.match_labels,
                });
            }
        }
        _ => errors.push(
            err(&["spec", "eventSources"])
                .message("missing; an Alert needs at least one event source"),
        ),
    }
    let inclusion_list = compile_list(spec.inclusion_list, "inclusionList", &err, &mut errors);
    let exclusion_list = compile_list(spec.exclusion_list, "exclusionList", &err, &mut errors);
    let alert = Alert {
        namespace,
        name,
        api_version: api_version.to_owned(),
        spec: AlertSpec {
            provider_ref,
            event_severity,
            event_sources,
            inclusion_list,
            exclusion_list,
            event_metadata: spec.event_metadata.unwrap_or_default(),
            summary: spec.summary.filter(|s| !s.is_empty()),
            suspend: spec.suspend.unwrap_or(false),
        },
        template: annotations.template,
        object: serde_json::Value::Null,
        origin: origin.clone(),
    };
    Ok((alert, errors))
}

fn secret(origin: &Origin, raw: raw::Secret) -> Result<Secret, Vec<ManifestError>> {
    let (namespace, name) =
        name_and_namespace(origin, &raw.metadata, Kind::Secret).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut data = BTreeMap::new();
    for (key, value) in raw.data.unwrap_or_default() {
        let value = value.unwrap_or_default();
        let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        match base64::engine::general_purpose::STANDARD.decode(compact.as_bytes()) {
            Ok(bytes) => {
                data.insert(key, SecretBytes::new(bytes));
            }
            Err(e) => errors.push(
                ManifestError::at(origin, &["data", &key])
                    .object(Kind::Secret, &namespace, &name)
                    .field(format!("data.{key}"))
                    .message(format!(
                        "not valid base64 ({}); put clear text under stringData instead",
                        base64_problem(&e)
                    )),
            ),
        }
    }
    for (key, value) in raw.string_data.unwrap_or_default() {
        data.insert(
            key,
            SecretBytes::new(value.unwrap_or_default().into_bytes()),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Secret {
        namespace,
        name,
        data,
        origin: origin.clone(),
    })
}

fn config_map(origin: &Origin, raw: raw::ConfigMap) -> Result<super::ConfigMap, ManifestError> {
    let (namespace, name) = name_and_namespace(origin, &raw.metadata, Kind::ConfigMap)?;
    let data = raw
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    Ok(super::ConfigMap {
        namespace,
        name,
        data,
        origin: origin.clone(),
    })
}

/// What is wrong with a base64 value, without quoting any of it (the value is secret; the
/// decoder's own message names the offending byte).
fn base64_problem(e: &base64::DecodeError) -> String {
    use base64::DecodeError as E;
    match e {
        E::InvalidByte(offset, _) => format!("a character that is not base64 at offset {offset}"),
        E::InvalidLength(len) => format!("{len} characters, a length base64 cannot have"),
        E::InvalidLastSymbol(offset, _) => format!("an invalid last character at offset {offset}"),
        E::InvalidPadding => "invalid padding".to_owned(),
    }
}

/// Objects defined more than once: one problem per extra definition, naming the first. A
/// [`super::Catalog`] makes such an object not ready, since which definition is meant is
/// anyone's guess.
pub(super) fn duplicates(set: &ManifestSet) -> Vec<ManifestError> {
    let mut errors = Vec::new();
    let mut seen: HashMap<ObjectKey, &Origin> = HashMap::new();
    let all = set
        .providers
        .iter()
        .map(|p| (p.key(), &p.origin))
        .chain(set.alerts.iter().map(|a| (a.key(), &a.origin)))
        .chain(set.secrets.iter().map(|s| (s.key(), &s.origin)))
        .chain(set.config_maps.iter().map(|c| (c.key(), &c.origin)));
    for (key, origin) in all {
        if let Some(first) = seen.get(&key) {
            errors.push(
                ManifestError::at(origin, &["metadata", "name"])
                    .object(key.kind, &key.namespace, &key.name)
                    .message(format!(
                        "defined twice; first at {}:{}",
                        first.file.display(),
                        first.line
                    )),
            );
        } else {
            seen.insert(key, origin);
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::split_documents;

    #[test]
    fn splits_documents_with_their_lines() {
        let text = "# header\n---\na: 1\n---   # c\n\n---\nb: 2\n...\nignored: x\n--- c: 3\n";
        let docs = split_documents(text);
        assert_eq!(
            docs,
            vec![
                (3, "a: 1\n".to_owned()),
                (7, "b: 2\n".to_owned()),
                (10, "c: 3\n".to_owned())
            ]
        );
    }
}
