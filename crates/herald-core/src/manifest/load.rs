//! Reading manifest files: folders, multi-document YAML, strict per-version fields.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use regex::Regex;
use serde::de::DeserializeOwned;

use super::raw;
use super::{
    Alert, AlertSpec, DEFAULT_NAMESPACE, EventSource, ManifestError, ManifestErrors, ManifestSet,
    NOTIFICATION_GROUP, NOTIFICATION_VERSIONS, Origin, Provider, ProviderSpec, Secret,
};
use crate::{ProviderType, SecretBytes, duration};

/// The longest `address`, `channel`, `username` and `proxy` the CRD accepts.
pub(super) const MAX_FIELD_LEN: usize = 2048;

/// Loads every manifest under `paths` (files, or folders read recursively for `.yaml` and
/// `.yml` files), then checks cross-references. Returns every problem, not just the first.
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Result<ManifestSet, ManifestErrors> {
    let mut set = ManifestSet::default();
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        collect_files(path.as_ref(), true, &mut files, &mut errors);
    }
    for file in files {
        match std::fs::read(&file) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => parse_into(&file, &text, &mut set, &mut errors),
                Err(e) => errors.push(ManifestError::file(
                    &file,
                    format!(
                        "not UTF-8 text (invalid byte at offset {})",
                        e.utf8_error().valid_up_to()
                    ),
                )),
            },
            Err(e) => errors.push(ManifestError::file(&file, format!("cannot read: {e}"))),
        }
        set.files.push(file);
    }
    check_duplicates(&set, &mut errors);
    errors.extend(set.check_references());
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(ManifestErrors(errors))
    }
}

/// The manifest files `paths` name, as [`load_paths`] would read them (unreadable paths are
/// left out). Used to notice changes.
pub fn manifest_files<P: AsRef<Path>>(paths: &[P]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut ignored = Vec::new();
    for path in paths {
        collect_files(path.as_ref(), true, &mut files, &mut ignored);
    }
    files
}

/// Parses the text of one file (named `file` in messages). Returns what was read and the
/// problems found; cross-references are not checked.
pub fn parse_str(file: &Path, text: &str) -> (ManifestSet, Vec<ManifestError>) {
    let mut set = ManifestSet::default();
    let mut errors = Vec::new();
    parse_into(file, text, &mut set, &mut errors);
    check_duplicates(&set, &mut errors);
    (set, errors)
}

fn collect_files(
    path: &Path,
    explicit: bool,
    out: &mut Vec<PathBuf>,
    errors: &mut Vec<ManifestError>,
) {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            errors.push(ManifestError::file(path, format!("cannot read: {e}")));
            return;
        }
    };
    if meta.is_dir() {
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) => {
                errors.push(ManifestError::file(
                    path,
                    format!("cannot list folder: {e}"),
                ));
                return;
            }
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for child in children {
            // Hidden entries are skipped: Kubernetes mounts ConfigMaps through `..data` links.
            let hidden = child
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if !hidden {
                collect_files(&child, false, out, errors);
            }
        }
    } else if explicit || is_yaml(path) {
        out.push(path.to_owned());
    }
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
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

fn parse_into(file: &Path, text: &str, set: &mut ManifestSet, errors: &mut Vec<ManifestError>) {
    for (index, (line, doc)) in split_documents(text).into_iter().enumerate() {
        let origin = Origin::new(file, index + 1, line, &doc);
        parse_document(&origin, Source::Text(&doc), set, errors);
    }
}

fn parse_document(
    origin: &Origin,
    source: Source<'_>,
    set: &mut ManifestSet,
    errors: &mut Vec<ManifestError>,
) {
    let header: raw::Header = match source.read() {
        Ok(h) => h,
        Err(e) => {
            let mut err = yaml_error(origin, &e);
            if err.message.contains("expected struct Header") {
                err.message =
                    "not a Kubernetes object: expected a mapping with apiVersion and kind".into();
            }
            errors.push(err);
            return;
        }
    };
    let (Some(api_version), Some(kind)) = (header.api_version, header.kind) else {
        set.skipped
            .push((origin.clone(), "(no apiVersion or kind)".into()));
        return;
    };
    let (group, version) = api_version
        .split_once('/')
        .unwrap_or(("", api_version.as_str()));
    match (group, kind.as_str()) {
        (NOTIFICATION_GROUP, "Provider" | "Alert") if !NOTIFICATION_VERSIONS.contains(&version) => {
            errors.push(ManifestError::at(origin, &["apiVersion"]).field("apiVersion").message(format!(
                "{kind} version {version:?} is not one herald reads (use {NOTIFICATION_GROUP}/v1beta1, \
                 v1beta2 or v1beta3)"
            )));
        }
        (NOTIFICATION_GROUP, "Provider") => match source.read::<raw::Object<raw::ProviderSpec>>() {
            Ok(raw) => match provider(origin, &api_version, version, raw) {
                Ok(p) => set.providers.push(p),
                Err(e) => errors.extend(e),
            },
            Err(e) => errors.push(with_version_hint(
                yaml_error(origin, &e),
                "Provider",
                version,
            )),
        },
        (NOTIFICATION_GROUP, "Alert") => match source.read::<raw::Object<raw::AlertSpec>>() {
            Ok(raw) => match alert(origin, &api_version, version, raw) {
                Ok(a) => {
                    for (i, source) in a.spec.event_sources.iter().enumerate() {
                        if source.match_labels.is_some() {
                            set.warnings.push(
                                ManifestError::at(origin, &["spec", "eventSources"])
                                    .object("Alert", &a.namespace, &a.name)
                                    .field(format!("spec.eventSources[{i}].matchLabels"))
                                    .message(
                                        "herald runs outside the cluster and cannot read the \
                                         object's labels, so this source never matches; list the \
                                         objects by name (or \"*\") instead",
                                    ),
                            );
                        }
                    }
                    set.alerts.push(a)
                }
                Err(e) => errors.extend(e),
            },
            Err(e) => errors.push(with_version_hint(yaml_error(origin, &e), "Alert", version)),
        },
        ("", "Secret") if version == "v1" => match source.read::<raw::Secret>() {
            Ok(raw) => match secret(origin, raw) {
                Ok(s) => set.secrets.push(s),
                Err(e) => errors.extend(e),
            },
            Err(e) => errors.push(yaml_error(origin, &e)),
        },
        ("", "List") if version == "v1" => match source.read::<raw::List>() {
            Ok(list) => {
                for item in &list.items {
                    parse_document(origin, Source::Value(item), set, errors);
                }
            }
            Err(e) => errors.push(yaml_error(origin, &e)),
        },
        _ => set
            .skipped
            .push((origin.clone(), format!("{api_version} {kind}"))),
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

fn name_and_namespace(
    origin: &Origin,
    meta: &raw::Meta,
    kind: &str,
) -> Result<(String, String), ManifestError> {
    let namespace = meta
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    match meta.name.as_deref() {
        Some(name) if !name.is_empty() => Ok((namespace, name.to_owned())),
        _ => Err(ManifestError::at(origin, &["metadata"])
            .field("metadata.name")
            .message(format!("a {kind} needs a name"))),
    }
}

fn check_versioned_fields(
    origin: &Origin,
    kind: &str,
    version: &str,
    present: &[(&str, bool)],
    table: &[(&str, &str)],
    errors: &mut Vec<ManifestError>,
    object: (&str, &str),
) {
    for (field, is_set) in present {
        if !is_set {
            continue;
        }
        if let Some((_, since)) = table.iter().find(|(f, _)| f == field)
            && *since > version
        {
            errors.push(
                ManifestError::at(origin, &["spec", field])
                    .object(kind, object.0, object.1)
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
        name_and_namespace(origin, &raw.metadata, "Provider").map_err(|e| vec![e])?;
    let err = |path: &[&str]| {
        ManifestError::at(origin, path)
            .object("Provider", &namespace, &name)
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
        "Provider",
        version,
        &[
            ("interval", spec.interval.is_some()),
            ("proxySecretRef", spec.proxy_secret_ref.is_some()),
            ("commitStatusExpr", spec.commit_status_expr.is_some()),
            ("serviceAccountName", spec.service_account_name.is_some()),
        ],
        raw::PROVIDER_FIELDS,
        &mut errors,
        (&namespace, &name),
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
    let Some(provider_type) = provider_type else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Provider {
        namespace,
        name,
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
        origin: origin.clone(),
    })
}

fn compile_list(
    list: Option<Vec<String>>,
    field: &str,
    err: &dyn Fn(&[&str]) -> ManifestError,
    errors: &mut Vec<ManifestError>,
) -> Vec<Regex> {
    let mut out = Vec::new();
    for (i, expr) in list.unwrap_or_default().into_iter().enumerate() {
        match Regex::new(&expr) {
            Ok(re) => out.push(re),
            Err(e) => errors.push(
                err(&["spec", field])
                    .field(format!("spec.{field}[{i}]"))
                    .message(format!(
                        "invalid regular expression {expr:?}: {}",
                        one_line(&e.to_string())
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

fn alert(
    origin: &Origin,
    api_version: &str,
    version: &str,
    raw: raw::Object<raw::AlertSpec>,
) -> Result<Alert, Vec<ManifestError>> {
    let (namespace, name) =
        name_and_namespace(origin, &raw.metadata, "Alert").map_err(|e| vec![e])?;
    let err = |path: &[&str]| {
        ManifestError::at(origin, path)
            .object("Alert", &namespace, &name)
            .field(path.join("."))
    };
    let Some(spec) = raw.spec else {
        return Err(vec![err(&["spec"]).message(
            "an Alert needs a spec with providerRef and eventSources",
        )]);
    };
    let mut errors = Vec::new();
    check_versioned_fields(
        origin,
        "Alert",
        version,
        &[
            ("inclusionList", spec.inclusion_list.is_some()),
            ("eventMetadata", spec.event_metadata.is_some()),
        ],
        raw::ALERT_FIELDS,
        &mut errors,
        (&namespace, &name),
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
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Alert {
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
        origin: origin.clone(),
    })
}

fn secret(origin: &Origin, raw: raw::Secret) -> Result<Secret, Vec<ManifestError>> {
    let (namespace, name) =
        name_and_namespace(origin, &raw.metadata, "Secret").map_err(|e| vec![e])?;
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
                    .object("Secret", &namespace, &name)
                    .field(format!("data.{key}"))
                    .message(format!(
                        "not valid base64 ({e}); put clear text under stringData instead"
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

fn check_duplicates(set: &ManifestSet, errors: &mut Vec<ManifestError>) {
    fn check<'a>(
        kind: &str,
        items: impl Iterator<Item = (&'a str, &'a str, &'a Origin)>,
        errors: &mut Vec<ManifestError>,
    ) {
        let mut seen: HashMap<(&str, &str), &Origin> = HashMap::new();
        for (ns, name, origin) in items {
            if let Some(first) = seen.get(&(ns, name)) {
                errors.push(
                    ManifestError::at(origin, &["metadata", "name"])
                        .object(kind, ns, name)
                        .message(format!(
                            "defined twice; first at {}:{}",
                            first.file.display(),
                            first.line
                        )),
                );
            } else {
                seen.insert((ns, name), origin);
            }
        }
    }
    check(
        "Provider",
        set.providers
            .iter()
            .map(|p| (p.namespace.as_str(), p.name.as_str(), &p.origin)),
        errors,
    );
    check(
        "Alert",
        set.alerts
            .iter()
            .map(|a| (a.namespace.as_str(), a.name.as_str(), &a.origin)),
        errors,
    );
    check(
        "Secret",
        set.secrets
            .iter()
            .map(|s| (s.namespace.as_str(), s.name.as_str(), &s.origin)),
        errors,
    );
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
