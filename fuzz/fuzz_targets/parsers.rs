//! The small parsers: Go durations (`--rate-limit-interval`, Provider `timeout`), listen
//! addresses, URL redaction, the secret-address masker, git revisions, and forge addresses
//! (each git provider's configuration check parses its address).
#![no_main]

use herald_core::{Masker, ProviderConfig, duration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = duration::parse(s) {
        let text = duration::format(d);
        assert_eq!(duration::parse(&text), Ok(d), "format of {s:?} is {text:?}");
    }
    let _ = duration::parse_provider_timeout(s);
    let _ = herald_daemon::parse_listen_addr(s);
    let redacted = herald_http::redact_url(s);
    let _ = redacted.len();
    let mut masker = Masker::new();
    masker.add_address(s);
    let masked = masker.mask(s);
    // (A value made of the mask's own asterisks is "masked" into a longer run of them.)
    if s.len() >= Masker::MIN_LEN && !herald_core::REDACTED.contains(s) {
        assert!(!masked.contains(s), "{s:?} was not masked: {masked:?}");
    }
    let _ = herald_git::commit_sha(s);
    for ty in herald_git::TYPES {
        let _ = herald_git::Renderer::new(&ProviderConfig::new(ty, "apps", "forge", s));
    }
});
