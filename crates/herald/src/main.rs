//! The `herald` executable: everything is in the crate's library (`src/lib.rs`), which holds the
//! command line so that tests and the docs generator can read the same clap definition.

fn main() -> std::process::ExitCode {
    herald::main()
}
