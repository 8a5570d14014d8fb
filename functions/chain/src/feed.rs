//! A Chainlink-style price feed (AggregatorV3) read for living NFTs that evolve with the world
//! (`[living.oracle]`): its `AnswerUpdated` events and its decimals.

use alloy::providers::DynProvider;
use async_trait::async_trait;
use latentmint_core::EvmAddress;
use latentmint_core::living::Answer;
use latentmint_core::ports::{OracleSource, PortError, PortResult};

use crate::{from_alloy, to_alloy};

alloy::sol! {
    /// What latentmint reads of a Chainlink aggregator.
    #[sol(rpc)]
    interface AggregatorV3 {
        event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
        function decimals() external view returns (uint8);
    }
}

/// A price feed on the chain a collection lives on.
pub struct FeedReader {
    feed: AggregatorV3::AggregatorV3Instance<DynProvider>,
}

impl FeedReader {
    /// The feed at `address`, read through `provider`.
    pub fn new(provider: DynProvider, address: EvmAddress) -> Self {
        Self { feed: AggregatorV3::new(to_alloy(address), provider) }
    }
}

#[async_trait]
impl OracleSource for FeedReader {
    fn address(&self) -> String {
        from_alloy(*self.feed.address()).to_string()
    }

    async fn decimals(&self) -> PortResult<u8> {
        self.feed.decimals().call().await.map_err(|e| {
            PortError::Transient(format!("decimals() of the price feed {}: {e} (is it an aggregator?)", self.address()))
        })
    }

    async fn answers(&self, from: u64, to: u64) -> PortResult<Vec<Answer>> {
        let logs = self.feed.AnswerUpdated_filter().from_block(from).to_block(to).query().await.map_err(|e| {
            PortError::Transient(format!("eth_getLogs AnswerUpdated {from}..={to} of {}: {e}", self.address()))
        })?;
        let mut out: Vec<Answer> = logs
            .into_iter()
            .filter_map(|(a, log)| {
                Some(Answer {
                    answer: a.current.to_string(),
                    round: a.roundId.to_string(),
                    block: log.block_number?,
                    tx_hash: format!("{:#x}", log.transaction_hash?),
                    log_index: log.log_index?,
                })
            })
            .collect();
        out.sort_by_key(|a| (a.block, a.log_index));
        Ok(out)
    }
}
