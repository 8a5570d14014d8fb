//! The `Minter` port on an EVM chain through alloy, against LatentCollection.
//!
//! Exactly-once is the contract's job: it refuses a job id it has seen. This adapter reads the
//! chain before sending (a redelivered message finds the token and sends nothing), and treats
//! the contract's `AlreadyMinted` refusal as success with the existing token.

use std::str::FromStr;
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use async_trait::async_trait;
use latentmint_core::ports::{MintReceipt, Minter, PortError, PortResult};
use latentmint_core::{EvmAddress, JobId};
use tracing::{info, warn};

use crate::ChainError;
use crate::contract::LatentCollection;

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

/// A connection to a chain with a signing wallet.
#[derive(Clone)]
pub struct Chain {
    provider: DynProvider,
    sender: Address,
    chain_id: u64,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("sender", &self.sender).field("chain_id", &self.chain_id).finish()
    }
}

impl Chain {
    /// Connects to `rpc_url` signing with `key` (hex), and checks the chain id.
    pub async fn connect(rpc_url: &str, key: &str, expected_chain_id: u64) -> Result<Self, ChainError> {
        let signer = PrivateKeySigner::from_str(key.trim())
            .map_err(|_| ChainError::Config("the signer key is not a 32-byte hex private key".into()))?;
        let sender = signer.address();
        let url = rpc_url.parse().map_err(|e| ChainError::Config(format!("chain.rpc_url `{rpc_url}`: {e}")))?;
        let provider = ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(url).erased();
        let chain_id = provider.get_chain_id().await.map_err(|e| ChainError::Rpc(format!("{rpc_url}: {e}")))?;
        if chain_id != expected_chain_id {
            return Err(ChainError::Config(format!(
                "chain.chain_id: the RPC at {rpc_url} reports chain {chain_id}, the collection expects {expected_chain_id}; fix chain.chain_id or chain.rpc_url"
            )));
        }
        Ok(Self { provider, sender, chain_id })
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
        self.deploy_with(name, symbol, &DeployOptions::default()).await
    }

    /// Deploys a LatentCollection with royalties and collection metadata.
    pub async fn deploy_with(&self, name: &str, symbol: &str, o: &DeployOptions) -> Result<EvmAddress, ChainError> {
        if o.royalty_bps > 10_000 {
            return Err(ChainError::Config(format!("royalty of {} basis points is above 100%", o.royalty_bps)));
        }
        let c = LatentCollection::deploy(
            self.provider.clone(),
            name.to_string(),
            symbol.to_string(),
            self.sender,
            self.sender,
            o.royalty_receiver.map(to_alloy).unwrap_or(Address::ZERO),
            alloy::primitives::aliases::U96::from(o.royalty_bps),
            o.contract_uri.clone(),
        )
        .await
        .map_err(|e| ChainError::Rpc(format!("deploying LatentCollection: {e}")))?;
        info!(contract = %c.address(), "deployed LatentCollection");
        Ok(from_alloy(*c.address()))
    }

    /// True if there is contract code at `addr`.
    pub async fn has_code(&self, addr: EvmAddress) -> Result<bool, ChainError> {
        let code = self.provider.get_code_at(to_alloy(addr)).await.map_err(|e| ChainError::Rpc(e.to_string()))?;
        Ok(!code.is_empty())
    }

    /// A minter for the contract at `contract`.
    pub fn minter(&self, contract: EvmAddress, confirmations: u64) -> EvmMinter {
        EvmMinter {
            contract: LatentCollection::new(to_alloy(contract), self.provider.clone()),
            confirmations,
            timeout: Duration::from_secs(120),
            max_fee_per_gas: None,
        }
    }
}

/// Mints on a LatentCollection contract.
pub struct EvmMinter {
    contract: LatentCollection::LatentCollectionInstance<DynProvider>,
    confirmations: u64,
    timeout: Duration,
    max_fee_per_gas: Option<u128>,
}

impl EvmMinter {
    /// Never pay more than `wei` per gas: when the network asks more, mints wait (the message
    /// is retried later) instead of overpaying.
    pub fn with_max_fee_per_gas(mut self, wei: Option<u128>) -> Self {
        self.max_fee_per_gas = wei;
        self
    }

    /// The contract.
    pub fn address(&self) -> EvmAddress {
        from_alloy(*self.contract.address())
    }

    /// The contract binding (for tests and tools).
    pub fn contract(&self) -> &LatentCollection::LatentCollectionInstance<DynProvider> {
        &self.contract
    }

    /// `tokenURI(id)`.
    pub async fn token_uri(&self, token_id: &str) -> Result<String, ChainError> {
        let id = U256::from_str(token_id).map_err(|e| ChainError::Config(format!("token id `{token_id}`: {e}")))?;
        self.contract.tokenURI(id).call().await.map_err(|e| ChainError::Rpc(e.to_string()))
    }

    /// `ownerOf(id)`.
    pub async fn owner_of(&self, token_id: &str) -> Result<EvmAddress, ChainError> {
        let id = U256::from_str(token_id).map_err(|e| ChainError::Config(format!("token id `{token_id}`: {e}")))?;
        self.contract.ownerOf(id).call().await.map(from_alloy).map_err(|e| ChainError::Rpc(e.to_string()))
    }

    /// `totalMinted()`.
    pub async fn total_supply(&self) -> Result<u64, ChainError> {
        let s = self.contract.totalMinted().call().await.map_err(|e| ChainError::Rpc(e.to_string()))?;
        u64::try_from(s).map_err(|_| ChainError::Rpc("totalSupply exceeds u64".into()))
    }
}

fn classify(e: alloy::contract::Error) -> PortError {
    use alloy::contract::Error as E;
    match &e {
        E::TransportError(t) if t.as_error_resp().is_some() => {
            if let Some(decoded) = e.as_decoded_interface_error::<LatentCollection::LatentCollectionErrors>() {
                return PortError::Permanent(format!("the contract refused the mint: {decoded:?}"));
            }
            let msg = t.to_string();
            // Nonce races and re-broadcasts mean the transaction is (being) mined already.
            if msg.contains("nonce too low")
                || msg.contains("already known")
                || msg.contains("replacement transaction underpriced")
            {
                PortError::Transient(format!("RPC: {msg}"))
            } else if msg.contains("revert") {
                PortError::Permanent(format!("mint reverted: {msg}"))
            } else {
                PortError::Transient(format!("RPC: {msg}"))
            }
        }
        E::TransportError(t) => PortError::Transient(format!("RPC unreachable: {t}")),
        E::PendingTransactionError(p) => PortError::Transient(format!("waiting for the mint: {p}")),
        other => PortError::Permanent(other.to_string()),
    }
}

#[async_trait]
impl Minter for EvmMinter {
    async fn minted_token(&self, job: JobId) -> PortResult<Option<String>> {
        let b = self
            .contract
            .batches(B256::from(*job.as_bytes()))
            .call()
            .await
            .map_err(|e| PortError::Transient(format!("reading batches(jobId): {e}")))?;
        Ok((b.count != 0).then(|| b.first.to_string()))
    }

    async fn mint(&self, job: JobId, to: EvmAddress, metadata_cid: &str) -> PortResult<MintReceipt> {
        // The contract stores the CID's 32-byte digest and rebuilds `ipfs://<cid>` itself.
        let digest = latentmint_core::cid::raw_sha256_digest(metadata_cid).ok_or_else(|| {
            PortError::Permanent(format!(
                "metadata CID {metadata_cid} is not a single raw block (CIDv1, raw, sha2-256)"
            ))
        })?;
        // Read before write: a redelivered or retried message finds its token and stops here.
        if let Some(token_id) = self.minted_token(job).await? {
            info!(job = %job.short(), token_id, "already minted on chain; nothing sent");
            return Ok(MintReceipt { token_id, tx_hash: None });
        }
        let mut call = self.contract.mint(to_alloy(to), B256::from(*job.as_bytes()), B256::from(digest));
        if let Some(cap) = self.max_fee_per_gas {
            let fees = self
                .contract
                .provider()
                .estimate_eip1559_fees()
                .await
                .map_err(|e| PortError::Transient(format!("estimating fees: {e}")))?;
            if fees.max_fee_per_gas > cap {
                return Err(PortError::Transient(format!(
                    "network fee {:.3} gwei is above the cap of {:.3} gwei; the mint waits",
                    fees.max_fee_per_gas as f64 / 1e9,
                    cap as f64 / 1e9
                )));
            }
            call = call.max_fee_per_gas(cap).max_priority_fee_per_gas(fees.max_priority_fee_per_gas.min(cap));
        }
        let pending = match call.send().await {
            Ok(p) => p,
            Err(e) => {
                if let Some(LatentCollection::LatentCollectionErrors::AlreadyMinted(a)) =
                    e.as_decoded_interface_error::<LatentCollection::LatentCollectionErrors>()
                {
                    // Another worker won the race: the guard kept it to one token.
                    warn!(job = %job.short(), token_id = %a.first, "the contract refused a second mint of this job");
                    return Ok(MintReceipt { token_id: a.first.to_string(), tx_hash: None });
                }
                return Err(classify(e));
            }
        };
        let tx_hash = format!("{:#x}", pending.tx_hash());
        info!(job = %job.short(), tx = %tx_hash, "mint sent");
        let receipt = pending
            .with_required_confirmations(self.confirmations.max(1))
            .with_timeout(Some(self.timeout))
            .get_receipt()
            .await
            // Unclear outcome: the message is retried, and the retry reads the chain first.
            .map_err(|e| PortError::Transient(format!("mint {tx_hash} not confirmed: {e}")))?;
        if !receipt.status() {
            // Reverted on chain: either the guard (someone else minted it) or a real failure.
            if let Some(token_id) = self.minted_token(job).await? {
                return Ok(MintReceipt { token_id, tx_hash: None });
            }
            return Err(PortError::Permanent(format!("mint transaction {tx_hash} reverted")));
        }
        let token_id = receipt
            .decoded_log::<LatentCollection::Minted>()
            .map(|l| l.data.tokenId.to_string())
            .ok_or_else(|| PortError::Permanent(format!("mint {tx_hash} succeeded but emitted no Minted event")))?;
        Ok(MintReceipt { token_id, tx_hash: Some(tx_hash) })
    }
}
