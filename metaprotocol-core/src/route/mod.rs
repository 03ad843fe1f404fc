//! The route table: pure matching of request metadata to a destination, with no I/O.
//!
//! Routes come from configuration ([`RouteSpec`]), are compiled once into a [`RouteTable`]
//! (regexes compiled, mutations turned into [`Mutation`](crate::Mutation)s, weights summed), and
//! are then tried in order for each request: the first whose matchers all hold wins. Matching reads
//! the metadata in place and allocates nothing; the winning route is shared as an `Arc`.

pub mod config;
mod matcher;
mod table;

pub use config::{DestinationSpec, MatcherSpec, MirrorSpec, MutationSpec, RetryOn, RetrySpec, RouteSpec, WeightedSpec};
pub use matcher::{MatchKind, Matcher};
pub use table::{mix64, Destination, Mirror, RetryPolicy, Route, RouteAction, RouteTable, WeightedDestinations};
