//! A collector's check of one token, from the chain inwards. Nothing is taken on trust from
//! where the content is fetched: every byte is checked against the CID that points at it. The
//! provenance record must be signed for this very contract and chain, by a wallet the contract
//! gives the role (the minter, or the metadata updater for an evolved image), and must be the
//! record of the job this token was minted for.

use std::str::FromStr;

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use latentmint_core::cid::cid_of_bytes;
use latentmint_core::metadata::TokenMetadata;
use latentmint_core::ports::Pinner;
use latentmint_core::{EvmAddress, JobId};
use sha2::{Digest, Sha256};

use crate::contract::LatentCollection;
use crate::{ChainError, from_alloy, single_token_id, to_alloy};

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked, in a few words.
    pub what: &'static str,
    /// Whether it holds.
    pub ok: bool,
    /// The evidence, or why not.
    pub detail: String,
}

/// What [`TokenReader::verify`] found for one token.
#[derive(Debug, Clone)]
pub struct TokenReport {
    /// The token.
    pub token_id: String,
    /// Its owner now.
    pub owner: EvmAddress,
    /// `tokenURI(token)`.
    pub token_uri: String,
    /// The checks, in the order they were made; the first failure ends the list when later
    /// checks depend on it.
    pub checks: Vec<Check>,
    /// The metadata, when it could be fetched and read.
    pub metadata: Option<TokenMetadata>,
}

impl TokenReport {
    /// True when every check holds.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    fn check(&mut self, what: &'static str, ok: bool, detail: impl Into<String>) -> bool {
        self.checks.push(Check { what, ok, detail: detail.into() });
        ok
    }
}

/// Read-only access to a LatentCollection contract: no wallet, no key.
pub struct TokenReader {
    contract: LatentCollection::LatentCollectionInstance<DynProvider>,
    chain_id: u64,
}

impl TokenReader {
    /// Connects to the chain behind `rpc_urls` (in order of preference) and reads its chain id.
    pub async fn connect(rpc_urls: &[String], contract: EvmAddress) -> Result<Self, ChainError> {
        let provider = ProviderBuilder::new().connect_client(crate::minter::rpc_client(rpc_urls)?).erased();
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
        Ok(Self { contract: LatentCollection::new(to_alloy(contract), provider), chain_id })
    }

    /// The chain id the RPC reported.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// Checks `token_id`: tokenURI → metadata bytes (CID) → signed provenance (signer, domain,
    /// role on chain, the token's job) → image bytes (CID and the record's SHA-256). An error
    /// only when the chain cannot be read or the token does not exist; everything else is a
    /// check in the report.
    pub async fn verify(&self, token_id: &str, content: &dyn Pinner) -> Result<TokenReport, ChainError> {
        let id = U256::from_str(token_id).map_err(|e| ChainError::Config(format!("token id `{token_id}`: {e}")))?;
        let owner = self.contract.ownerOf(id).call().await.map_err(|e| {
            ChainError::Rpc(format!(
                "ownerOf({token_id}) failed: the token does not exist on this contract, or the RPC failed ({e})"
            ))
        })?;
        let token_uri = self
            .contract
            .tokenURI(id)
            .call()
            .await
            .map_err(|e| ChainError::Rpc(format!("tokenURI({token_id}): {e}")))?;
        let mut r = TokenReport {
            token_id: token_id.to_string(),
            owner: from_alloy(owner),
            token_uri: token_uri.clone(),
            checks: Vec::new(),
            metadata: None,
        };

        let Some(meta_cid) = token_uri.strip_prefix("ipfs://").filter(|c| !c.contains('/')) else {
            r.check(
                "metadata is content-addressed",
                false,
                format!("tokenURI is `{token_uri}`, not ipfs://<CID> (batch tokens, ipfs://<directory>/<n>, are not checked here)"),
            );
            return Ok(r);
        };
        let bytes = match content.fetch(meta_cid).await {
            Ok(b) => b,
            Err(e) => {
                r.check("metadata fetched", false, format!("{meta_cid}: {e}"));
                return Ok(r);
            }
        };
        let got = cid_of_bytes(&bytes);
        if !r.check("metadata bytes match the tokenURI's CID", got == meta_cid, format!("{meta_cid}, computed {got}")) {
            return Ok(r);
        }
        let meta: TokenMetadata = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => {
                r.check("metadata is latentmint token metadata", false, e.to_string());
                return Ok(r);
            }
        };

        self.check_record(&mut r, &meta, id).await?;
        self.check_image(&mut r, &meta, content).await;
        r.metadata = Some(meta);
        Ok(r)
    }

    /// The signature, its domain, the signer's role and the token's job.
    async fn check_record(&self, r: &mut TokenReport, meta: &TokenMetadata, id: U256) -> Result<(), ChainError> {
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
        // An evolved image is published by the metadata updater; a first image by the minter.
        let (role_name, role) = if p.evolution.is_some() {
            ("METADATA_ROLE", self.contract.METADATA_ROLE().call().await)
        } else {
            ("MINTER_ROLE", self.contract.MINTER_ROLE().call().await)
        };
        let role = role.map_err(|e| ChainError::Rpc(format!("{role_name}(): {e}")))?;
        let holds = self
            .contract
            .hasRole(role, to_alloy(signer))
            .call()
            .await
            .map_err(|e| ChainError::Rpc(format!("hasRole({role_name}, {signer}): {e}")))?;
        let detail = if holds {
            format!("{signer} holds {role_name}")
        } else {
            format!("{signer} does not hold {role_name} on this contract: the contract does not vouch for this record")
        };
        r.check("the signer holds the contract's role", holds, detail);

        let job_token = JobId::from_str(&p.job_id).map(single_token_id);
        let this_job = job_token.as_deref().is_ok_and(|t| U256::from_str(t).is_ok_and(|t| t == id));
        r.check(
            "the record is this token's job",
            this_job,
            match &job_token {
                Ok(_) if this_job => format!("job {} (token id = singleTokenId(job))", p.job_id),
                Ok(t) => format!("job {} mints token {t}, not {}", p.job_id, r.token_id),
                Err(e) => format!("provenance.job_id `{}`: {e}", p.job_id),
            },
        );
        Ok(())
    }

    /// The image behind the metadata: its CID and the record's SHA-256.
    async fn check_image(&self, r: &mut TokenReport, meta: &TokenMetadata, content: &dyn Pinner) {
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
    }
}
