//! A collector's check of one token, from the chain inwards. Nothing is taken on trust from
//! where the content is fetched: every byte is checked against the CID that points at it. The
//! provenance record must be signed for this very contract and chain, by a wallet the contract
//! gave the role (the minter, or the metadata updater for an evolved image) when the record was
//! put behind the token (read from the contract's `RoleGranted`/`RoleRevoked`, mint and ERC-4906
//! events), and must be the record of the job this token was minted for.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::str::FromStr;

use alloy::contract::Event;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::sol_types::SolEvent;
use latentmint_core::cid::cid_of_bytes;
use latentmint_core::metadata::TokenMetadata;
use latentmint_core::ports::ContentSource;
use latentmint_core::{EvmAddress, JobId};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, OnceCell};

use crate::contract::{LatentCollection, LatentEditions};
use crate::{ChainError, from_alloy, to_alloy};
use latentmint_core::ledger::{Duplicate, Ledger, Via};

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// What was checked, in a few words.
    pub what: &'static str,
    /// Whether it holds.
    pub ok: bool,
    /// The evidence, or why not.
    pub detail: String,
}

/// What [`TokenReader::verify`] found for one token (as JSON: everything but the image bytes).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenReport {
    /// The token (an edition's id on an ERC-1155 contract).
    pub token_id: String,
    /// Its owner now (ERC-721; an edition's copies have many holders instead).
    pub owner: Option<EvmAddress>,
    /// An edition's copies minted and cap (ERC-1155 only).
    pub edition: Option<EditionSupply>,
    /// `tokenURI(token)`, or an edition's `uri(id)`.
    pub token_uri: String,
    /// The checks, in the order they were made; the first failure ends the list when later
    /// checks depend on it.
    pub checks: Vec<Check>,
    /// The CID the metadata was fetched by: the tokenURI's, or for a batch token the
    /// directory's entry for it.
    pub metadata_cid: Option<String>,
    /// The metadata, when it could be fetched and read.
    pub metadata: Option<TokenMetadata>,
    /// The image bytes, when they matched their CID.
    #[serde(skip)]
    pub image: Option<Vec<u8>>,
}

impl TokenReport {
    /// True when every check holds.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// Adds a check (also for checks made beyond the chain, such as regenerating the image);
    /// returns `ok`.
    pub fn check(&mut self, what: &'static str, ok: bool, detail: impl Into<String>) -> bool {
        self.checks.push(Check { what, ok, detail: detail.into() });
        ok
    }
}

/// The copies of an edition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EditionSupply {
    /// Copies minted so far.
    pub minted: u128,
    /// The cap; 0: an open edition.
    pub max_supply: u128,
}

/// Read-only access to a LatentCollection (ERC-721) or LatentEditions (ERC-1155) contract: no
/// wallet, no key.
///
/// The contract's metadata updates and each signer's role history are read once per reader
/// and reused for every token it checks (a run checks all its tokens with one reader): a
/// reader is for one pass of checks, not for watching a chain.
pub struct TokenReader {
    /// The contract through the ERC-721 binding; also serves an edition contract's role
    /// queries and events, which share their ABI (OpenZeppelin AccessControl).
    contract: LatentCollection::LatentCollectionInstance<DynProvider>,
    /// The same contract as LatentEditions, when it is one.
    editions: Option<LatentEditions::LatentEditionsInstance<DynProvider>>,
    chain_id: u64,
    /// Where log queries start (the contract's deployment block, or 0).
    from_block: u64,
    metadata_updates: OnceCell<Vec<(U256, LogAt)>>,
    role_histories: Mutex<HashMap<(B256, Address), Vec<RoleChange>>>,
    /// Every mint's place, once [`TokenReader::minted_tokens`] has read them all.
    mints: OnceCell<HashMap<U256, LogAt>>,
    /// Which job became which token: the contract's mint events, read once.
    ledger: OnceCell<Ledger>,
}

impl TokenReader {
    /// Connects to the chain behind `rpc_urls` (in order of preference) and reads its chain id.
    pub async fn connect(rpc_urls: &[String], contract: EvmAddress) -> Result<Self, ChainError> {
        let provider = ProviderBuilder::new().connect_client(crate::tx::rpc::rpc_client(rpc_urls)?).erased();
        Self::on(provider, contract).await.map_err(|e| match e {
            ChainError::Rpc(m) => ChainError::Rpc(format!("{}: {m}", rpc_urls.join(", "))),
            other => other,
        })
    }

    /// The contract at `contract` through an existing connection (a minter's, after a run).
    pub async fn on(provider: DynProvider, contract: EvmAddress) -> Result<Self, ChainError> {
        let chain_id = provider.get_chain_id().await.map_err(|e| ChainError::Rpc(e.to_string()))?;
        let code = provider.get_code_at(to_alloy(contract)).await.map_err(|e| ChainError::Rpc(e.to_string()))?;
        if code.is_empty() {
            return Err(ChainError::Config(format!(
                "there is no contract at {contract} on chain {chain_id}; check the address and the RPC URL"
            )));
        }
        let editions = crate::connection::is_editions(&provider, contract)
            .await?
            .then(|| LatentEditions::new(to_alloy(contract), provider.clone()));
        // No event of the contract is older than its deployment block (contracts of earlier
        // versions do not say it: genesis).
        let contract = LatentCollection::new(to_alloy(contract), provider);
        let deployed = match &editions {
            Some(e) => e.deployedBlock().call().await.ok(),
            None => contract.deployedBlock().call().await.ok(),
        };
        Ok(Self {
            contract,
            editions,
            chain_id,
            from_block: deployed.and_then(|b| u64::try_from(b).ok()).unwrap_or(0),
            metadata_updates: OnceCell::new(),
            role_histories: Mutex::default(),
            mints: OnceCell::new(),
            ledger: OnceCell::new(),
        })
    }

    /// The contract's mint events as a ledger of which job became which token (read once per
    /// reader, from the contract's deployment block).
    pub async fn ledger(&self) -> Result<&Ledger, ChainError> {
        self.ledger
            .get_or_try_init(|| async {
                let provider = self.contract.provider();
                let head =
                    provider.get_block_number().await.map_err(|e| ChainError::Rpc(format!("eth_blockNumber: {e}")))?;
                let kind = if self.editions.is_some() {
                    crate::ledger::Kind::Editions
                } else {
                    crate::ledger::Kind::Collection
                };
                let from = self.from_block;
                let mut ledger = Ledger::default();
                ledger.extend(crate::ledger::scan(provider, *self.contract.address(), kind, from, head).await?);
                Ok(ledger)
            })
            .await
    }

    /// Every job that owns more than one token on the contract, and every position minted
    /// for more than one job, whichever paths minted them: what a collector's check refuses.
    pub async fn duplicates(&self) -> Result<Vec<Duplicate>, ChainError> {
        Ok(self.ledger().await?.duplicates())
    }

    /// Starts log queries (the role history, mint and metadata events) at `block` instead of
    /// the contract's deployment block (which it records), or genesis for a contract of an
    /// earlier version that does not.
    pub fn from_block(mut self, block: u64) -> Self {
        self.from_block = block;
        self
    }

    /// Copies of edition `token_id` that `holder` has (ERC-1155 `balanceOf`); an error on an
    /// ERC-721 contract.
    pub async fn edition_balance(&self, holder: EvmAddress, token_id: &str) -> Result<u128, ChainError> {
        let e = self
            .editions
            .as_ref()
            .ok_or_else(|| ChainError::Config(format!("{} is not an ERC-1155 contract", self.contract.address())))?;
        let id = U256::from_str(token_id).map_err(|e| ChainError::Config(format!("token id `{token_id}`: {e}")))?;
        let n = e
            .balanceOf(to_alloy(holder), id)
            .call()
            .await
            .map_err(|err| ChainError::Rpc(format!("balanceOf: {err}")))?;
        Ok(u128::try_from(n).unwrap_or(u128::MAX))
    }

    /// The chain id the RPC reported.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// Every token the contract minted, in the order they were minted (its `Transfer` events
    /// from the zero address); on an edition contract, every edition with copies minted (its
    /// `EditionMinted` events).
    pub async fn minted_tokens(&self) -> Result<Vec<String>, ChainError> {
        if let Some(e) = &self.editions {
            let mints = self.logs(e.EditionMinted_filter()).await?;
            let mut ordered: Vec<_> = mints.into_iter().map(|(ev, at)| (at, ev.id)).collect();
            ordered.sort_by_key(|(at, _)| *at);
            let mut seen = std::collections::HashSet::new();
            return Ok(ordered.into_iter().filter(|(_, id)| seen.insert(*id)).map(|(_, id)| id.to_string()).collect());
        }
        // Every mint event names its job; the ledger keeps them in chain order.
        let ledger = self.ledger().await?;
        let mut first = HashMap::new();
        let mut tokens = Vec::new();
        for m in ledger.mints() {
            let id =
                U256::from_str(&m.token_id).map_err(|e| ChainError::Rpc(format!("token id {}: {e}", m.token_id)))?;
            if let Entry::Vacant(e) = first.entry(id) {
                e.insert(LogAt { block: m.block, index: m.log_index });
                tokens.push(m.token_id.clone());
            }
        }
        // Kept for the checks that follow: each token's mint is already known.
        let _ = self.mints.set(first);
        Ok(tokens)
    }

    /// Checks `token_id`: tokenURI → metadata bytes (CID) → signed provenance (signer, domain,
    /// role when the record was set, the token's job) → image bytes (CID and the record's
    /// SHA-256). An error only when the chain cannot be read or the token does not exist;
    /// everything else is a check in the report.
    pub async fn verify(&self, token_id: &str, content: &dyn ContentSource) -> Result<TokenReport, ChainError> {
        let id = U256::from_str(token_id).map_err(|e| ChainError::Config(format!("token id `{token_id}`: {e}")))?;
        // An edition's job comes with its supply, for the record check below.
        let (owner, edition, edition_job, token_uri) = match &self.editions {
            Some(e) => {
                let (supply, job, uri) = self.edition(e, token_id, id).await?;
                (None, Some(supply), Some(job), uri)
            }
            None => {
                let (owner, uri) = self.token(token_id, id).await?;
                (Some(owner), None, None, uri)
            }
        };
        let mut r = TokenReport {
            token_id: token_id.to_string(),
            owner,
            edition,
            token_uri: token_uri.clone(),
            checks: Vec::new(),
            metadata_cid: None,
            metadata: None,
            image: None,
        };

        let path = token_uri.strip_prefix("ipfs://");
        let (meta_cid, batch_position) = match path.map(|p| (p, p.split_once('/'))) {
            Some((cid, None)) => (cid.to_string(), None),
            // A batch token: file <n> of the batch's directory.
            Some((_, Some((dir, n)))) if edition.is_none() => {
                match self.batch_entry(&mut r, id, dir, n, content).await? {
                    Some((cid, place)) => (cid, Some(place)),
                    None => return Ok(r),
                }
            }
            _ => {
                r.check(
                    "metadata is content-addressed",
                    false,
                    format!("tokenURI is `{token_uri}`, not ipfs://<CID> or a batch's ipfs://<directory CID>/<n>"),
                );
                return Ok(r);
            }
        };
        let meta_cid = meta_cid.as_str();
        r.metadata_cid = Some(meta_cid.to_string());
        let bytes = match content.fetch(meta_cid).await {
            Ok(b) => b,
            Err(e) => {
                r.check("metadata fetched", false, format!("{meta_cid}: {e}"));
                return Ok(r);
            }
        };
        let got = cid_of_bytes(&bytes);
        if !r.check("metadata bytes match their CID", got == meta_cid, format!("{meta_cid}, computed {got}")) {
            return Ok(r);
        }
        let meta: TokenMetadata = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => {
                r.check("metadata is latentmint token metadata", false, e.to_string());
                return Ok(r);
            }
        };

        self.check_record(&mut r, &meta, id, edition_job, batch_position).await?;
        self.check_image(&mut r, &meta, content).await;
        r.metadata = Some(meta);
        Ok(r)
    }

    /// For a batch token whose tokenURI is `ipfs://<dir>/<n>`: that `n` is the token's place in
    /// its batch, and the CID the directory (checked against its CID) lists for file `n`, with
    /// the place. `None` when a check failed (it is in the report).
    async fn batch_entry(
        &self,
        r: &mut TokenReport,
        id: U256,
        dir: &str,
        n: &str,
        content: &dyn ContentSource,
    ) -> Result<Option<(String, u64)>, ChainError> {
        let first =
            self.contract.batchStart(id).call().await.map_err(|e| ChainError::Rpc(format!("batchStart({id}): {e}")))?;
        let place = id.checked_sub(first).and_then(|p| u64::try_from(p).ok());
        let named = n.parse::<u64>().ok();
        if !r.check(
            "the tokenURI names the token's place in its batch",
            place.is_some() && place == named,
            match place {
                Some(p) => {
                    format!("the batch starts at token {first}, so token {id} is entry {p}; the tokenURI names `{n}`")
                }
                None => format!("the batch starts at token {first}, after token {id}"),
            },
        ) {
            return Ok(None);
        }
        let block = match content.fetch_block(dir).await {
            Ok(b) => b,
            Err(e) => {
                r.check("batch directory fetched", false, format!("{dir}: {e}"));
                return Ok(None);
            }
        };
        let links = match latentmint_core::cid::directory_links(dir, &block) {
            Ok(l) => l,
            Err(e) => {
                r.check("batch directory matches the tokenURI's CID", false, e.to_string());
                return Ok(None);
            }
        };
        let Some((_, cid)) = links.into_iter().find(|(name, _)| name == n) else {
            r.check("metadata is in the batch directory", false, format!("directory {dir} has no entry `{n}`"));
            return Ok(None);
        };
        r.check(
            "metadata is in the batch directory",
            true,
            format!("entry {n} of {dir} (checked against its CID) is {cid}"),
        );
        Ok(Some((cid, named.unwrap_or_default())))
    }

    /// An edition's copies, the job it was created for and `uri(id)`; an error when there is no
    /// such edition.
    async fn edition(
        &self,
        e: &LatentEditions::LatentEditionsInstance<DynProvider>,
        token_id: &str,
        id: U256,
    ) -> Result<(EditionSupply, B256, String), ChainError> {
        let made =
            e.editions(id).call().await.map_err(|err| ChainError::Rpc(format!("editions({token_id}): {err}")))?;
        if made.metadataDigest.is_zero() {
            return Err(ChainError::Config(format!(
                "edition {token_id} does not exist on the ERC-1155 contract {}: check --token (a run lists its editions in tokens.json) and --contract",
                e.address()
            )));
        }
        let uri = e.uri(id).call().await.map_err(|err| ChainError::Rpc(format!("uri({token_id}): {err}")))?;
        Ok((EditionSupply { minted: made.minted, max_supply: made.maxSupply }, made.jobId, uri))
    }

    /// An ERC-721 token's owner and `tokenURI`; an error when there is no such token.
    async fn token(&self, token_id: &str, id: U256) -> Result<(EvmAddress, String), ChainError> {
        let owner = self.contract.ownerOf(id).call().await.map_err(|e| {
            match e.as_decoded_interface_error::<LatentCollection::LatentCollectionErrors>() {
                Some(LatentCollection::LatentCollectionErrors::OwnerQueryForNonexistentToken(_)) => {
                    ChainError::Config(format!(
                        "token {token_id} does not exist on contract {}: check --token (the whole decimal id; a run lists them in tokens.json) and --contract",
                        self.contract.address()
                    ))
                }
                _ => ChainError::Rpc(format!(
                    "ownerOf({token_id}) failed: the token does not exist on this contract, or the RPC failed ({e})"
                )),
            }
        })?;
        let token_uri = self
            .contract
            .tokenURI(id)
            .call()
            .await
            .map_err(|e| ChainError::Rpc(format!("tokenURI({token_id}): {e}")))?;
        Ok((from_alloy(owner), token_uri))
    }

    /// The signature, its domain, the signer's role and the token's job.
    /// `edition_job`: on an edition contract, the job the edition was created for.
    async fn check_record(
        &self,
        r: &mut TokenReport,
        meta: &TokenMetadata,
        id: U256,
        edition_job: Option<B256>,
        batch_position: Option<u64>,
    ) -> Result<(), ChainError> {
        let p = &meta.provenance;
        let signer = match crate::provenance::verify(p) {
            Ok(s) => s,
            Err(e) => {
                r.check("provenance record is signed and unchanged", false, e);
                return Ok(());
            }
        };
        r.check("provenance record is signed and unchanged", true, format!("EIP-712, signed by {signer}"));
        if let Some(s) = &p.signature {
            let here = Address::from_str(&s.verifying_contract).is_ok_and(|a| a == *self.contract.address());
            let ok = here && s.chain_id == self.chain_id;
            let token_side = format!("contract {} on chain {}", from_alloy(*self.contract.address()), self.chain_id);
            let detail = if ok {
                token_side
            } else {
                format!(
                    "the record names contract {} on chain {}; the token is on {token_side}",
                    s.verifying_contract, s.chain_id
                )
            };
            r.check("signed for this contract and chain", ok, detail);
        }
        // An evolved image's record is signed by the metadata authority (METADATA_ROLE, which
        // may put any metadata behind a token); a first image's by the minter or by it (a local
        // run's one key is both; a stack signs records with a key of their own, never the
        // minting key, whose wallet holds METADATA_ROLE).
        let set = self.record_set_at(id).await?;
        let roles: &[&str] = if p.evolution.is_some() { &["METADATA_ROLE"] } else { &["MINTER_ROLE", "METADATA_ROLE"] };
        let mut verdicts = Vec::new();
        for name in roles {
            let role = match *name {
                "MINTER_ROLE" => self.contract.MINTER_ROLE().call().await,
                _ => self.contract.METADATA_ROLE().call().await,
            };
            let role = role.map_err(|e| ChainError::Rpc(format!("{name}(): {e}")))?;
            let history = self.role_history(role, signer).await?;
            verdicts.push(role_verdict(&history, set, &signer.to_string(), name));
        }
        // The first role that vouches, or else what the first one says.
        let (held, detail) = match verdicts.iter().position(|(ok, _)| *ok) {
            Some(i) => verdicts.swap_remove(i),
            None => verdicts.swap_remove(0),
        };
        r.check("the signer held the contract's role when the record was set", held, detail);
        if let Some(made_for) = edition_job {
            let this_job = JobId::from_str(&p.job_id).is_ok_and(|j| B256::from(*j.as_bytes()) == made_for);
            let detail = if this_job {
                format!("job {} (the edition was created for it)", p.job_id)
            } else {
                format!("edition {id} was created for job {made_for}, the record is of job {}", p.job_id)
            };
            r.check("the record is this token's job", this_job, detail);
            return Ok(());
        }
        // The chain's mint events name each token's job: the record must be of that job, and
        // the job must own no other token (on this contract, whichever paths minted them).
        let job = match JobId::from_str(&p.job_id) {
            Ok(j) => j,
            Err(e) => {
                r.check("the record is this token's job", false, format!("provenance.job_id `{}`: {e}", p.job_id));
                return Ok(());
            }
        };
        let ledger = self.ledger().await?;
        let token = id.to_string();
        let Some(minted) = ledger.job_of_token(&token) else {
            r.check(
                "the record is this token's job",
                false,
                format!("no mint event of this contract names token {token}"),
            );
            return Ok(());
        };
        let how = match (&minted.via, batch_position) {
            (Via::Batch { index, batch, .. }, Some(n)) if u64::from(*index) == n => {
                format!("entry {n} of batch {} (BatchMinted in {})", batch.short(), minted.tx_hash)
            }
            (Via::Alone, None) => {
                format!("its JobMinted event in {}; the token id is the metadata's digest", minted.tx_hash)
            }
            (via, _) => format!("the mint event says {via:?}, but the tokenURI says otherwise"),
        };
        let same_job = minted.job == job && !how.starts_with("the mint event says");
        if !r.check(
            "the record is this token's job",
            same_job,
            if same_job {
                format!("job {} ({how})", p.job_id)
            } else if minted.job != job {
                format!("token {token} was minted for job {}, the record is of job {}", minted.job, p.job_id)
            } else {
                how
            },
        ) {
            return Ok(());
        }
        let others: Vec<&str> = ledger
            .mints()
            .iter()
            .filter(|m| m.job == job && m.token_id != token)
            .map(|m| m.token_id.as_str())
            .collect();
        r.check(
            "the job owns no other token",
            others.is_empty(),
            if others.is_empty() {
                format!("job {} has one token on this contract", job.short())
            } else {
                format!("job {} also owns token {}", job.short(), others.join(" and "))
            },
        );
        Ok(())
    }

    /// Where the token's current record was put behind it: its latest ERC-4906
    /// `MetadataUpdate` (`setTokenURI`), else its mint.
    /// On an edition contract: its latest `URI` event (`setURI`), else its `EditionCreated`.
    async fn record_set_at(&self, id: U256) -> Result<RecordSet, ChainError> {
        if let Some(e) = &self.editions {
            let topic = B256::from(id);
            if let Some(at) = self.logs(e.URI_filter().topic1(topic)).await?.iter().map(|(_, at)| *at).max() {
                return Ok(RecordSet { at, how: SetBy::MetadataUpdate });
            }
            let created = self.logs(e.EditionCreated_filter().topic1(topic)).await?;
            let at = created.iter().map(|(_, at)| *at).min().ok_or_else(|| self.no_history(id))?;
            return Ok(RecordSet { at, how: SetBy::EditionCreated });
        }
        // `MetadataUpdate`'s token id is not indexed: every update of the contract is read,
        // once per reader.
        let updates = self
            .metadata_updates
            .get_or_try_init(|| async {
                let found = self.logs(self.contract.MetadataUpdate_filter()).await?;
                Ok::<_, ChainError>(found.into_iter().map(|(ev, at)| (ev._tokenId, at)).collect())
            })
            .await?;
        if let Some(at) = updates.iter().filter(|(token, _)| *token == id).map(|(_, at)| *at).max() {
            return Ok(RecordSet { at, how: SetBy::MetadataUpdate });
        }
        let minted_at = match self.mints.get() {
            Some(all) => all.get(&id).copied(),
            None => {
                let mints =
                    self.logs(self.contract.Transfer_filter().topic1(B256::ZERO).topic3(B256::from(id))).await?;
                mints.iter().map(|(_, at)| *at).min()
            }
        };
        let at = minted_at.ok_or_else(|| self.no_history(id))?;
        Ok(RecordSet { at, how: SetBy::Mint })
    }

    fn no_history(&self, id: U256) -> ChainError {
        ChainError::Rpc(format!(
            "the RPC has no mint event for token {id} from block {}: it does not serve this contract's log \
             history; give the block the contract was deployed at (--from-block) or an RPC that keeps logs",
            self.from_block
        ))
    }

    /// Every grant and withdrawal of `role` to `account`, in chain order (read once per reader).
    async fn role_history(&self, role: B256, account: EvmAddress) -> Result<Vec<RoleChange>, ChainError> {
        let key = (role, to_alloy(account));
        if let Some(known) = self.role_histories.lock().await.get(&key) {
            return Ok(known.clone());
        }
        let account = key.1.into_word();
        let granted = self.logs(self.contract.RoleGranted_filter().topic1(role).topic2(account)).await?;
        let revoked = self.logs(self.contract.RoleRevoked_filter().topic1(role).topic2(account)).await?;
        let mut history: Vec<RoleChange> = (granted.iter().map(|(_, at)| RoleChange { at: *at, granted: true }))
            .chain(revoked.iter().map(|(_, at)| RoleChange { at: *at, granted: false }))
            .collect();
        history.sort_by_key(|c| c.at);
        self.role_histories.lock().await.insert(key, history.clone());
        Ok(history)
    }

    /// The mined logs of one event query from `from_block` on, decoded, with their places.
    async fn logs<E: SolEvent>(&self, query: Event<&DynProvider, E>) -> Result<Vec<(E, LogAt)>, ChainError> {
        let found = query.from_block(self.from_block).query().await.map_err(|e| {
            ChainError::Rpc(format!(
                "the RPC refused the {} log query from block {} ({e}); give the block the contract was deployed \
                 at (--from-block) so that the range is smaller",
                E::SIGNATURE,
                self.from_block
            ))
        })?;
        Ok(found.into_iter().filter_map(|(ev, log)| LogAt::of(&log).map(|at| (ev, at))).collect())
    }

    /// The image behind the metadata: its CID and the record's SHA-256.
    async fn check_image(&self, r: &mut TokenReport, meta: &TokenMetadata, content: &dyn ContentSource) {
        let Some(image_cid) = meta.image_cid() else {
            r.check("image is content-addressed", false, format!("image is `{}`, not ipfs://<CID>", meta.image));
            return;
        };
        let image = match content.fetch(image_cid).await {
            Ok(b) => b,
            Err(e) => {
                r.check("image fetched", false, format!("{image_cid}: {e}"));
                return;
            }
        };
        let got = cid_of_bytes(&image);
        if !r.check("image bytes match the metadata's CID", got == image_cid, format!("{image_cid}, computed {got}")) {
            return;
        }
        let sha = hex::encode(Sha256::digest(&image));
        let want = &meta.provenance.image_sha256;
        r.check(
            "image is the one the record describes",
            &sha == want,
            format!("sha256 {sha}{}", if &sha == want { String::new() } else { format!(", record says {want}") }),
        );
        r.image = Some(image);
    }
}

/// A log's place in the chain: block, then index within the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct LogAt {
    block: u64,
    index: u64,
}

impl LogAt {
    /// None for a pending log (no block yet).
    fn of(log: &alloy::rpc::types::Log) -> Option<Self> {
        Some(Self { block: log.block_number?, index: log.log_index? })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetBy {
    Mint,
    /// An edition's `createEdition` (ERC-1155).
    EditionCreated,
    MetadataUpdate,
}

/// When and how the token's current record was put behind it.
#[derive(Debug, Clone, Copy)]
struct RecordSet {
    at: LogAt,
    how: SetBy,
}

/// One `RoleGranted` (or `RoleRevoked`) of the role to the signer.
#[derive(Debug, Clone, Copy)]
struct RoleChange {
    at: LogAt,
    granted: bool,
}

/// Whether the signer held the role when the record was set, and the evidence. The role at that
/// moment is what counts: a key retired later (rotated, or withdrawn) does not disown the
/// records it signed while the contract trusted it, but a record put behind the token after
/// its signer lost the role is not vouched for. A withdrawal since is reported either way.
fn role_verdict(history: &[RoleChange], set: RecordSet, signer: &str, role: &str) -> (bool, String) {
    let when = match set.how {
        SetBy::Mint => format!("block {}, when the token was minted", set.at.block),
        SetBy::EditionCreated => format!("block {}, when the edition was created", set.at.block),
        SetBy::MetadataUpdate => format!("block {}, when this record was put behind the token", set.at.block),
    };
    let then = history.iter().take_while(|c| c.at < set.at).last().is_some_and(|c| c.granted);
    let now = history.last().is_some_and(|c| c.granted);
    let since = match history.last() {
        Some(c) if !now && c.at > set.at => {
            format!("; withdrawn at block {} since (a retired or revoked key)", c.at.block)
        }
        _ => String::new(),
    };
    if then {
        (true, format!("{signer} held {role} at {when}{since}"))
    } else if history.iter().any(|c| c.granted) {
        (false, format!("{signer} did not hold {role} at {when}: the contract did not vouch for this record{since}"))
    } else {
        (false, format!("{signer} has never held {role} on this contract: the contract does not vouch for this record"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(block: u64, index: u64) -> LogAt {
        LogAt { block, index }
    }

    fn change(block: u64, index: u64, granted: bool) -> RoleChange {
        RoleChange { at: at(block, index), granted }
    }

    const MINT: RecordSet = RecordSet { at: LogAt { block: 10, index: 1 }, how: SetBy::Mint };

    #[test]
    fn a_key_rotated_out_after_the_mint_still_vouches_for_its_records() {
        let (ok, detail) = role_verdict(&[change(1, 0, true), change(20, 0, false)], MINT, "0xabc", "MINTER_ROLE");
        assert!(ok, "{detail}");
        assert_eq!(
            detail,
            "0xabc held MINTER_ROLE at block 10, when the token was minted; withdrawn at block 20 since (a retired or revoked key)"
        );
        let (ok, detail) = role_verdict(&[change(1, 0, true)], MINT, "0xabc", "MINTER_ROLE");
        assert!(ok && !detail.contains("withdrawn"), "{detail}");
    }

    #[test]
    fn a_record_set_after_its_signer_lost_the_role_is_not_vouched_for() {
        let set = RecordSet { at: at(30, 0), how: SetBy::MetadataUpdate };
        let (ok, detail) = role_verdict(&[change(1, 0, true), change(20, 0, false)], set, "0xabc", "MINTER_ROLE");
        assert!(!ok);
        assert!(detail.contains("did not hold MINTER_ROLE at block 30, when this record was put behind"), "{detail}");
        // Granted again before the record was set: vouched for.
        let history = [change(1, 0, true), change(20, 0, false), change(25, 3, true)];
        assert!(role_verdict(&history, set, "0xabc", "MINTER_ROLE").0);
    }

    #[test]
    fn order_within_a_block_counts_and_no_grant_is_named_as_such() {
        // Granted later in the same block than the mint: not held when it was minted.
        assert!(!role_verdict(&[change(10, 2, true)], MINT, "0xabc", "MINTER_ROLE").0);
        assert!(role_verdict(&[change(10, 0, true)], MINT, "0xabc", "MINTER_ROLE").0);
        let (ok, detail) = role_verdict(&[], MINT, "0xabc", "METADATA_ROLE");
        assert!(!ok);
        assert!(detail.contains("has never held METADATA_ROLE"), "{detail}");
    }
}
