//! Sending: one transaction of the wallet at its next mined nonce, with a gas limit that
//! includes the L1 part on Arbitrum, replaced with higher fees while it stays unmined, and the
//! read-before-write guard asked whenever the outcome is unclear, so its effect lands once.

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, TxKind};
use alloy::providers::{DynProvider, PendingTransactionError, Provider, WatchTxError};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use latentmint_core::network::L1Fees;
use latentmint_core::ports::{PortError, PortResult};
use tracing::{info, warn};

use super::Sender;
use super::error::{NodeAnswer, Recovery};

/// How a guarded send ended.
pub(crate) enum Landed {
    /// The effect is on chain already (an earlier attempt, another worker): what the guard read.
    Found(String),
    /// This send's transaction, mined and confirmed, with its hash.
    Mined(Box<TransactionReceipt>, String),
}

impl Sender {
    /// Sends `call` (already estimated at `l2_gas`) as this wallet's next transaction: explicit
    /// nonce, fees under the cap, replaced with +12.5% fees while it stays unmined, and
    /// `done` (the read-before-write guard) asked again whenever the outcome is unclear, so the
    /// effect lands once.
    pub(crate) async fn send_guarded<C, D, F>(
        &self,
        what: &'static str,
        call: alloy::contract::CallBuilder<&DynProvider, C>,
        l2_gas: u64,
        done: D,
    ) -> PortResult<Landed>
    where
        C: alloy::contract::CallDecoder,
        D: Fn() -> F,
        F: std::future::Future<Output = PortResult<Option<String>>>,
    {
        let base = call.into_transaction_request();
        let gas = self.gas_limit(&base, l2_gas).await?;
        let mut fees = self.fees().await?;
        let provider = &self.provider;
        // The next mined nonce, not the pending one. One sender per wallet means a transaction
        // of this wallet still in the mempool was sent by an earlier attempt whose message
        // came back (a Lambda timed out, an instance was lost) and whose effect `done` has just
        // not found on chain. Queued behind it, this send would be mined after it and revert
        // (one token, a second transaction paid for); at the same nonce it replaces it, so
        // exactly one of the two is mined.
        let nonce = provider
            .get_transaction_count(self.from)
            .latest()
            .await
            .map_err(|e| PortError::Transient(format!("reading the nonce: {e}")))?;
        let base = base.with_nonce(nonce).with_gas_limit(gas);
        for attempt in 0..=self.policy.max_replacements {
            let tx = base.clone().with_max_fee_per_gas(fees.max_fee).with_max_priority_fee_per_gas(fees.priority);
            match provider.send_transaction(tx).await {
                Ok(pending) => {
                    let tx_hash = format!("{:#x}", pending.tx_hash());
                    info!(tx = %tx_hash, nonce, attempt, max_fee_gwei = fees.max_fee as f64 / 1e9, "{what} sent");
                    let hash = *pending.tx_hash();
                    match pending
                        .with_required_confirmations(self.policy.confirmations.max(1))
                        .with_timeout(Some(self.policy.stuck_after))
                        .get_receipt()
                        .await
                    {
                        Ok(receipt) => return Ok(Landed::Mined(Box::new(receipt), tx_hash)),
                        Err(PendingTransactionError::TxWatcher(WatchTxError::Timeout)) => {
                            // Mined but short of its confirmations is not stuck: keep waiting,
                            // never replace it.
                            if let Some(receipt) = self.confirmed(hash).await? {
                                return Ok(Landed::Mined(Box::new(receipt), tx_hash));
                            }
                            warn!(tx = %tx_hash, "{what} not mined after {:?}", self.policy.stuck_after);
                        }
                        // Unclear outcome: the message is retried, and the retry reads the chain first.
                        Err(e) => return Err(PortError::Transient(format!("{what} {tx_hash} not confirmed: {e}"))),
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    match NodeAnswer::of(&msg).when_sending() {
                        Recovery::ReadTheChain => {
                            // The nonce is used: by an earlier attempt that got mined, or by
                            // another sender on this wallet. The chain says which.
                            if let Some(found) = done().await? {
                                return Ok(Landed::Found(found));
                            }
                            return Err(PortError::Transient(format!(
                                "nonce {nonce} was used by another transaction of this wallet; retrying with a fresh nonce"
                            )));
                        }
                        // An earlier attempt holds the nonce in the mempool: raise the fee again.
                        Recovery::Replace => warn!(nonce, "replacement refused ({msg}); raising the fee"),
                        Recovery::RetryLater | Recovery::Fail => {
                            return Err(PortError::Transient(format!("RPC: {msg}")));
                        }
                    }
                }
            }
            // Stuck. An earlier attempt may have been mined meanwhile.
            if let Some(found) = done().await? {
                return Ok(Landed::Found(found));
            }
            let next = fees.bumped(self.network_fees().await?);
            if let Some(cap) = self.policy.max_fee_per_gas
                && next.max_fee > cap
            {
                return Err(PortError::Transient(format!(
                    "the {what} with nonce {nonce} is stuck and a replacement would pay {:.3} gwei, above the cap of {:.3} gwei; it waits",
                    next.max_fee as f64 / 1e9,
                    cap as f64 / 1e9
                )));
            }
            fees = next;
        }
        Err(PortError::Transient(format!(
            "the {what} with nonce {nonce} was not mined after {} replacements; the message is retried and reads the chain first",
            self.policy.max_replacements
        )))
    }

    /// The gas limit: the estimate with 20% headroom; on Arbitrum the estimate comes from
    /// NodeInterface, which includes the L1 component (paid as L2 gas there).
    async fn gas_limit(&self, tx: &TransactionRequest, l2_gas: u64) -> PortResult<u64> {
        let total = match self.policy.l1_fees {
            L1Fees::ArbitrumNodeInterface => {
                let Some(TxKind::Call(to)) = tx.to else {
                    return Err(PortError::Permanent("a contract call without a contract address".into()));
                };
                let data = tx.input.input().cloned().unwrap_or_default();
                let node = NodeInterface::new(NODE_INTERFACE, self.provider.clone());
                let c = node
                    .gasEstimateComponents(to, false, data)
                    .from(self.from)
                    .call()
                    .await
                    .map_err(|e| PortError::Transient(format!("NodeInterface.gasEstimateComponents: {e}")))?;
                info!(
                    l2_gas = c.gasEstimate - c.gasEstimateForL1,
                    l1_gas = c.gasEstimateForL1,
                    "mint gas estimate (Arbitrum)"
                );
                c.gasEstimate.max(l2_gas)
            }
            // OP Stack charges its L1 data fee outside the gas limit; an L1 has none.
            L1Fees::OpStack | L1Fees::None => l2_gas,
        };
        Ok(total + total / 5)
    }
}

/// Arbitrum's NodeInterface, a virtual contract answering `eth_call` at 0x…C8.
const NODE_INTERFACE: Address = Address::new([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc8]);

alloy::sol! {
    #[sol(rpc)]
    interface NodeInterface {
        function gasEstimateComponents(address to, bool contractCreation, bytes calldata data)
            external
            payable
            returns (uint64 gasEstimate, uint64 gasEstimateForL1, uint256 baseFee, uint256 l1BaseFeeEstimate);
    }
}
