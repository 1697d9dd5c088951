//! What several chat providers share beyond the toolkit of [`herald_http::provider`].

use herald_core::Event;

/// The emoji of Telegram, Lark and Matrix headings.
pub(crate) fn emoji(event: &Event) -> &'static str {
    if event.severity.is_error() {
        "🚨"
    } else {
        "💫"
    }
}
