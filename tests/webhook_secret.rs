//! The shops' webhook secret read from Secrets Manager (moto over the wire): the current and
//! previous versions, the cache, the refresh after a rotation and its rate floor, and the error
//! that names the stack parameter when the secret is missing.

use std::time::Duration;

use latentmint_aws::SharedSecret;
use latentmint_e2e::Moto;

const HOUR: Duration = Duration::from_secs(3600);

async fn rotate(sm: &aws_sdk_secretsmanager::Client, arn: &str, value: &str) {
    sm.put_secret_value().secret_id(arn).secret_string(value).send().await.expect("put_secret_value");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secret_is_cached_and_a_rotation_is_read_with_its_previous_version() {
    let moto = Moto::start();
    let sm = moto.secretsmanager();
    let created = sm.create_secret().name("latentmint/webhook").secret_string("first").send().await.unwrap();
    let arn = created.arn().expect("an ARN").to_string();

    let secret = SharedSecret::new(sm.clone(), &arn, HOUR, Duration::ZERO);
    let v = secret.versions().await.unwrap();
    assert_eq!((v.current.as_slice(), v.previous.as_deref()), (b"first".as_slice(), None));

    rotate(&sm, &arn, "second").await;
    let cached = secret.versions().await.unwrap();
    assert_eq!(cached.current, b"first", "kept for the ttl");
    let fresh = secret.refresh().await.unwrap().expect("the rotation is read");
    assert_eq!(
        (fresh.current.as_slice(), fresh.previous.as_deref()),
        (b"second".as_slice(), Some(b"first".as_slice()))
    );
    assert_eq!(secret.versions().await.unwrap().current, b"second", "the refresh replaced the cache");
    assert!(secret.refresh().await.unwrap().is_none(), "nothing changed since");

    // Read by name as well as by ARN; a short ttl reads again by itself.
    let by_name = SharedSecret::new(sm.clone(), "latentmint/webhook", Duration::ZERO, HOUR);
    assert_eq!(by_name.versions().await.unwrap().current, b"second");
    rotate(&sm, &arn, "third").await;
    assert_eq!(by_name.versions().await.unwrap().current, b"third", "past its ttl");
}

#[tokio::test(flavor = "multi_thread")]
async fn refreshes_are_rate_limited_and_a_missing_secret_names_the_parameter() {
    let moto = Moto::start();
    let sm = moto.secretsmanager();
    let arn =
        sm.create_secret().name("webhook").secret_string("first").send().await.unwrap().arn().unwrap().to_string();

    // Forged signatures each ask for a refresh; within the floor none reaches Secrets Manager.
    let secret = SharedSecret::new(sm.clone(), &arn, HOUR, HOUR);
    assert_eq!(secret.versions().await.unwrap().current, b"first");
    rotate(&sm, &arn, "second").await;
    assert!(secret.refresh().await.unwrap().is_none(), "too soon after the last read");
    assert_eq!(secret.versions().await.unwrap().current, b"first");

    let missing = SharedSecret::new(sm.clone(), "no/such/secret", HOUR, Duration::ZERO);
    let e = missing.versions().await.unwrap_err().to_string();
    assert!(e.contains("no/such/secret") && e.contains("WebhookSecretArn"), "{e}");
}

/// The signing snippet of docs/webhooks.md, run by Python, signs what the stack checks: the
/// documented protocol and the code agree.
#[test]
fn the_documented_python_signature_is_the_one_the_stack_checks() {
    let doc = std::fs::read_to_string(latentmint_e2e::repo_root().join("docs/webhooks.md")).unwrap();
    let snippet = doc.split("```python\n").nth(1).and_then(|s| s.split("```").next()).expect("a python snippet");
    let key = latentmint_core::webhook::collection_key(b"stack secret", "neon-shapes");
    let body = r#"{"order_id": "A-1", "prompt": "赤い円"}"#;
    let script = format!(
        "{snippet}\nimport sys\nsys.stdout.write(sign({key:?}, 'neon-shapes', {body:?}.encode()))\n",
        body = body
    );
    let out = std::process::Command::new(latentmint_e2e::tools_python()).args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let header = String::from_utf8(out.stdout).unwrap();
    let signature = latentmint_core::webhook::Signature::parse(Some(&header)).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(
        signature.check(
            now,
            [b"stack secret".as_slice()],
            "neon-shapes",
            "POST",
            "/webhooks/neon-shapes",
            body.as_bytes()
        ),
        Ok(()),
        "{header}"
    );
}
