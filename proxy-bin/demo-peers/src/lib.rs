//! # metaproxy-demo-peers
//!
//! Dubbo peers for metaproxy's `demo` command and its end-to-end tests: a [`provider`] that
//! answers every request (with knobs to misbehave) and counts what it served, and a pipelining
//! [`client`]. They speak Dubbo through the project's own codec; the tests that prove wire
//! compatibility use peers nobody here wrote (the PyPI Dubbo packages).

#![forbid(unsafe_code)]

pub mod client;
pub mod provider;
