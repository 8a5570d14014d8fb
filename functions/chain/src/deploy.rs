//! Where a collection's contract lives: an address that follows from the collection (name,
//! symbol, token standard) and the studio's wallet alone, so a lost `deployment.json` or a lost
//! data folder leads back to the same contract, and a local record is only a cache of it.
//!
//! The address does not depend on the contract's bytecode either, so a later latentmint, whose
//! compiled contract differs, still finds the collections an earlier one deployed:
//! - each wallet has one [`LatentFactory`](crate::contract::LatentFactory), deployed through
//!   the standard deterministic deployment proxy ([`CREATE2_PROXY`], on anvil and the L2s)
//!   with salt 0, so its address follows from the wallet;
//! - the factory deploys each collection with CREATE2 of a fixed minimal proxy (salt: the
//!   collection) followed by that proxy's CREATE, so its address follows from the factory and
//!   the salt (the CREATE3 pattern). Only the wallet may use its factory: nobody can put
//!   another contract at a studio's address.

use alloy::primitives::{Address, B256, Bytes, address, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolValue;
use latentmint_core::EvmAddress;
use tracing::info;

use crate::contract::{LatentCollection, LatentEditions, LatentFactory};
use crate::{Chain, ChainError, DeployOptions, Deployed, from_alloy, to_alloy};

/// The deterministic deployment proxy (Arachnid's, CREATE2 with the salt as the calldata's
/// first 32 bytes), deployed at this address on anvil and on the chains latentmint supports.
pub const CREATE2_PROXY: Address = address!("4e59b44847b379578588920ca78fbf26c0b4956c");

/// The factory's minimal proxy (init code): its runtime CREATEs whatever calldata it gets.
const PROXY_INIT: [u8; 16] =
    [0x67, 0x36, 0x3d, 0x3d, 0x37, 0x36, 0x3d, 0x34, 0xf0, 0x3d, 0x52, 0x60, 0x08, 0x60, 0x18, 0xf3];

/// What a collection mints, which is part of where its contract lives: a collection that
/// switched standard would otherwise find no contract and mint every job again on a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractKind {
    /// LatentCollection (ERC-721).
    Collection,
    /// LatentEditions (ERC-1155).
    Editions,
}

impl ContractKind {
    fn tag(self) -> &'static str {
        match self {
            Self::Collection => "erc721",
            Self::Editions => "erc1155",
        }
    }

    /// The contract's name, for messages.
    pub fn contract_name(self) -> &'static str {
        match self {
            Self::Collection => "LatentCollection (ERC-721)",
            Self::Editions => "LatentEditions (ERC-1155)",
        }
    }
}

/// The factory's creation code with `owner` as its constructor argument.
fn factory_init_code(owner: Address) -> Vec<u8> {
    let mut code = LatentFactory::BYTECODE.to_vec();
    code.extend_from_slice(&owner.abi_encode());
    code
}

/// The address of `owner`'s factory on any chain with the deterministic deployment proxy.
pub fn factory_address(owner: EvmAddress) -> EvmAddress {
    from_alloy(CREATE2_PROXY.create2(B256::ZERO, keccak256(factory_init_code(to_alloy(owner)))))
}

/// The salt of a collection: its name, symbol and standard.
pub fn collection_salt(name: &str, symbol: &str, kind: ContractKind) -> B256 {
    let mut data = b"latentmint/collection/v1\0".to_vec();
    for part in [kind.tag(), name, symbol] {
        data.extend_from_slice(&(part.len() as u64).to_be_bytes());
        data.extend_from_slice(part.as_bytes());
    }
    keccak256(data)
}

/// Where `owner`'s factory puts the contract of collection `name`/`symbol` of `kind`.
pub fn collection_address(owner: EvmAddress, name: &str, symbol: &str, kind: ContractKind) -> EvmAddress {
    let factory = to_alloy(factory_address(owner));
    let proxy = factory.create2(collection_salt(name, symbol, kind), keccak256(PROXY_INIT));
    from_alloy(proxy.create(1))
}

/// A collection's contract, found or deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// Where it is and the block it was deployed in.
    pub deployed: Deployed,
    /// True when this call deployed it (false: it was there).
    pub deployed_now: bool,
}

impl Chain {
    /// The contract of collection `name`/`symbol` of `kind` at its deterministic address for
    /// this wallet: found and checked (the collection's own, administered by this wallet), or
    /// deployed there with `o` when the chain has none.
    pub async fn find_or_deploy(
        &self,
        name: &str,
        symbol: &str,
        kind: ContractKind,
        o: &DeployOptions,
    ) -> Result<Located, ChainError> {
        let owner = self.sender();
        let at = collection_address(owner, name, symbol, kind);
        if self.has_code(at).await? {
            let block = self.check_collection(at, name, symbol, kind).await?;
            return Ok(Located { deployed: Deployed { address: at, block }, deployed_now: false });
        }
        let factory = self.factory().await?;
        let (receiver, bps) = o.royalty()?;
        let init: Bytes = match kind {
            ContractKind::Collection => LatentCollection::deploy_builder(
                self.provider().clone(),
                name.to_string(),
                symbol.to_string(),
                to_alloy(owner),
                to_alloy(owner),
                receiver,
                bps,
                o.contract_uri.clone(),
            )
            .calldata()
            .clone(),
            ContractKind::Editions => LatentEditions::deploy_builder(
                self.provider().clone(),
                to_alloy(owner),
                to_alloy(owner),
                receiver,
                bps,
                o.contract_uri.clone(),
            )
            .calldata()
            .clone(),
        };
        let failed = |e: &dyn std::fmt::Display| ChainError::Rpc(format!("deploying {}: {e}", kind.contract_name()));
        let f = LatentFactory::new(to_alloy(factory), self.provider().clone());
        let receipt = f
            .create(collection_salt(name, symbol, kind), init)
            .send()
            .await
            .map_err(|e| failed(&e))?
            .get_receipt()
            .await
            .map_err(|e| failed(&e))?;
        if !receipt.status() || !self.has_code(at).await? {
            return Err(failed(&format!("transaction {} deployed nothing at {at}", receipt.transaction_hash)));
        }
        let block = self.check_collection(at, name, symbol, kind).await?;
        info!(contract = %at, block, "deployed {} at the collection's address", kind.contract_name());
        Ok(Located { deployed: Deployed { address: at, block }, deployed_now: true })
    }

    /// This wallet's factory, deployed through the deterministic deployment proxy if the chain
    /// has none yet.
    async fn factory(&self) -> Result<EvmAddress, ChainError> {
        let owner = self.sender();
        let factory = factory_address(owner);
        if self.has_code(factory).await? {
            return Ok(factory);
        }
        if !self.has_code(from_alloy(CREATE2_PROXY)).await? {
            return Err(ChainError::Config(format!(
                "chain {}: the deterministic deployment proxy {CREATE2_PROXY} is not on this chain, so a collection's \
                 contract has no fixed address here; deploy that proxy (github.com/Arachnid/deterministic-deployment-proxy) \
                 or set chain.contract to a LatentCollection deployed by `latentmint deploy`",
                self.chain_id()
            )));
        }
        let mut data = B256::ZERO.to_vec();
        data.extend_from_slice(&factory_init_code(to_alloy(owner)));
        let tx = TransactionRequest::default().to(CREATE2_PROXY).input(data.into());
        let failed = |e: &dyn std::fmt::Display| ChainError::Rpc(format!("deploying this wallet's LatentFactory: {e}"));
        let receipt = self
            .provider()
            .send_transaction(tx)
            .await
            .map_err(|e| failed(&e))?
            .get_receipt()
            .await
            .map_err(|e| failed(&e))?;
        if !receipt.status() || !self.has_code(factory).await? {
            return Err(failed(&format!("transaction {} deployed nothing at {factory}", receipt.transaction_hash)));
        }
        info!(factory = %factory, owner = %owner, "deployed this wallet's LatentFactory");
        Ok(factory)
    }

    /// Checks that the contract at `at` is collection `name`/`symbol` of `kind`, administered
    /// by this wallet; returns its deployment block.
    pub async fn check_collection(
        &self,
        at: EvmAddress,
        name: &str,
        symbol: &str,
        kind: ContractKind,
    ) -> Result<u64, ChainError> {
        let rpc = |what: &str, e: alloy::contract::Error| ChainError::Rpc(format!("{what} at {at}: {e}"));
        let is_editions = self.is_editions(at).await?;
        if is_editions != (kind == ContractKind::Editions) {
            return Err(ChainError::Config(format!(
                "{at} is not a {} contract, which this collection mints on{}",
                kind.contract_name(),
                if is_editions { " (it is an ERC-1155 contract: add [editions] to mint editions on it)" } else { "" }
            )));
        }
        let block = match kind {
            ContractKind::Collection => {
                let c = LatentCollection::new(to_alloy(at), self.provider().clone());
                let (n, s) = (c.name().call().await, c.symbol().call().await);
                let (n, s) = (n.map_err(|e| rpc("name()", e))?, s.map_err(|e| rpc("symbol()", e))?);
                if n != name || s != symbol {
                    return Err(ChainError::Config(format!(
                        "{at} is the collection `{n}` ({s}), not `{name}` ({symbol}): its jobs are another collection's"
                    )));
                }
                c.deployedBlock().call().await.map_err(|e| rpc("deployedBlock()", e))?
            }
            ContractKind::Editions => {
                let c = LatentEditions::new(to_alloy(at), self.provider().clone());
                c.deployedBlock().call().await.map_err(|e| rpc("deployedBlock()", e))?
            }
        };
        u64::try_from(block).map_err(|_| ChainError::Rpc(format!("deployedBlock() at {at} answered {block}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every wallet's factory address follows from this code: it must never change, or
    /// collections deployed before would no longer be found once their records are lost.
    #[test]
    fn the_factory_code_is_frozen() {
        assert_eq!(
            format!("{:x}", keccak256(LatentFactory::BYTECODE.as_ref())),
            "44d8142990996f5bb9129c0d51c944eafe70547df30edb0c3d2ab40e78f879d0",
            "infra/contracts/src/LatentFactory.sol compiles to other bytes: every factory address moves"
        );
    }

    #[test]
    fn addresses_follow_from_wallet_and_collection() {
        let a = EvmAddress::from_bytes([0x11; 20]);
        let b = EvmAddress::from_bytes([0x22; 20]);
        let x = collection_address(a, "Neon", "NEON", ContractKind::Collection);
        assert_eq!(x, collection_address(a, "Neon", "NEON", ContractKind::Collection));
        assert_ne!(x, collection_address(b, "Neon", "NEON", ContractKind::Collection), "another wallet");
        assert_ne!(x, collection_address(a, "Neon", "NEO", ContractKind::Collection), "another symbol");
        assert_ne!(x, collection_address(a, "Neon", "NEON", ContractKind::Editions), "another standard");
        // Length-prefixed parts: moving a letter between name and symbol is another salt.
        assert_ne!(
            collection_salt("NeonN", "EON", ContractKind::Collection),
            collection_salt("Neon", "NEON", ContractKind::Collection)
        );
    }
}
