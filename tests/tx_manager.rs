//! The transaction manager on a real anvil: a mint that stays unmined is replaced with a
//! higher fee and exactly one token comes out; a dead RPC URL is skipped for the next one;
//! on an Arbitrum chain the gas limit includes the L1 component that NodeInterface reports;
//! other sends through the wallet's connection take the nonces after the minter's own.

use std::time::Duration;

use alloy::consensus::Transaction as _;
use alloy::primitives::Address;
use alloy::providers::Provider;
use latentmint_chain::{Chain, LocalNode, SendPolicy, to_alloy};
use latentmint_core::cid::cid_of_bytes;
use latentmint_core::ledger::single_token_id;
use latentmint_core::network::L1Fees;
use latentmint_core::ports::Minter;
use latentmint_core::{EvmAddress, JobId};
use latentmint_e2e::{anvil, repo_root};

const CHAIN_ID: u64 = 412_346;

fn recipient() -> EvmAddress {
    EvmAddress::parse_checksummed("0x70997970C51812dc3A010C7d01b50e0d17dc79C8").unwrap()
}

async fn setup() -> (LocalNode, Chain, EvmAddress) {
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.expect("anvil starts");
    let chain = Chain::connect(&node.rpc_url, node.dev_key(0).unwrap(), CHAIN_ID).await.expect("connects");
    let addr = chain.deploy("Test", "TST").await.expect("deploys");
    (node, chain, addr)
}

async fn rpc(chain: &Chain, method: &'static str, params: serde_json::Value) -> serde_json::Value {
    chain.provider().raw_request(method.into(), params).await.unwrap_or_else(|e| panic!("{method}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_mint_is_replaced_with_a_higher_fee_and_mints_once() {
    let (_node, chain, addr) = setup().await;
    let sender = to_alloy(chain.sender());
    let nonce_before = chain.provider().get_transaction_count(sender).await.unwrap();
    let fee_before = chain.provider().estimate_eip1559_fees().await.unwrap().max_fee_per_gas;
    // Nothing gets mined: every send stays in the mempool, as under a fee spike.
    let _: serde_json::Value = rpc(&chain, "evm_setAutomine", serde_json::json!([false])).await;
    let minter = chain.minter(addr, SendPolicy::confirmations(1).with_stuck_after(Duration::from_millis(800), 10));
    let job = JobId::from_bytes([3; 32]);
    let task = tokio::spawn(async move { minter.mint(job, recipient(), &cid_of_bytes(b"stuck")).await });
    // Long enough for the first send and at least one replacement.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let pool = rpc(&chain, "txpool_content", serde_json::json!([])).await;
    let pending =
        pool["pending"].as_object().map(|m| m.values().map(|v| v.as_object().map_or(0, |o| o.len())).sum::<usize>());
    assert_eq!(pending, Some(1), "replacements share one nonce: one transaction in the pool, {pool}");
    let _: serde_json::Value = rpc(&chain, "evm_setAutomine", serde_json::json!([true])).await;
    let _: serde_json::Value = rpc(&chain, "evm_mine", serde_json::json!([])).await;

    let receipt = tokio::time::timeout(Duration::from_secs(30), task).await.expect("mint finishes").unwrap().unwrap();
    assert_eq!(receipt.token_id, single_token_id(&cid_of_bytes(b"stuck")).unwrap());
    let hash = match receipt.tx_hash {
        Some(h) => h.parse().unwrap(),
        // The block came as a wait timed out, and the guard read before the next replacement
        // found the token: the mined transaction is the block's only one.
        None => {
            let block = chain.provider().get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await.unwrap();
            let hashes: Vec<_> = block.expect("a mined block").transactions.hashes().collect();
            assert_eq!(hashes.len(), 1, "one transaction mined");
            hashes[0]
        }
    };
    let tx = chain.provider().get_transaction_by_hash(hash).await.unwrap().expect("mined transaction");
    assert_eq!(tx.inner.nonce(), nonce_before, "the replacement reuses the stuck nonce");
    let paid = tx.inner.max_fee_per_gas();
    assert!(paid * 8 >= fee_before * 9, "the replacement bid at least 12.5% more: {paid} vs {fee_before}");
    assert_eq!(
        chain.provider().get_transaction_count(sender).await.unwrap(),
        nonce_before + 1,
        "one transaction mined"
    );
    let minter = chain.minter(addr, SendPolicy::confirmations(1));
    assert_eq!(minter.total_supply().await.unwrap(), 1, "one token for the job");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_rpc_url_is_skipped_for_the_next() {
    let node = LocalNode::spawn(&anvil(), CHAIN_ID, None).await.expect("anvil starts");
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let key = node.dev_key(0).unwrap();
    for urls in [vec![dead.clone(), node.rpc_url.clone()], vec![node.rpc_url.clone(), dead.clone()]] {
        let chain = Chain::connect_any(&urls, key, CHAIN_ID).await.expect("connects through the live URL");
        let addr = chain.deploy("Test", "TST").await.expect("deploys");
        let minter = chain.minter(addr, SendPolicy::confirmations(1));
        for i in 0..3u8 {
            let job = JobId::from_bytes([i + 1; 32]);
            let r = minter.mint(job, recipient(), &cid_of_bytes(&[i])).await.unwrap();
            assert_eq!(r.token_id, single_token_id(&cid_of_bytes(&[i])).unwrap());
        }
    }
    // With only dead URLs the error names them.
    let err = Chain::connect_any(std::slice::from_ref(&dead), key, CHAIN_ID).await.unwrap_err().to_string();
    assert!(err.contains(&dead), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_arbitrum_the_gas_limit_includes_the_l1_component() {
    let (_node, chain, addr) = setup().await;
    // anvil has no NodeInterface; put the stand-in's code where Arbitrum answers it (0x…C8).
    let artifact: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("infra/contracts/artifacts/NodeInterfaceStub.json")).unwrap(),
    )
    .unwrap();
    let code = artifact["deployedBytecode"]["object"].as_str().unwrap();
    let node_interface = Address::with_last_byte(0xc8);
    let _: serde_json::Value = rpc(&chain, "anvil_setCode", serde_json::json!([node_interface, code])).await;

    let plain = chain
        .minter(addr, SendPolicy::confirmations(1))
        .mint(JobId::from_bytes([1; 32]), recipient(), &cid_of_bytes(b"a"))
        .await
        .unwrap();
    let arb = chain
        .minter(addr, SendPolicy::confirmations(1).with_l1_fees(L1Fees::ArbitrumNodeInterface))
        .mint(JobId::from_bytes([2; 32]), recipient(), &cid_of_bytes(b"b"))
        .await
        .unwrap();
    let gas = |h: Option<String>| {
        let chain = chain.clone();
        async move {
            let tx = chain.provider().get_transaction_by_hash(h.unwrap().parse().unwrap()).await.unwrap().unwrap();
            tx.inner.gas_limit()
        }
    };
    let (plain_gas, arb_gas) = (gas(plain.tx_hash).await, gas(arb.tx_hash).await);
    // mint(address,bytes32,bytes32) calldata is 100 bytes: the stand-in's L1 part is
    // 100 * 16 * 50 = 80,000 on top of its 250,000; the limit adds 20% headroom.
    assert_eq!(arb_gas, (250_000 + 80_000) * 6 / 5, "gas limit from NodeInterface's total");
    assert!(plain_gas < 250_000, "a chain without an L1 component uses the plain estimate ({plain_gas})");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mined_mint_waits_for_its_confirmations_and_is_not_replaced() {
    let (_node, chain, addr) = setup().await;
    let sender = to_alloy(chain.sender());
    let nonce_before = chain.provider().get_transaction_count(sender).await.unwrap();
    let minter = chain.minter(addr, SendPolicy::confirmations(3).with_stuck_after(Duration::from_millis(500), 10));
    let job = JobId::from_bytes([6; 32]);
    let task = tokio::spawn(async move { minter.mint(job, recipient(), &cid_of_bytes(b"confirm")).await });
    // Mined at once (automine), but with one confirmation of three: still waiting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!task.is_finished(), "returned before three confirmations");
    for _ in 0..2 {
        let _: serde_json::Value = rpc(&chain, "evm_mine", serde_json::json!([])).await;
    }
    let receipt = tokio::time::timeout(Duration::from_secs(30), task).await.expect("mint finishes").unwrap().unwrap();
    assert_eq!(receipt.token_id, single_token_id(&cid_of_bytes(b"confirm")).unwrap());
    assert!(receipt.sent() && receipt.tx_hash.is_some(), "the mint's own transaction, confirmed");
    assert_eq!(chain.provider().get_transaction_count(sender).await.unwrap(), nonce_before + 1, "no replacement sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn sends_through_the_wallet_connection_follow_the_minters_own_nonces() {
    // The deploy in setup took a nonce through the connection's filler; the mint sets its own
    // nonce; a deploy after it must not reuse the mint's (a cached nonce manager would).
    let (_node, chain, addr) = setup().await;
    let minter = chain.minter(addr, SendPolicy::confirmations(1));
    let job = JobId::from_bytes([5; 32]);
    minter.mint(job, recipient(), &cid_of_bytes(b"first")).await.expect("mints");
    let second = chain.deploy("Second", "TWO").await.expect("a deploy after the mint gets the next nonce");
    assert_ne!(second, addr);
    let minter = chain.minter(second, SendPolicy::confirmations(1));
    minter.mint(job, recipient(), &cid_of_bytes(b"again")).await.expect("mints on the second contract");
    assert_eq!(minter.total_supply().await.unwrap(), 1);
}
