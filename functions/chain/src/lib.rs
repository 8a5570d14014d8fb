//! # latentmint-chain
//!
//! The EVM edge of latentmint: the contract bindings, a [`Chain`] connection with a signing
//! wallet, the two minters that implement the core's `Minter` port ([`CollectionMinter`] for
//! ERC-721 tokens, [`EditionsMinter`] for ERC-1155 editions) over one transaction manager
//! (`tx/`, under a [`SendPolicy`]), a [`LocalNode`] (anvil) for local runs and tests, and a
//! collector's read-only check of a token ([`TokenReader`]).

mod collection;
mod connection;
pub mod contract;
mod deploy;
mod editions;
mod feed;
mod lease;
pub mod ledger;
mod node;
pub mod provenance;
mod tx;
mod verify;

pub use collection::CollectionMinter;
pub use connection::{AnyMinter, Chain, DeployOptions, Deployed, from_alloy, to_alloy};
pub use deploy::{CREATE2_PROXY, ContractKind, Located, collection_address, collection_salt, factory_address};
pub use editions::{EditionTerms, EditionsMinter};
pub use feed::FeedReader;
pub use lease::WalletLease;
pub use node::LocalNode;
pub use provenance::EvmProvenanceSigner;
pub use tx::SendPolicy;
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
