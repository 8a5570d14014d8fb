//! One transaction, sent so that its effect lands once, file by phase:
//!
//! - [`fees`]: EIP-1559 fees under the operator's cap, and the raise a replacement needs;
//! - [`send`]: the wallet's next mined nonce, the gas limit (with Arbitrum's L1 part), the
//!   replacement of a send that stays unmined, and the read-before-write guard asked whenever
//!   the outcome is unclear;
//! - [`confirm`]: a mined transaction's receipt once it has its confirmations;
//! - [`error`]: what a contract's refusal, a node's answer or an unreachable RPC means, and
//!   what the sender does about each ([`error::Recovery`]);
//! - [`rpc`]: the client over one or several RPC URLs.
//!
//! The minters (`minter.rs` for LatentCollection, `editions.rs` for LatentEditions) build the
//! call and say how to find its effect on chain; everything about getting it mined is here.

pub(crate) mod confirm;
pub(crate) mod error;
pub(crate) mod fees;
pub(crate) mod rpc;
pub(crate) mod send;
