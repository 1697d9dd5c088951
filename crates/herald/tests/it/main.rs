//! End-to-end tests of the `herald` binary: real processes on loopback ports.

// Test helpers unwrap: a panic there is a test failure with a location.
#![allow(clippy::unwrap_used)]

#[cfg(feature = "alerting")]
mod alerting;
#[cfg(any(feature = "nats", feature = "googlepubsub"))]
mod buses;
#[cfg(feature = "chat")]
mod chat;
mod cli;
#[cfg(feature = "jetstream")]
mod cluster;
mod daemon;
mod engine;
#[cfg(feature = "eventhub")]
mod eventhub;
#[cfg(feature = "git")]
mod git;
mod hardening;
mod objects;
mod outbox;
mod proxy;
mod render;
mod secrets;
mod support;
#[cfg(feature = "templates")]
mod templates;
