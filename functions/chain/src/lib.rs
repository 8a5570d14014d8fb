//! # latentmint-chain
//!
//! The EVM edge of latentmint: the LatentCollection contract bindings, a [`Chain`] connection with a
//! signing wallet, the [`EvmMinter`] that implements the core's `Minter` port, and a
//! [`LocalNode`] (anvil) for local runs and tests, and a collector's read-only check of a token
//! ([`TokenReader`]).

pub mod contract;
mod deploy;
mod editions;
mod feed;
mod lease;
pub mod ledger;
mod minter;
mod node;
pub mod provenance;
mod tx;
mod verify;

pub use deploy::{CREATE2_PROXY, ContractKind, Located, collection_address, collection_salt, factory_address};
pub use editions::EditionTerms;
pub use feed::FeedReader;
pub use lease::WalletLease;
pub use minter::{Chain, DeployOptions, Deployed, EvmMinter, from_alloy, to_alloy};
pub use node::LocalNode;
pub use provenance::EvmProvenanceSigner;
pub use verify::{Check, EditionSupply, TokenReader, TokenReport};

/// Chain-side failures outside a mint (connecting, deploying, the local node).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// Configuration does not fit the chain.
    #[error("{0}")]
    Config(String),
    /// The RPC failed.
    #[error("RPC: {0}")]
    Rpc(String),
    /// The local node failed.
    #[error("local node: {0}")]
    Node(String),
}
