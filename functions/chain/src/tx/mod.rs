//! One transaction, sent so that its effect lands once, file by phase:
//!
//! - [`fees`]: EIP-1559 fees under the operator's cap, and the raise a replacement needs;
//! - [`send`]: the wallet's next mined nonce, the gas limit (with Arbitrum's L1 part), the
//!   replacement of a send that stays unmined, and the read-before-write guard asked whenever
//!   the outcome is unclear;
//! - [`confirm`]: a mined transaction's receipt once it has its confirmations;
//! - [`error`]: what a contract's refusal, a node's answer or an unreachable RPC means, and
//!   what the sender does about each ([`error::Recovery`]);
//! - [`rpc`]: the client over one or several RPC URLs.
//!
//! The minters (`collection.rs` for LatentCollection, `editions.rs` for LatentEditions) build
//! the call and say how to find its effect on chain; everything about getting it mined is
//! here, in one [`Sender`] each of them holds.

pub(crate) mod confirm;
pub(crate) mod error;
pub(crate) mod fees;
pub(crate) mod rpc;
pub(crate) mod send;

use std::time::Duration;

use alloy::primitives::Address;
use alloy::providers::DynProvider;
use latentmint_core::collection::ChainSection;
use latentmint_core::network::{L1Fees, Network};

/// How a minter gets its transactions mined: confirmations, replacement of a stuck send, the
/// fee cap and the L1 fee model. Built from the collection's `[chain]` section (or the Lambda
/// functions' environment, through the same section) by [`SendPolicy::for_chain`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendPolicy {
    /// Confirmations before a transaction counts (at least 1).
    pub confirmations: u64,
    /// How long a sent transaction may stay unmined before it is replaced with higher fees.
    pub stuck_after: Duration,
    /// The most replacements of one send per delivery.
    pub max_replacements: u32,
    /// Never pay more than this per gas, in wei: above it, mints wait (the message is retried).
    pub max_fee_per_gas: Option<u128>,
    /// How the chain charges its L1 component.
    pub l1_fees: L1Fees,
}

impl SendPolicy {
    /// `confirmations`, a send replaced after 90 s unmined, at most 5 times, no fee cap, no L1
    /// component: a local or test chain.
    pub fn confirmations(confirmations: u64) -> Self {
        Self {
            confirmations,
            stuck_after: Duration::from_secs(90),
            max_replacements: 5,
            max_fee_per_gas: None,
            l1_fees: L1Fees::None,
        }
    }

    /// The policy a collection's `[chain]` section asks for: its confirmations (the network
    /// preset's when it names none), its fee cap in gwei, its stuck-after time, and the
    /// preset's L1 fee model.
    pub fn for_chain(chain: &ChainSection) -> Self {
        Self {
            confirmations: chain.confirmations(),
            stuck_after: Duration::from_secs(chain.stuck_after_secs),
            max_replacements: 5,
            max_fee_per_gas: chain.max_fee_gwei.map(gwei_to_wei),
            l1_fees: chain.preset().map_or(L1Fees::None, |p: &Network| p.l1_fees),
        }
    }

    /// Replace a send that is not mined after `after`, at most `times` times per delivery.
    pub fn with_stuck_after(mut self, after: Duration, times: u32) -> Self {
        self.stuck_after = after;
        self.max_replacements = times;
        self
    }

    /// Never pay more than `wei` per gas.
    pub fn with_max_fee_per_gas(mut self, wei: Option<u128>) -> Self {
        self.max_fee_per_gas = wei;
        self
    }

    /// The chain's L1 fee model.
    pub fn with_l1_fees(mut self, l1_fees: L1Fees) -> Self {
        self.l1_fees = l1_fees;
        self
    }
}

/// A fee in gwei as wei (a negative or NaN cap is no fee at all: the section's check refuses
/// those before a policy is made).
fn gwei_to_wei(gwei: f64) -> u128 {
    (gwei * 1e9) as u128
}

/// The transaction manager of one wallet: sends a minter's calls under its [`SendPolicy`].
///
/// One sender at a time per wallet (the caller holds the wallet's [`crate::WalletLease`]; in
/// AWS the mint queue's FIFO group): the nonce is the account's next mined nonce, so a
/// transaction an earlier attempt left in the mempool is replaced, not queued behind.
#[derive(Clone)]
pub(crate) struct Sender {
    pub(crate) provider: DynProvider,
    pub(crate) from: Address,
    pub(crate) policy: SendPolicy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_section_sets_every_part_of_the_policy() {
        let mut chain = ChainSection { chain_id: Some(42_161), max_fee_gwei: Some(0.5), ..ChainSection::default() };
        chain.stuck_after_secs = 30;
        let p = SendPolicy::for_chain(&chain);
        assert_eq!(p.max_fee_per_gas, Some(500_000_000));
        assert_eq!(p.stuck_after, Duration::from_secs(30));
        assert_eq!(p.l1_fees, L1Fees::ArbitrumNodeInterface);
        assert_eq!(p.confirmations, chain.confirmations());
        let local = SendPolicy::for_chain(&ChainSection::default());
        assert_eq!((local.l1_fees, local.max_fee_per_gas, local.confirmations), (L1Fees::None, None, 1));
    }
}
