//! Chain presets: the EVM networks latentmint mints on by name, with what differs between them.

/// How a network charges for posting a transaction's data to its parent chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L1Fees {
    /// No separate component (an L1, or a local node).
    None,
    /// Arbitrum: the L1 component is charged as extra L2 gas, so the gas limit must include it;
    /// `NodeInterface.gasEstimateComponents` (at 0x…C8) splits an estimate into both parts.
    ArbitrumNodeInterface,
    /// OP Stack (Base): the L1 data fee is charged on top of gas, outside the gas limit.
    OpStack,
}

/// A named network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// Name used in `chain.network`.
    pub name: &'static str,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// How its L1 data fee is charged.
    pub l1_fees: L1Fees,
    /// Confirmations to wait for before a mint counts as done.
    pub confirmations: u64,
}

/// Arbitrum's local dev node chain id (nitro-testnode), used for local runs on anvil.
pub const LOCAL_CHAIN_ID: u64 = 412_346;

/// The presets. Arbitrum One is the production default of the project; the others by config.
pub const NETWORKS: &[Network] = &[
    Network { name: "arbitrum-one", chain_id: 42_161, l1_fees: L1Fees::ArbitrumNodeInterface, confirmations: 1 },
    Network { name: "arbitrum-sepolia", chain_id: 421_614, l1_fees: L1Fees::ArbitrumNodeInterface, confirmations: 1 },
    Network { name: "base", chain_id: 8_453, l1_fees: L1Fees::OpStack, confirmations: 1 },
    Network { name: "base-sepolia", chain_id: 84_532, l1_fees: L1Fees::OpStack, confirmations: 1 },
    // Polygon PoS blocks can still be reorganised for a few blocks before checkpointing.
    Network { name: "polygon", chain_id: 137, l1_fees: L1Fees::None, confirmations: 5 },
    Network { name: "polygon-amoy", chain_id: 80_002, l1_fees: L1Fees::None, confirmations: 5 },
    Network { name: "local", chain_id: LOCAL_CHAIN_ID, l1_fees: L1Fees::None, confirmations: 1 },
];

/// The preset called `name`.
pub fn by_name(name: &str) -> Option<&'static Network> {
    NETWORKS.iter().find(|n| n.name == name)
}

/// The preset with `chain_id`.
pub fn by_chain_id(chain_id: u64) -> Option<&'static Network> {
    NETWORKS.iter().find(|n| n.chain_id == chain_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_unique_and_findable() {
        for n in NETWORKS {
            assert_eq!(by_name(n.name), Some(n));
            assert_eq!(by_chain_id(n.chain_id), Some(n));
        }
        assert_eq!(by_name("arbitrum-one").map(|n| n.chain_id), Some(42_161));
        assert_eq!(by_chain_id(421_614).map(|n| n.l1_fees), Some(L1Fees::ArbitrumNodeInterface));
        assert!(by_name("mainnet").is_none());
    }
}
