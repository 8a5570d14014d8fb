//! One behaviour, two blob stores: the filesystem store and S3 (moto over the wire) agree on
//! put, overwrite, get, missing keys and keys that try to escape their prefix.

use latentmint_aws::S3BlobStore;
use latentmint_core::ports::{BlobStore, PortError};
use latentmint_e2e::Moto;
use latentmint_embedded::FsBlobStore;

async fn conformance(b: &dyn BlobStore) {
    b.put("images/a.png", b"first".to_vec()).await.unwrap();
    assert_eq!(b.get("images/a.png").await.unwrap(), b"first");
    b.put("images/a.png", b"second".to_vec()).await.unwrap();
    assert_eq!(b.get("images/a.png").await.unwrap(), b"second", "a put replaces");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    b.put("images/big.bin", big.clone()).await.unwrap();
    assert_eq!(b.get("images/big.bin").await.unwrap(), big);
    assert!(matches!(b.get("images/missing.png").await, Err(PortError::NotFound(_))));
    for bad in ["", "../escape", "a/../../b", "/abs"] {
        let err = b.put(bad, vec![1]).await.unwrap_err().to_string();
        assert!(err.contains("relative path"), "{bad}: {err}");
    }
}

#[tokio::test]
async fn the_filesystem_store_behaves_as_specified() {
    let d = tempfile::tempdir().unwrap();
    conformance(&FsBlobStore::new(d.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_behaves_the_same() {
    let moto = Moto::start();
    let s3 = moto.s3();
    s3.create_bucket().bucket("latentmint-blobs").send().await.unwrap();
    conformance(&S3BlobStore::new(s3.clone(), "latentmint-blobs", "blobs/")).await;
    let err = S3BlobStore::new(s3, "no-such-bucket", "").put("k", vec![1]).await.unwrap_err().to_string();
    assert!(err.contains("no-such-bucket") && err.contains("sam deploy"), "{err}");
}
