//! Fees: EIP-1559 fees for a first send under the operator's cap, and the raise a replacement
//! needs.

use alloy::providers::Provider;
use latentmint_core::ports::{PortError, PortResult};

use super::Sender;

/// EIP-1559 fees of one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fees {
    /// `maxFeePerGas`, in wei.
    pub(crate) max_fee: u128,
    /// `maxPriorityFeePerGas`, in wei.
    pub(crate) priority: u128,
}

impl Fees {
    /// The smallest fees a node accepts as a replacement (geth and anvil ask for +10%), plus
    /// margin: +12.5%, and never below what the network asks now.
    pub(crate) fn bumped(self, now: Fees) -> Fees {
        let up = |x: u128| x + x / 8 + 1;
        let max_fee = up(self.max_fee).max(now.max_fee);
        Fees { max_fee, priority: up(self.priority).max(now.priority).min(max_fee) }
    }
}

impl Sender {
    /// The network's current EIP-1559 fees.
    pub(crate) async fn network_fees(&self) -> PortResult<Fees> {
        let f = self
            .provider
            .estimate_eip1559_fees()
            .await
            .map_err(|e| PortError::Transient(format!("estimating fees: {e}")))?;
        Ok(Fees { max_fee: f.max_fee_per_gas, priority: f.max_priority_fee_per_gas })
    }

    /// Fees for a first send, under the cap: too expensive means wait.
    pub(crate) async fn fees(&self) -> PortResult<Fees> {
        let now = self.network_fees().await?;
        match self.policy.max_fee_per_gas {
            Some(cap) if now.max_fee > cap => Err(PortError::Transient(format!(
                "network fee {:.3} gwei is above the cap of {:.3} gwei; the mint waits",
                now.max_fee as f64 / 1e9,
                cap as f64 / 1e9
            ))),
            // Room up to the cap lets a stuck mint be replaced without waiting for a new estimate.
            Some(cap) => Ok(Fees {
                max_fee: cap.min(now.max_fee.saturating_mul(2)).max(now.max_fee),
                priority: now.priority.min(cap),
            }),
            None => Ok(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumped_fees_beat_the_replacement_rule_and_the_network() {
        let f = Fees { max_fee: 1_000, priority: 100 };
        let b = f.bumped(Fees { max_fee: 10, priority: 1 });
        assert!(b.max_fee * 10 >= f.max_fee * 11 && b.priority * 10 >= f.priority * 11, "{b:?}");
        let b = f.bumped(Fees { max_fee: 5_000, priority: 300 });
        assert_eq!(b, Fees { max_fee: 5_000, priority: 300 });
        assert!(Fees { max_fee: 10, priority: 10 }.bumped(Fees { max_fee: 0, priority: 50 }).priority <= 12);
    }
}
