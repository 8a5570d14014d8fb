//! A connection to an EVM chain with a signing wallet: deploying the contracts, and the minter a
//! collection's standard asks for ([`Chain::minter`] for LatentCollection, ERC-721;
//! [`Chain::editions_minter`] for LatentEditions, ERC-1155).

use std::str::FromStr;

use alloy::network::{EthereumWallet, TxSigner};
use alloy::primitives::Address;
use alloy::primitives::Signature;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use latentmint_core::EvmAddress;
use tracing::info;

use crate::contract::LatentCollection;
use crate::tx::rpc::rpc_client;
use crate::tx::{SendPolicy, Sender};
use crate::{ChainError, CollectionMinter, EditionTerms, EditionsMinter};

/// Converts our address type to alloy's.
pub fn to_alloy(a: EvmAddress) -> Address {
    Address::from(*a.as_bytes())
}

/// Converts alloy's address type to ours.
pub fn from_alloy(a: Address) -> EvmAddress {
    EvmAddress::from_bytes(a.into_array())
}

/// Collection-level settings of a deployment.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// ERC-2981 royalty receiver (none: no royalty).
    pub royalty_receiver: Option<EvmAddress>,
    /// Royalty in basis points (500 = 5%).
    pub royalty_bps: u16,
    /// ERC-7572 collection metadata URI.
    pub contract_uri: String,
}

impl DeployOptions {
    /// The ERC-2981 arguments: receiver (zero: none) and basis points, checked.
    pub(crate) fn royalty(&self) -> Result<(Address, alloy::primitives::aliases::U96), ChainError> {
        if self.royalty_bps > 10_000 {
            return Err(ChainError::Config(format!("royalty of {} basis points is above 100%", self.royalty_bps)));
        }
        Ok((
            self.royalty_receiver.map(to_alloy).unwrap_or(Address::ZERO),
            alloy::primitives::aliases::U96::from(self.royalty_bps),
        ))
    }
}

/// A connection to a chain with a signing wallet.
#[derive(Clone)]
pub struct Chain {
    provider: DynProvider,
    sender: Address,
    chain_id: u64,
    /// The wallet's key for signing hashes (provenance records), beside the provider's copy.
    hash_signer: std::sync::Arc<dyn alloy::signers::Signer<Signature> + Send + Sync>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("sender", &self.sender).field("chain_id", &self.chain_id).finish()
    }
}

impl Chain {
    /// Connects to `rpc_url` signing with `key` (hex), and checks the chain id.
    pub async fn connect(rpc_url: &str, key: &str, expected_chain_id: u64) -> Result<Self, ChainError> {
        Self::connect_any(&[rpc_url.to_string()], key, expected_chain_id).await
    }

    /// Connects through several RPC URLs (in order of preference) signing with `key` (hex),
    /// and checks the chain id. Every request goes to the best-ranked URL first and on to the
    /// next when it fails (alloy's fallback layer ranks them by success rate and latency).
    pub async fn connect_any(rpc_urls: &[String], key: &str, expected_chain_id: u64) -> Result<Self, ChainError> {
        let signer = PrivateKeySigner::from_str(key.trim())
            .map_err(|_| ChainError::Config("the signer key is not a 32-byte hex private key".into()))?;
        Self::connect_signer(rpc_urls, signer, expected_chain_id).await
    }

    /// Like [`Chain::connect_any`] with any transaction signer: a local key, or one whose key
    /// never leaves a KMS.
    pub async fn connect_signer<S>(rpc_urls: &[String], signer: S, expected_chain_id: u64) -> Result<Self, ChainError>
    where
        S: TxSigner<Signature> + alloy::signers::Signer<Signature> + Clone + Send + Sync + 'static,
    {
        let sender = TxSigner::address(&signer);
        let hash_signer = std::sync::Arc::new(signer.clone());
        let shown = rpc_urls.join(", ");
        let client = rpc_client(rpc_urls)?;
        // Nonces from the node's pending count at every filled send, not alloy's default cache:
        // the minter sets its own nonces, which a cache would not see, so a later deploy or
        // grant through this provider would reuse a spent nonce.
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id()
            .wallet(EthereumWallet::new(signer))
            .connect_client(client)
            .erased();
        let chain_id = provider.get_chain_id().await.map_err(|e| ChainError::Rpc(format!("{shown}: {e}")))?;
        if chain_id != expected_chain_id {
            return Err(ChainError::Config(format!(
                "chain.chain_id: the RPC at {shown} reports chain {chain_id}, the collection expects {expected_chain_id}; fix chain.chain_id or chain.rpc_url"
            )));
        }
        Ok(Self { provider, sender, chain_id, hash_signer })
    }

    /// Signs provenance records for `contract` with this wallet's key (EIP-712).
    pub fn provenance_signer(&self, contract: EvmAddress) -> crate::provenance::EvmProvenanceSigner {
        crate::provenance::EvmProvenanceSigner::new(self.hash_signer.clone(), self.chain_id, to_alloy(contract))
    }

    /// The signing account.
    pub fn sender(&self) -> EvmAddress {
        from_alloy(self.sender)
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The underlying provider (for tests and tools).
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// Deploys a LatentCollection with the sender as admin and minter, no royalty and no
    /// contract URI (the admin can set both later).
    pub async fn deploy(&self, name: &str, symbol: &str) -> Result<EvmAddress, ChainError> {
        Ok(self.deploy_with(name, symbol, &DeployOptions::default()).await?.address)
    }

    /// Deploys a LatentCollection with royalties and collection metadata.
    pub async fn deploy_with(&self, name: &str, symbol: &str, o: &DeployOptions) -> Result<Deployed, ChainError> {
        let (receiver, bps) = o.royalty()?;
        let failed = |e: &dyn std::fmt::Display| ChainError::Rpc(format!("deploying LatentCollection: {e}"));
        let receipt = LatentCollection::deploy_builder(
            self.provider.clone(),
            name.to_string(),
            symbol.to_string(),
            self.sender,
            self.sender,
            receiver,
            bps,
            o.contract_uri.clone(),
        )
        .send()
        .await
        .map_err(|e| failed(&e))?
        .get_receipt()
        .await
        .map_err(|e| failed(&e))?;
        if !receipt.status() {
            return Err(failed(&format!("transaction {} reverted", receipt.transaction_hash)));
        }
        let (Some(address), Some(block)) = (receipt.contract_address, receipt.block_number) else {
            return Err(failed(&format!("transaction {} created no contract", receipt.transaction_hash)));
        };
        info!(contract = %address, block, "deployed LatentCollection");
        Ok(Deployed { address: from_alloy(address), block })
    }

    /// Deploys a LatentEditions (ERC-1155 editions) with the sender as admin and minter.
    pub async fn deploy_editions(&self, o: &DeployOptions) -> Result<Deployed, ChainError> {
        let (receiver, bps) = o.royalty()?;
        let failed = |e: &dyn std::fmt::Display| ChainError::Rpc(format!("deploying LatentEditions: {e}"));
        let receipt = crate::contract::LatentEditions::deploy_builder(
            self.provider.clone(),
            self.sender,
            self.sender,
            receiver,
            bps,
            o.contract_uri.clone(),
        )
        .send()
        .await
        .map_err(|e| failed(&e))?
        .get_receipt()
        .await
        .map_err(|e| failed(&e))?;
        let (Some(address), Some(block), true) = (receipt.contract_address, receipt.block_number, receipt.status())
        else {
            return Err(failed(&format!("transaction {} created no contract", receipt.transaction_hash)));
        };
        info!(contract = %address, block, "deployed LatentEditions");
        Ok(Deployed { address: from_alloy(address), block })
    }

    /// Whether the contract at `addr` holds ERC-1155 editions (ERC-165 `supportsInterface`
    /// of ERC-1155) rather than ERC-721 tokens.
    pub async fn is_editions(&self, addr: EvmAddress) -> Result<bool, ChainError> {
        is_editions(&self.provider, addr).await
    }

    /// True if there is contract code at `addr`.
    pub async fn has_code(&self, addr: EvmAddress) -> Result<bool, ChainError> {
        let code = self.provider.get_code_at(to_alloy(addr)).await.map_err(|e| ChainError::Rpc(e.to_string()))?;
        Ok(!code.is_empty())
    }

    /// The minter of the LatentCollection (ERC-721) at `contract`, sending under `policy`.
    pub fn minter(&self, contract: EvmAddress, policy: SendPolicy) -> CollectionMinter {
        CollectionMinter::new(self.sender_with(policy), contract)
    }

    /// The minter of the LatentEditions (ERC-1155) at `contract`: each job becomes an edition
    /// of `terms`, sent under `policy`.
    pub fn editions_minter(&self, contract: EvmAddress, terms: EditionTerms, policy: SendPolicy) -> EditionsMinter {
        EditionsMinter::new(self.sender_with(policy), contract, terms)
    }

    /// The minter `standard` asks for at `contract`: editions when it has edition terms.
    pub fn minter_for(&self, contract: EvmAddress, editions: Option<EditionTerms>, policy: SendPolicy) -> AnyMinter {
        match editions {
            Some(terms) => AnyMinter::Editions(std::sync::Arc::new(self.editions_minter(contract, terms, policy))),
            None => AnyMinter::Collection(std::sync::Arc::new(self.minter(contract, policy))),
        }
    }

    /// The price feed at `address`, read through this connection.
    pub fn feed(&self, address: EvmAddress) -> crate::FeedReader {
        crate::FeedReader::new(self.provider.clone(), address)
    }

    /// The gas a mined transaction used (its receipt's `gasUsed`); `None` if it is not mined.
    pub async fn gas_used(&self, tx_hash: &str) -> Result<Option<u64>, ChainError> {
        let hash = alloy::primitives::B256::from_str(tx_hash)
            .map_err(|e| ChainError::Config(format!("transaction hash `{tx_hash}`: {e}")))?;
        let receipt = self
            .provider
            .get_transaction_receipt(hash)
            .await
            .map_err(|e| ChainError::Rpc(format!("receipt of {tx_hash}: {e}")))?;
        Ok(receipt.map(|r| r.gas_used))
    }

    fn sender_with(&self, policy: SendPolicy) -> Sender {
        Sender { provider: self.provider.clone(), from: self.sender, policy }
    }
}

/// The minter of a collection's contract, as its standard asks: built in one place
/// ([`Chain::minter_for`]), so no minter branches on the standard at run time.
#[derive(Clone)]
pub enum AnyMinter {
    /// ERC-721 tokens on a LatentCollection.
    Collection(std::sync::Arc<CollectionMinter>),
    /// ERC-1155 editions on a LatentEditions.
    Editions(std::sync::Arc<EditionsMinter>),
}

impl AnyMinter {
    /// The `Minter` port of either.
    pub fn port(&self) -> std::sync::Arc<dyn latentmint_core::ports::Minter> {
        match self {
            AnyMinter::Collection(m) => m.clone(),
            AnyMinter::Editions(m) => m.clone(),
        }
    }

    /// The contract.
    pub fn address(&self) -> EvmAddress {
        match self {
            AnyMinter::Collection(m) => m.address(),
            AnyMinter::Editions(m) => m.address(),
        }
    }

    /// Copies each job mints to its recipient: 1 for an ERC-721 token.
    pub fn copies(&self) -> u128 {
        match self {
            AnyMinter::Collection(_) => 1,
            AnyMinter::Editions(m) => m.terms().copies,
        }
    }

    /// The ERC-721 minter, which living NFTs need (`setTokenURI`, transfers); `None` for
    /// editions.
    pub fn collection(&self) -> Option<&std::sync::Arc<CollectionMinter>> {
        match self {
            AnyMinter::Collection(m) => Some(m),
            AnyMinter::Editions(_) => None,
        }
    }
}

/// ERC-1155's ERC-165 interface id.
const ERC1155_INTERFACE: [u8; 4] = [0xd9, 0xb6, 0x7a, 0x26];

/// Whether the contract at `addr` says it is an ERC-1155 contract. A contract without ERC-165
/// (or no contract) answers no.
pub(crate) async fn is_editions(provider: &DynProvider, addr: EvmAddress) -> Result<bool, ChainError> {
    let c = crate::contract::LatentEditions::new(to_alloy(addr), provider.clone());
    match c.supportsInterface(ERC1155_INTERFACE.into()).call().await {
        Ok(yes) => Ok(yes),
        Err(alloy::contract::Error::TransportError(t)) if t.as_error_resp().is_none() => {
            Err(ChainError::Rpc(format!("supportsInterface at {addr}: {t}")))
        }
        // Reverted or returned nothing: not an ERC-165 contract, so not ERC-1155.
        Err(_) => Ok(false),
    }
}

/// A contract deployed, and the block it was deployed in: no event of it is older, so log
/// queries (the collector's check) start there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployed {
    /// Its address.
    pub address: EvmAddress,
    /// The block of its deployment.
    pub block: u64,
}
