//! The `Minter` port on an EVM chain through alloy, against LatentCollection.
//!
//! Exactly-once is the contract's job: it refuses a job id it has seen. This adapter reads the
//! chain before sending (a redelivered message finds the token and sends nothing), and treats
//! the contract's `AlreadyMinted` refusal as success with the existing token.

use std::str::FromStr;
use std::time::Duration;

use alloy::network::{EthereumWallet, TxSigner};
use alloy::primitives::Signature;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use async_trait::async_trait;
use latentmint_core::batch::{BatchId, BatchPlan};
use latentmint_core::ledger::{Fate, Ledger, Via};
use latentmint_core::living::Transfer;
use latentmint_core::network::L1Fees;
use latentmint_core::ports::{
    BatchReceipt, MetadataUpdater, MintReceipt, Minter, PortError, PortResult, TransferSource,
};
use latentmint_core::{EvmAddress, JobId};
use tracing::{info, warn};

use crate::ChainError;
use crate::contract::LatentCollection;
use crate::tx::error::classify;
use crate::tx::rpc::rpc_client;
use crate::tx::send::Landed;

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

    /// A minter for the contract at `contract`, waiting for `confirmations`.
    pub fn minter(&self, contract: EvmAddress, confirmations: u64) -> EvmMinter {
        EvmMinter {
            contract: LatentCollection::new(to_alloy(contract), self.provider.clone()),
            sender: self.sender,
            confirmations,
            stuck_after: Duration::from_secs(90),
            max_replacements: 5,
            max_fee_per_gas: None,
            l1_fees: L1Fees::None,
            editions: None,
            ledger: Default::default(),
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

/// Mints on a LatentCollection contract: the transaction manager of one wallet.
///
/// One mint at a time per wallet (the caller holds the wallet's [`crate::WalletLease`]; in AWS
/// the mint queue's FIFO group): the nonce is the account's next mined nonce, so a transaction
/// an earlier attempt left in the mempool is replaced, not queued behind; fees are EIP-1559
/// under an optional cap, the gas limit includes the L1 component on Arbitrum, and a
/// transaction that stays unmined for `stuck_after` is replaced (same nonce) with fees raised
/// by 12.5%, so exactly one of them can be mined.
pub struct EvmMinter {
    pub(crate) contract: LatentCollection::LatentCollectionInstance<DynProvider>,
    pub(crate) sender: Address,
    /// Set for a LatentEditions contract: each job becomes an ERC-1155 edition.
    pub(crate) editions: Option<crate::editions::EditionTerms>,
    pub(crate) confirmations: u64,
    pub(crate) stuck_after: Duration,
    pub(crate) max_replacements: u32,
    pub(crate) max_fee_per_gas: Option<u128>,
    pub(crate) l1_fees: L1Fees,
    /// The contract's mints so far, read from its events (kept between reads).
    ledger: std::sync::Arc<tokio::sync::Mutex<Option<crate::ledger::LedgerCache>>>,
}

impl EvmMinter {
    /// Never pay more than `wei` per gas: when the network asks more, mints wait (the message
    /// is retried later) instead of overpaying.
    pub fn with_max_fee_per_gas(mut self, wei: Option<u128>) -> Self {
        self.max_fee_per_gas = wei;
        self
    }

    /// Replace a mint that is not mined after `after` with a higher-fee one, at most `times`
    /// times per delivery.
    pub fn with_stuck_after(mut self, after: Duration, times: u32) -> Self {
        self.stuck_after = after;
        self.max_replacements = times;
        self
    }

    /// Mint ERC-1155 editions on the LatentEditions contract at this address instead of
    /// ERC-721 tokens: each job's edition is created with its metadata and cap, and its copies
    /// minted to the recipient under the job id as the mint key.
    pub fn with_editions(mut self, terms: Option<crate::editions::EditionTerms>) -> Self {
        self.editions = terms;
        self
    }

    /// The ERC-1155 edition terms, when this minter mints editions.
    pub fn editions(&self) -> Option<crate::editions::EditionTerms> {
        self.editions
    }

    /// How the chain charges its L1 component (from the network preset).
    pub fn with_l1_fees(mut self, l1_fees: L1Fees) -> Self {
        self.l1_fees = l1_fees;
        self
    }

    /// The contract.
    pub fn address(&self) -> EvmAddress {
        from_alloy(*self.contract.address())
    }

    /// The price feed at `address`, read through this minter's RPC.
    pub fn feed(&self, address: EvmAddress) -> crate::FeedReader {
        crate::FeedReader::new(self.contract.provider().clone(), address)
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

    /// Points `token_id` at `uri` (`setTokenURI`, which emits ERC-4906 `MetadataUpdate`), once:
    /// nothing is sent when the token points there already, and an unclear outcome reads the
    /// chain before sending again. Returns the transaction hash when this call sent one.
    pub async fn set_token_uri(&self, token_id: &str, uri: &str) -> PortResult<Option<String>> {
        if self.editions.is_some() {
            return Err(PortError::Permanent(
                "living NFTs evolve ERC-721 tokens; this minter mints ERC-1155 editions".into(),
            ));
        }
        let id = U256::from_str(token_id).map_err(|e| PortError::Permanent(format!("token id `{token_id}`: {e}")))?;
        let there = || async move {
            let now = self
                .contract
                .tokenURI(id)
                .call()
                .await
                .map_err(|e| PortError::Transient(format!("reading tokenURI({token_id}): {e}")))?;
            Ok((now == uri).then_some(now))
        };
        if there().await?.is_some() {
            info!(token_id, uri, "token already points at its new metadata; nothing sent");
            return Ok(None);
        }
        let call = self.contract.setTokenURI(id, uri.to_string()).from(self.sender);
        let l2_gas = call
            .estimate_gas()
            .await
            .map_err(|e| classify::<LatentCollection::LatentCollectionErrors>("setTokenURI", e))?;
        match self.send_guarded("setTokenURI", call, l2_gas, there).await? {
            Landed::Found(_) => Ok(None),
            Landed::Mined(receipt, tx_hash) if receipt.status() => Ok(Some(tx_hash)),
            Landed::Mined(_, tx_hash) => Err(PortError::Permanent(format!("setTokenURI {tx_hash} reverted"))),
        }
    }

    /// The chain's latest block number.
    pub async fn head(&self) -> Result<u64, ChainError> {
        self.contract.provider().get_block_number().await.map_err(|e| ChainError::Rpc(e.to_string()))
    }

    /// Transfers between wallets (mints and burns left out) in blocks `from..=to`, in chain order.
    pub async fn transfers(&self, from: u64, to: u64) -> Result<Vec<Transfer>, ChainError> {
        self.transfer_logs(from, to, false).await
    }

    /// Mints (transfers from the zero address) in blocks `from..=to`, in chain order.
    pub async fn mints(&self, from: u64, to: u64) -> Result<Vec<Transfer>, ChainError> {
        self.transfer_logs(from, to, true).await
    }

    async fn transfer_logs(&self, from: u64, to: u64, mints: bool) -> Result<Vec<Transfer>, ChainError> {
        let mut query = self.contract.Transfer_filter().from_block(from).to_block(to);
        if mints {
            query = query.topic1(B256::ZERO);
        }
        let logs =
            query.query().await.map_err(|e| ChainError::Rpc(format!("eth_getLogs Transfer {from}..={to}: {e}")))?;
        let mut out: Vec<Transfer> = logs
            .into_iter()
            // Between wallets, or from nobody: a burn is neither.
            .filter(|(t, _)| !t.to.is_zero() && t.from.is_zero() == mints)
            .filter_map(|(t, log)| {
                Some(Transfer {
                    token_id: t.tokenId.to_string(),
                    block: log.block_number?,
                    tx_hash: format!("{:#x}", log.transaction_hash?),
                    log_index: log.log_index?,
                })
            })
            .collect();
        out.sort_by_key(|t| (t.block, t.log_index));
        Ok(out)
    }

    /// The gas a mined transaction used (its receipt's `gasUsed`); `None` if it is not mined.
    pub async fn gas_used(&self, tx_hash: &str) -> Result<Option<u64>, ChainError> {
        let hash =
            B256::from_str(tx_hash).map_err(|e| ChainError::Config(format!("transaction hash `{tx_hash}`: {e}")))?;
        let receipt = self
            .contract
            .provider()
            .get_transaction_receipt(hash)
            .await
            .map_err(|e| ChainError::Rpc(format!("receipt of {tx_hash}: {e}")))?;
        Ok(receipt.map(|r| r.gas_used))
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

#[async_trait]
impl Minter for EvmMinter {
    async fn fates(&self, jobs: &[JobId]) -> PortResult<Vec<Fate>> {
        if self.editions.is_some() {
            // Editions are keyed by the whole job id on chain (`mintedBy`); a position held by
            // another job is told from the events (the contract does not keep positions).
            let ledger = self.ledger().await.map_err(|e| PortError::Transient(e.to_string()))?;
            return Ok(jobs.iter().map(|j| ledger.fate(*j)).collect());
        }
        let claimed =
            crate::ledger::claimed(&self.contract, jobs).await.map_err(|e| PortError::Transient(e.to_string()))?;
        if !claimed.iter().any(|c| *c) {
            return Ok(vec![Fate::Unminted; jobs.len()]);
        }
        // The events were read after the bitmap, so they cover every position it holds; if
        // they do not (a replica answered short), what was kept is read again, once.
        let mut ledger = self.ledger().await.map_err(|e| PortError::Transient(e.to_string()))?;
        if jobs.iter().zip(&claimed).any(|(j, c)| *c && ledger.fate(*j) == Fate::Unminted) {
            if let Some(cache) = self.ledger.lock().await.as_mut() {
                cache.forget();
            }
            ledger = self.ledger().await.map_err(|e| PortError::Transient(e.to_string()))?;
        }
        jobs.iter()
            .zip(claimed)
            .map(|(job, claimed)| match (claimed, ledger.fate(*job)) {
                (false, _) => Ok(Fate::Unminted),
                (true, Fate::Unminted) => Err(PortError::Transient(format!(
                    "the contract holds job {}'s {} as minted, but no mint event names it: the RPC did not return every log of the contract",
                    job.short(),
                    job.position()
                ))),
                (true, fate) => Ok(fate),
            })
            .collect()
    }

    async fn mint(&self, job: JobId, to: EvmAddress, metadata_cid: &str) -> PortResult<MintReceipt> {
        // A single mint's token id is the metadata CID's 32-byte digest; the contract rebuilds
        // `ipfs://<cid>` from it.
        let digest = latentmint_core::cid::raw_sha256_digest(metadata_cid).ok_or_else(|| {
            PortError::Permanent(format!(
                "metadata CID {metadata_cid} is not a single raw block (CIDv1, raw, sha2-256)"
            ))
        })?;
        if let Some(terms) = self.editions {
            return self.mint_edition(job, to, B256::from(digest), terms).await;
        }
        // Read before write: a redelivered or retried message, a run that lost its records,
        // finds the token and stops here.
        if let Some(found) = self.found(job).await? {
            info!(job = %job.short(), token_id = %found.token_id, "already minted on chain; nothing sent");
            return Ok(found);
        }
        let call = self.contract.mint(to_alloy(to), B256::from(*job.as_bytes()), B256::from(digest)).from(self.sender);
        // The estimate runs the mint: a refusal (already minted, paused, missing role) shows
        // here, before anything is paid.
        let l2_gas = match call.estimate_gas().await {
            Ok(g) => g,
            Err(e) => {
                match e.as_decoded_interface_error::<LatentCollection::LatentCollectionErrors>() {
                    // Another worker won the race: the guard kept it to one token.
                    Some(LatentCollection::LatentCollectionErrors::AlreadyMinted(_)) => {
                        warn!(job = %job.short(), "the contract refused a second mint of this job");
                        return self.found(job).await?.ok_or_else(|| {
                            PortError::Transient(format!(
                                "job {} is minted, but its event is not readable yet",
                                job.short()
                            ))
                        });
                    }
                    Some(LatentCollection::LatentCollectionErrors::TokenExists(t)) => {
                        return Err(PortError::Permanent(format!(
                            "metadata {metadata_cid} is already token {} (for another job): a job's metadata names its job, so this record was copied",
                            t.tokenId
                        )));
                    }
                    _ => return Err(classify::<LatentCollection::LatentCollectionErrors>("mint", e)),
                }
            }
        };
        let done = || async { Ok(self.found(job).await?.map(|r| r.token_id)) };
        match self.send_guarded("mint", call, l2_gas, done).await? {
            Landed::Found(_) => self.found(job).await?.ok_or_else(|| {
                PortError::Transient(format!("job {} was minted meanwhile; reading it again", job.short()))
            }),
            Landed::Mined(receipt, tx_hash) => self.finish(job, *receipt, tx_hash).await,
        }
    }

    async fn minted_batch(&self, batch: BatchId) -> PortResult<Option<BatchReceipt>> {
        self.no_batches_of_editions()?;
        let ledger = self.ledger().await.map_err(|e| PortError::Transient(e.to_string()))?;
        Ok(ledger.batch(batch).first().and_then(|m| match &m.via {
            Via::Batch { first, .. } => {
                Some(BatchReceipt { first: *first, tx_hash: Some(m.tx_hash.clone()), sent: false })
            }
            _ => None,
        }))
    }

    async fn mint_batch(&self, plan: &BatchPlan) -> PortResult<BatchReceipt> {
        self.no_batches_of_editions()?;
        // The contract stores the directory CID's 32-byte digest and rebuilds `ipfs://<dir>/<i>`.
        let digest = latentmint_core::cid::dag_pb_sha256_digest(&plan.directory_cid).ok_or_else(|| {
            PortError::Permanent(format!(
                "batch {}: directory CID {} is not a dag-pb CIDv1 with sha2-256",
                plan.id, plan.directory_cid
            ))
        })?;
        if plan.jobs.is_empty() || plan.recipients.len() != plan.jobs.len() {
            return Err(PortError::Permanent(format!(
                "batch {}: {} jobs but {} recipients",
                plan.id,
                plan.jobs.len(),
                plan.recipients.len()
            )));
        }
        // Read before write: a retried batch finds its tokens and sends nothing.
        if let Some(found) = self.minted_batch(plan.id).await? {
            info!(batch = %plan.id.short(), first = found.first, "batch already minted on chain; nothing sent");
            return Ok(found);
        }
        let key = B256::from(*plan.id.as_bytes());
        let jobs: Vec<B256> = plan.jobs.iter().map(|j| B256::from(*j.as_bytes())).collect();
        let (digest, root) = (B256::from(digest), B256::ZERO);
        // One recipient: ERC721A writes ownership once for the whole batch.
        match plan.single_recipient() {
            Some(to) => {
                let call = self.contract.mintBatch(key, to_alloy(to), jobs, digest, root).from(self.sender);
                self.send_batch(plan, call).await
            }
            None => {
                let to: Vec<Address> = plan.recipients.iter().map(|r| to_alloy(*r)).collect();
                let call = self.contract.mintBatchTo(key, to, jobs, digest, root).from(self.sender);
                self.send_batch(plan, call).await
            }
        }
    }
}

impl EvmMinter {
    /// Every mint of the contract so far, read from its events: what was read before is kept,
    /// the chain's tip is read again (see [`crate::ledger`]).
    pub async fn ledger(&self) -> Result<Ledger, ChainError> {
        let mut cache = self.ledger.lock().await;
        if cache.is_none() {
            let (kind, start) = match self.editions {
                Some(_) => (crate::ledger::Kind::Editions, self.editions_deployed_block().await?),
                None => (
                    crate::ledger::Kind::Collection,
                    self.contract
                        .deployedBlock()
                        .call()
                        .await
                        .map_err(|e| ChainError::Rpc(format!("deployedBlock(): {e}")))?,
                ),
            };
            let start =
                u64::try_from(start).map_err(|_| ChainError::Rpc(format!("deployedBlock() answered {start}")))?;
            *cache = Some(crate::ledger::LedgerCache::new(*self.contract.address(), kind, start));
        }
        match cache.as_mut() {
            Some(c) => c.read(self.contract.provider(), self.confirmations).await,
            None => Err(ChainError::Rpc("the ledger cache was not made".into())),
        }
    }

    /// The receipt of `job`'s token if the chain has it; a permanent error if its position
    /// holds another job.
    async fn found(&self, job: JobId) -> PortResult<Option<MintReceipt>> {
        match self.fates(&[job]).await?.into_iter().next() {
            Some(Fate::Minted(m)) => {
                Ok(Some(MintReceipt { token_id: m.token_id.clone(), tx_hash: Some(m.tx_hash.clone()), found: Some(m) }))
            }
            Some(Fate::PositionTaken(holder)) => {
                Err(PortError::Permanent(latentmint_core::ledger::position_taken(job, &holder)))
            }
            _ => Ok(None),
        }
    }

    fn no_batches_of_editions(&self) -> PortResult<()> {
        if self.editions.is_some() {
            return Err(PortError::Permanent(
                "ERC-1155 editions are minted one job at a time; batches are for ERC-721 collections (set chain.batch_size = 1)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Estimates and sends a batch mint; the contract refuses it whole if any of its jobs is
    /// minted already.
    async fn send_batch<C: alloy::contract::CallDecoder>(
        &self,
        plan: &BatchPlan,
        call: alloy::contract::CallBuilder<&DynProvider, C>,
    ) -> PortResult<BatchReceipt> {
        let l2_gas = match call.estimate_gas().await {
            Ok(g) => g,
            Err(e) => {
                if let Some(LatentCollection::LatentCollectionErrors::AlreadyMinted(a)) =
                    e.as_decoded_interface_error::<LatentCollection::LatentCollectionErrors>()
                {
                    if let Some(found) = self.minted_batch(plan.id).await? {
                        return Ok(found);
                    }
                    // A job of the plan was minted elsewhere (alone, or by another run in
                    // another grouping): the plan can never be sent; the stage plans again.
                    return Err(PortError::Transient(format!(
                        "batch {}: job {} is minted already, so the contract refuses the batch; its jobs are read from the chain and planned again",
                        plan.id.short(),
                        JobId::from_bytes(a.jobId.0).short()
                    )));
                }
                return Err(classify::<LatentCollection::LatentCollectionErrors>("batch mint", e));
            }
        };
        let found = || async { Ok(self.minted_batch(plan.id).await?.map(|f| f.first.to_string())) };
        match self.send_guarded("batch mint", call, l2_gas, found).await? {
            Landed::Found(_) => self.minted_batch(plan.id).await?.ok_or_else(|| {
                PortError::Transient(format!("batch {} was minted meanwhile; reading it again", plan.id.short()))
            }),
            Landed::Mined(receipt, tx_hash) => {
                let minted = receipt.decoded_log::<LatentCollection::BatchMinted>().filter(|_| receipt.status());
                match minted {
                    Some(ev) => {
                        let first = u64::try_from(ev.data.first)
                            .map_err(|_| PortError::Permanent(format!("batch first token {}", ev.data.first)))?;
                        info!(batch = %plan.id.short(), first, jobs = plan.jobs.len(), gas = receipt.gas_used, "batch minted");
                        Ok(BatchReceipt { first, tx_hash: Some(tx_hash), sent: true })
                    }
                    // Reverted: another sender's copy of this batch landed first, or a job of
                    // it was minted elsewhere meanwhile, or the contract was paused.
                    None => match self.minted_batch(plan.id).await? {
                        Some(found) => Ok(found),
                        None => Err(PortError::Transient(format!(
                            "batch mint transaction {tx_hash} reverted; its jobs are read from the chain and planned again"
                        ))),
                    },
                }
            }
        }
    }
}

#[async_trait]
impl MetadataUpdater for EvmMinter {
    async fn token_uri(&self, token_id: &str) -> PortResult<String> {
        EvmMinter::token_uri(self, token_id)
            .await
            .map_err(|e| PortError::Transient(format!("tokenURI({token_id}): {e}")))
    }

    async fn set_token_uri(&self, token_id: &str, uri: &str) -> PortResult<Option<String>> {
        EvmMinter::set_token_uri(self, token_id, uri).await
    }
}

#[async_trait]
impl TransferSource for EvmMinter {
    async fn head(&self) -> PortResult<u64> {
        EvmMinter::head(self).await.map_err(|e| PortError::Transient(e.to_string()))
    }

    async fn transfers(&self, from: u64, to: u64) -> PortResult<Vec<Transfer>> {
        EvmMinter::transfers(self, from, to).await.map_err(|e| PortError::Transient(e.to_string()))
    }

    async fn mints(&self, from: u64, to: u64) -> PortResult<Vec<Transfer>> {
        EvmMinter::mints(self, from, to).await.map_err(|e| PortError::Transient(e.to_string()))
    }
}

impl EvmMinter {
    async fn finish(&self, job: JobId, receipt: TransactionReceipt, tx_hash: String) -> PortResult<MintReceipt> {
        if !receipt.status() {
            // Reverted on chain: either the guard (someone else minted it) or a real failure.
            if let Some(found) = self.found(job).await? {
                return Ok(found);
            }
            return Err(PortError::Permanent(format!("mint transaction {tx_hash} reverted")));
        }
        // The contract's JobMinted names the new token (its id is the metadata digest).
        let token_id = receipt
            .decoded_log::<LatentCollection::JobMinted>()
            .filter(|l| l.data.jobId.0 == *job.as_bytes())
            .map(|l| l.data.tokenId.to_string())
            .ok_or_else(|| PortError::Permanent(format!("mint {tx_hash} succeeded but emitted no JobMinted event")))?;
        Ok(MintReceipt { token_id, tx_hash: Some(tx_hash), found: None })
    }
}
