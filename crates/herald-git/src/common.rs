//! What the git forges share beyond [`crate::status`]: the status id, the commit SHA,
//! repository addresses (contract section 6.2) and Go's path escaping.

use herald_core::{BuildError, Event, ProviderConfig};
use herald_http::provider::address_field;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest as _, Sha256};

/// Characters kept as they are in a path segment or a query value: RFC 3986 unreserved.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes one path segment or query value (`/` included, as Go's `PathEscape` and
/// `QueryEscape` do).
pub(crate) fn escape(s: &str) -> String {
    utf8_percent_encode(s, ESCAPED).to_string()
}

/// The stable 8-hex-character id herald uses in place of the Provider's Kubernetes UID when the
/// manifest has none: the first 8 lowercase hex digits of SHA-256 of `<namespace>/<name>`.
pub fn provider_id(namespace: &str, name: &str) -> String {
    let digest = Sha256::digest(format!("{namespace}/{name}").as_bytes());
    hex::encode(&digest[..4])
}

/// The last part of a Provider's default status ids: as in Flux, the first `-`-separated segment
/// of its `metadata.uid` when the manifest carries one (so that the statuses of a Provider moved
/// from Flux keep their context), else [`provider_id`] of its namespace and name.
pub fn status_provider_part(config: &ProviderConfig) -> String {
    match config.uid_prefix() {
        Some(segment) => segment.to_owned(),
        None => provider_id(&config.namespace, &config.name),
    }
}

/// The default commit-status id ("context", "name", hashed into Bitbucket keys), Flux's
/// `generateDefaultCommitStatus`: lowercase `<kind>/<name>/<provider part>`, where the provider
/// part is [`status_provider_part`], e.g. `kustomization/gitops-system/0c9c2e41`.
pub fn status_id(event: &Event, provider_part: &str) -> String {
    let o = &event.involved_object;
    format!("{}/{}/{}", o.kind, o.name, provider_part).to_lowercase()
}

/// The revision an event is about: metadata `commit`, then `originRevision`, then `revision`
/// (the first one present wins, as in Flux).
pub fn revision(event: &Event) -> Option<&str> {
    ["commit", "originRevision", "revision"]
        .iter()
        .find_map(|k| event.metadata.get(*k))
        .map(String::as_str)
}

/// The commit SHA of a revision: what follows the last `:` (`main@sha1:<h>`, `sha1:<h>`), else
/// the last `/` (`main/<h>`), else the whole string. It must be exactly 40 hexadecimal digits
/// (SHA-1); anything else is an error that names the revision.
pub fn commit_sha(revision: &str) -> Result<&str, String> {
    let hash = match revision.rfind(':') {
        Some(i) => &revision[i + 1..],
        None => match revision.rfind('/') {
            Some(i) => &revision[i + 1..],
            None => revision,
        },
    };
    if hash.len() == 40 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hash)
    } else {
        Err(format!(
            "failed to extract commit hash from '{revision}' revision: expected 40 hexadecimal \
             characters (a SHA-1) after the last ':' or '/'"
        ))
    }
}

/// A git repository address, parsed as Flux does (section 6.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GitAddress {
    /// `http` or `https`; `ssh` forms become `https`.
    pub(crate) scheme: &'static str,
    /// `host` or `host:port` (the port of an ssh form is dropped: it is not the web port).
    pub(crate) host: String,
    /// The path segments, percent-decoded, without the leading `/` and the trailing `.git`.
    pub(crate) segments: Vec<String>,
}

impl GitAddress {
    /// `scheme://host[:port]`.
    pub(crate) fn base(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    /// The host name, lowercase, without the port.
    pub(crate) fn hostname(&self) -> String {
        let h = if self.host.starts_with('[') {
            self.host
                .split_once(']')
                .map_or(self.host.as_str(), |(h, _)| h)
                .trim_start_matches('[')
        } else {
            self.host
                .rsplit_once(':')
                .map_or(self.host.as_str(), |(h, _)| h)
        };
        h.to_ascii_lowercase()
    }

    /// The repository id: the segments joined with `/`.
    pub(crate) fn repo_id(&self) -> String {
        self.segments.join("/")
    }

    /// `owner` and `repo`, when the path has exactly two segments.
    pub(crate) fn owner_repo(&self) -> Result<(String, String), String> {
        match self.segments.as_slice() {
            [owner, repo] => Ok((owner.clone(), repo.clone())),
            _ => Err(format!(
                "invalid repository id {:?}: expected <owner>/<repository>",
                self.repo_id()
            )),
        }
    }
}

/// Parses `https://host[:port]/a/b[.git]`, `http://…`, `ssh://[user@]host[:port]/a/b[.git]` and
/// `[user@]host:a/b[.git]`. Errors never quote the address (it may come from a Secret).
pub(crate) fn parse_git_address(address: &str) -> Result<GitAddress, String> {
    let a = address.trim();
    if a.is_empty() {
        return Err("the address is empty".to_owned());
    }
    let (scheme, authority, path, ssh) = if let Some((scheme, rest)) = a.split_once("://") {
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "https" => ("https", false),
            "http" => ("http", false),
            "ssh" | "git+ssh" | "ssh+git" => ("https", true),
            other => {
                return Err(format!(
                    "unsupported scheme {other:?}: expected https://, http://, ssh:// or \
                     git@host:owner/repo"
                ));
            }
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let path = rest[end..].split(['?', '#']).next().unwrap_or_default();
        (scheme.0, &rest[..end], path, scheme.1)
    } else {
        // scp-like: `[user@]host:path`, where the part before the first `:` has no `/`.
        match a.split_once(':') {
            Some((userhost, path)) if !userhost.contains('/') && !userhost.is_empty() => {
                ("https", userhost, path, true)
            }
            _ => {
                return Err("not a repository URL: expected https://host/owner/repo, \
                     ssh://git@host/owner/repo or git@host:owner/repo"
                    .to_owned());
            }
        }
    };
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if ssh {
        // Drop an ssh port (`host:22`), but keep IPv6 brackets whole.
        match host_port.rsplit_once(':') {
            Some((h, port))
                if port.bytes().all(|b| b.is_ascii_digit())
                    && (!h.starts_with('[') || h.ends_with(']')) =>
            {
                h
            }
            _ => host_port,
        }
    } else {
        host_port
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
    if !host_ok {
        return Err("the address has no valid host".to_owned());
    }
    let trimmed = path.trim_matches('/');
    let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err("the address has no repository path".to_owned());
    }
    let mut segments = Vec::new();
    for raw in trimmed.split('/') {
        let seg = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| "the repository path is not valid UTF-8 once decoded".to_owned())?;
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(format!(
                "invalid repository id {trimmed:?}: empty or dot segment"
            ));
        }
        segments.push(seg.into_owned());
    }
    Ok(GitAddress {
        scheme,
        host: host.to_owned(),
        segments,
    })
}

/// The address of a forge that names repositories `<owner>/<repo>`, with both parts.
pub(crate) fn owner_repo(
    config: &ProviderConfig,
) -> Result<(GitAddress, String, String), BuildError> {
    let address = git_address(config)?;
    let (owner, repo) = address
        .owner_repo()
        .map_err(|e| BuildError::invalid(address_field(config), e))?;
    Ok((address, owner, repo))
}

/// Parses the address of `config`, naming the field in the error.
pub(crate) fn git_address(config: &ProviderConfig) -> Result<GitAddress, BuildError> {
    parse_git_address(config.address.expose()).map_err(|why| {
        BuildError::invalid(
            address_field(config),
            format!("invalid repository address: {why}"),
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use herald_core::{ObjectReference, ProviderType};

    const H: &str = "69b59063470310ebbd88a9156325322a124e55a3";

    #[test]
    fn revisions_parse_like_flux() {
        // flux-compat.md section 8.3.
        for rev in [
            format!("sha1:{H}"),
            format!("master@sha1:{H}"),
            format!("environment/dev@sha1:{H}"),
            format!("master/{H}"),
            format!("environment/dev/{H}"),
            H.to_owned(),
        ] {
            assert_eq!(commit_sha(&rev), Ok(H), "{rev}");
        }
        let err = commit_sha("master").unwrap_err();
        assert!(
            err.starts_with("failed to extract commit hash from 'master' revision"),
            "{err}"
        );
        // 40 characters but not hexadecimal, 39 and 41 digits, SHA-256.
        assert!(commit_sha(&format!("main@sha1:{}", "g".repeat(40))).is_err());
        assert!(commit_sha(&H[1..]).is_err());
        assert!(commit_sha(&format!("{H}0")).is_err());
        assert!(commit_sha(&format!("sha256:{}", "a".repeat(64))).is_err());
        assert!(commit_sha("").is_err());
        assert!(commit_sha("main@sha1:").is_err());
    }

    #[test]
    fn revision_precedence_is_commit_origin_revision() {
        let mut e = Event::default();
        assert_eq!(revision(&e), None);
        e.metadata.insert("revision".into(), "r".into());
        assert_eq!(revision(&e), Some("r"));
        e.metadata.insert("originRevision".into(), "o".into());
        assert_eq!(revision(&e), Some("o"));
        e.metadata.insert("commit".into(), "c".into());
        assert_eq!(revision(&e), Some("c"));
    }

    fn kustomization(name: &str) -> Event {
        Event {
            involved_object: ObjectReference {
                kind: "Kustomization".into(),
                name: name.into(),
                ..Default::default()
            },
            reason: "ApplySucceeded".into(),
            ..Default::default()
        }
    }

    #[test]
    fn status_ids_without_a_uid_are_stable_and_lowercase() {
        let e = kustomization("Gitops-System");
        // sha256("flux-system/github") starts with these 8 hex digits (checked with
        // `printf flux-system/github | sha256sum`).
        assert_eq!(provider_id("flux-system", "github"), "d775ccaa");
        let config = ProviderConfig::new(ProviderType::GitHub, "flux-system", "github", "");
        assert_eq!(status_provider_part(&config), "d775ccaa");
        assert_eq!(
            status_id(&e, &status_provider_part(&config)),
            "kustomization/gitops-system/d775ccaa"
        );
        assert_ne!(provider_id("flux-system", "github2"), "d775ccaa");
    }

    #[test]
    fn status_ids_with_a_uid_are_fluxs() {
        // Flux's Test_generateDefaultCommitStatus ("simple event case").
        let mut config = ProviderConfig::new(ProviderType::GitHub, "flux-system", "github", "");
        config.uid = Some("0c9c2e41-d2f9-4f9b-9c41-bebc1984d67a".into());
        let part = status_provider_part(&config);
        assert_eq!(part, "0c9c2e41");
        assert_eq!(
            status_id(&kustomization("gitops-system"), &part),
            "kustomization/gitops-system/0c9c2e41"
        );
        // Flux lowercases the whole id, the UID segment included.
        config.uid = Some("0C9C2E41-D2F9".into());
        let part = status_provider_part(&config);
        assert_eq!(
            status_id(&kustomization("Apps"), &part),
            "kustomization/apps/0c9c2e41"
        );
        // A UID without a dash is its own first segment, as with Go's strings.Split.
        config.uid = Some("abc".into());
        assert_eq!(status_provider_part(&config), "abc");
    }

    #[test]
    fn addresses_parse_in_every_form() {
        let cases = [
            (
                "https://github.com/org/repo",
                "https",
                "github.com",
                "org/repo",
            ),
            (
                "https://github.com/org/repo.git",
                "https",
                "github.com",
                "org/repo",
            ),
            (
                "https://github.com/org/repo/",
                "https",
                "github.com",
                "org/repo",
            ),
            (
                "http://127.0.0.1:8080/org/repo",
                "http",
                "127.0.0.1:8080",
                "org/repo",
            ),
            (
                "https://user:pw@gitlab.example.com/a/b/c.git",
                "https",
                "gitlab.example.com",
                "a/b/c",
            ),
            (
                "git@github.com:org/repo.git",
                "https",
                "github.com",
                "org/repo",
            ),
            ("github.com:org/repo", "https", "github.com", "org/repo"),
            (
                "ssh://git@github.com/org/repo.git",
                "https",
                "github.com",
                "org/repo",
            ),
            (
                "ssh://git@gitea.example.com:2222/org/repo",
                "https",
                "gitea.example.com",
                "org/repo",
            ),
            ("ssh://git@[::1]:22/org/repo", "https", "[::1]", "org/repo"),
            (
                "https://dev.azure.com/o/My%20Project/_git/r",
                "https",
                "dev.azure.com",
                "o/My Project/_git/r",
            ),
            (
                "HTTPS://example.com/o/r?x=1#f",
                "https",
                "example.com",
                "o/r",
            ),
        ];
        for (input, scheme, host, id) in cases {
            let a = parse_git_address(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                (a.scheme, a.host.as_str(), a.repo_id()),
                (scheme, host, id.to_owned()),
                "{input}"
            );
        }
        assert_eq!(
            parse_git_address("http://127.0.0.1:8080/o/r")
                .unwrap()
                .hostname(),
            "127.0.0.1"
        );
        assert_eq!(
            parse_git_address("ssh://git@[::1]/o/r").unwrap().hostname(),
            "::1"
        );
        for bad in [
            "",
            "ftp://host/o/r",
            "https://host",
            "https://host/",
            "https:///o/r",
            "/just/a/path",
            "https://ho st/o/r",
            "https://host/o//r",
            "https://host/o/../r",
        ] {
            assert!(parse_git_address(bad).is_err(), "{bad:?}");
        }
        let two = parse_git_address("https://h/a/b/c").unwrap();
        assert_eq!(
            two.owner_repo().unwrap_err(),
            "invalid repository id \"a/b/c\": expected <owner>/<repository>"
        );
    }

    #[test]
    fn escaping_matches_go_path_escape_for_project_paths() {
        assert_eq!(escape("group/sub group/proj"), "group%2Fsub%20group%2Fproj");
        assert_eq!(escape("a-b_c.d~e"), "a-b_c.d~e");
    }

    #[test]
    fn sha1_golden() {
        use sha1::Digest as _;
        // flux-compat.md section 8.3.
        assert_eq!(
            hex::encode(sha1::Sha1::digest(
                b"kustomization/namespace-foo-and-service-bar"
            )),
            "12ea142172e98435e16336acbbed8919610922c3"
        );
    }
}
