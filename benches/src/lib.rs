//! `ekg-benches`: see `benches/gatekeeper.rs` and `docs/performance.md`.
