//! The RPC client: one URL, or several with fallback, rate limits retried with backoff.

use crate::ChainError;

/// A client over one URL, or over several with fallback; either way rate-limit answers (HTTP
/// 429, provider "rate limit" errors) are retried with backoff before anything else sees them.
pub(crate) fn rpc_client(urls: &[String]) -> Result<alloy::rpc::client::RpcClient, ChainError> {
    use alloy::rpc::client::ClientBuilder;
    use alloy::transports::http::Http;
    use alloy::transports::layers::{FallbackLayer, RetryBackoffLayer};
    use tower::Layer;
    let parsed = urls
        .iter()
        .map(|u| u.parse().map_err(|e| ChainError::Config(format!("chain.rpc_url `{u}`: {e}"))))
        .collect::<Result<Vec<alloy::transports::http::reqwest::Url>, _>>()?;
    let local = parsed.iter().all(|u| matches!(u.host_str(), Some("127.0.0.1" | "localhost")));
    // 8 retries from 250 ms, budgeted for a 330 compute-units/s plan (a common paid tier).
    let retry = RetryBackoffLayer::new(8, 250, 330);
    match parsed.as_slice() {
        [] => Err(ChainError::Config("chain.rpc_url: no RPC URL given".into())),
        [one] => Ok(ClientBuilder::default().layer(retry).http(one.clone())),
        many => {
            let count =
                std::num::NonZeroUsize::new(many.len()).ok_or_else(|| ChainError::Config("no RPC URL".into()))?;
            // Every method in order, one URL at a time: reads never fan out to every provider
            // (cost), and a transaction is never submitted to two at once.
            let methods = SEQUENTIAL_METHODS.iter().map(|m| m.to_string()).collect();
            let layer = FallbackLayer::default().with_active_transport_count(count).with_sequential_methods(methods);
            let transports: Vec<Http<_>> = many.iter().map(|u| Http::new(u.clone())).collect();
            Ok(ClientBuilder::default().layer(retry).transport(layer.layer(transports), local))
        }
    }
}

/// The JSON-RPC methods the minter uses.
const SEQUENTIAL_METHODS: &[&str] = &[
    "eth_chainId",
    "eth_call",
    "eth_getCode",
    "eth_estimateGas",
    "eth_feeHistory",
    "eth_gasPrice",
    "eth_maxPriorityFeePerGas",
    "eth_getTransactionCount",
    "eth_sendRawTransaction",
    "eth_sendRawTransactionSync",
    "eth_getTransactionReceipt",
    "eth_getTransactionByHash",
    "eth_blockNumber",
    "eth_getBlockByNumber",
    "eth_getLogs",
];
