//! Rendering cost per event of each chat provider (`cargo bench -p herald-chat --bench
//! render`): one line per type, `<type> render: <ns> ns/event`, the median of 5 rounds of at
//! least 0.3 s each, for a realistic event with 3 metadata keys.

// A benchmark reports on the terminal.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::hint::black_box;

use herald_chat::{
    discord, googlechat, lark, matrix, msteams, rocket, slack, telegram, webex, zoom, zulip,
};
use herald_core::Severity;
use herald_testkit::{bench_event as event, measure};

/// One provider's render, returning the body length.
type Case<'a> = (&'static str, Box<dyn FnMut() -> usize + 'a>);

fn main() {
    let info = event(Severity::Info);
    let error = event(Severity::Error);
    let e = || black_box(&error);
    let cases: [Case<'_>; 11] = [
        (
            "slack",
            Box::new(|| slack::render(e(), "#flux", "").unwrap().len()),
        ),
        (
            "discord",
            Box::new(|| discord::render(e(), "").unwrap().len()),
        ),
        (
            "rocket",
            Box::new(|| rocket::render(e(), "#flux", "flux").unwrap().len()),
        ),
        (
            "msteams",
            Box::new(|| {
                msteams::render(e(), msteams::Schema::AdaptiveCard)
                    .unwrap()
                    .len()
            }),
        ),
        (
            "googlechat",
            Box::new(|| googlechat::render(e()).unwrap().len()),
        ),
        (
            "webex",
            Box::new(|| webex::render(e(), "Y2lzY29zcGFyazovL3Vz").unwrap().len()),
        ),
        (
            "telegram",
            Box::new(|| {
                telegram::render(black_box(&info), "-1001234567890:7")
                    .unwrap()
                    .len()
            }),
        ),
        ("lark", Box::new(|| lark::render(e()).unwrap().len())),
        (
            // The transaction id is part of each Matrix request, so it is measured too.
            "matrix",
            Box::new(|| matrix::render(e()).unwrap().len() + matrix::txn_id(e()).unwrap().len()),
        ),
        (
            "zulip",
            Box::new(|| zulip::render(e(), "deployments", "flux").len()),
        ),
        ("zoom", Box::new(|| zoom::render(e()).unwrap().len())),
    ];
    for (name, mut f) in cases {
        let ns = measure(&mut f);
        println!("{name} render: {ns:.0} ns/event");
    }
}
