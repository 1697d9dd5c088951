//! End-to-end tests of the `herald` binary: real processes on loopback ports.

mod cli;
mod daemon;
mod support;
