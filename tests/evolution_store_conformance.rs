//! One behaviour, two evolution stores: SQLite (a local `latentmint live`) and DynamoDB (the
//! stack's living function; moto over the wire, the table as template.yaml declares it).

use latentmint_aws::DynamoEvolutionStore;
use latentmint_core::living::EvolutionState;
use latentmint_core::ports::EvolutionStore;
use latentmint_e2e::Moto;
use latentmint_embedded::SqliteEvolutionStore;

async fn conformance(s: &dyn EvolutionStore) {
    let key = "31337:0xabc:0";
    assert_eq!(s.get(key).await.unwrap(), None);
    let published = EvolutionState::Published { token_id: "7".into(), metadata_cid: "bafkreia".into() };
    s.put(key, &published).await.unwrap();
    assert_eq!(s.get(key).await.unwrap(), Some(published));
    let updated =
        EvolutionState::Updated { token_id: "7".into(), metadata_cid: "bafkreia".into(), tx_hash: Some("0x1".into()) };
    s.put(key, &updated).await.unwrap();
    assert_eq!(s.get(key).await.unwrap(), Some(updated), "a later state replaces the earlier");
    assert_eq!(s.get("31337:0xabc:1").await.unwrap(), None, "keys are exact");

    assert_eq!(s.cursor("31337:0xC0ffee").await.unwrap(), None);
    s.set_cursor("31337:0xC0ffee", 10).await.unwrap();
    s.set_cursor("31337:0xC0ffee", 12).await.unwrap();
    assert_eq!(s.cursor("31337:0xC0ffee").await.unwrap(), Some(12));
    assert_eq!(s.cursor("1:0xC0ffee").await.unwrap(), None, "one cursor per watch");
}

#[tokio::test]
async fn the_sqlite_store_behaves_as_specified() {
    let d = tempfile::tempdir().unwrap();
    conformance(&SqliteEvolutionStore::open(&d.path().join("living.db")).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_behaves_the_same() {
    let moto = Moto::start();
    moto.evolutions_table("latentmint-test-evolutions").await;
    conformance(&DynamoEvolutionStore::new(moto.dynamodb(), "latentmint-test-evolutions")).await;
    let err = DynamoEvolutionStore::new(moto.dynamodb(), "nope").get("k").await.unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains("sam deploy"), "{err}");
}
