//! Confirmation: a mined transaction's receipt once it has the confirmations asked for.

use std::time::Duration;

use alloy::primitives::B256;
use alloy::providers::Provider;
use alloy::rpc::types::TransactionReceipt;
use latentmint_core::ports::{PortError, PortResult};

use super::Sender;

impl Sender {
    /// For a mined transaction, its receipt once it has its confirmations (waiting up to ten
    /// times `stuck_after` for them); `None` when it is not mined at all.
    pub(crate) async fn confirmed(&self, hash: B256) -> PortResult<Option<TransactionReceipt>> {
        let provider = &self.provider;
        let rpc = |e: alloy::transports::TransportError| PortError::Transient(format!("RPC: {e}"));
        let deadline = std::time::Instant::now() + self.policy.stuck_after * 10;
        loop {
            let Some(receipt) = provider.get_transaction_receipt(hash).await.map_err(rpc)? else {
                return Ok(None);
            };
            let mined = receipt.block_number.unwrap_or(u64::MAX);
            let head = provider.get_block_number().await.map_err(rpc)?;
            if head.saturating_sub(mined) + 1 >= self.policy.confirmations.max(1) {
                return Ok(Some(receipt));
            }
            if std::time::Instant::now() >= deadline {
                return Err(PortError::Transient(format!(
                    "mint {hash:#x} is mined in block {mined} but has {} of {} confirmations; the retry reads the chain first",
                    head.saturating_sub(mined) + 1,
                    self.policy.confirmations
                )));
            }
            tokio::time::sleep(Duration::from_millis(250).min(self.policy.stuck_after)).await;
        }
    }
}
