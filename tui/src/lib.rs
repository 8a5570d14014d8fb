//! The operator's dashboard as a library: its state and key handling ([`app`]) and its drawing
//! ([`ui`]), used by the `latentmint-tui` binary, its snapshot tests and its benchmark.

pub mod app;
#[cfg(test)]
mod screens;
pub mod ui;
