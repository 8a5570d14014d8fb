//! `events/`: a sample event for every way template.yaml invokes a function, for
//! `sam local invoke <Function> -e events/<file>.json`. Each must be what that source sends and
//! what the function reads: the SQS ones a batch of one stage message for the queue the
//! template wires, the HTTP one a request on one of the intake API's routes carrying a
//! collection file that is valid, the EventBridge one matching the rule's pattern, the
//! schedules' their rules' input.

use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::event::sqs::SqsEvent;
use latentmint_core::collection::Collection;
use latentmint_core::{Stage, StageMessage};
use latentmint_e2e::repo_root;

fn event(name: &str) -> serde_json::Value {
    let path = repo_root().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// template.yaml as SAM reads it (its YAML with CloudFormation's tags), as JSON.
fn template() -> serde_json::Value {
    let out = std::process::Command::new(latentmint_e2e::tools_python())
        .args([
            "-c",
            "import json, sys; from samtranslator.yaml_helper import yaml_parse; print(json.dumps(yaml_parse(open(sys.argv[1]).read())))",
        ])
        .arg(repo_root().join("template.yaml"))
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn each_function_event_source_has_a_sample_it_accepts() {
    let t = template();
    let resources = t["Resources"].as_object().unwrap();
    let mut covered = 0;
    for (name, r) in resources {
        let name = name.as_str();
        if r["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let stage = r["Properties"]["Environment"]["Variables"]["LATENTMINT_STAGE"].as_str().unwrap().to_string();
        for (source, e) in r["Properties"]["Events"].as_object().unwrap() {
            let source = source.as_str();
            match e["Type"].as_str().unwrap() {
                "SQS" => {
                    let stage_: Stage = stage.parse().unwrap();
                    let sample: SqsEvent = serde_json::from_value(event(&format!("{stage}.json"))).unwrap();
                    assert_eq!(sample.records.len(), 1, "{name}");
                    let record = &sample.records[0];
                    let body = record.body.as_deref().unwrap();
                    StageMessage::parse(body, stage_).unwrap_or_else(|e| panic!("{name}: {e}"));
                    let queue = record.event_source_arn.as_deref().unwrap().rsplit(':').next().unwrap().to_string();
                    assert!(queue.starts_with("latentmint-") && queue.contains(stage_.queue()), "{name}: {queue}");
                    assert_eq!(queue.ends_with(".fifo"), stage_ == Stage::Mint, "{name}: the mint queue alone is FIFO");
                }
                "HttpApi" => {
                    let sample: ApiGatewayV2httpRequest = serde_json::from_value(event("intake-http.json")).unwrap();
                    let route = format!(
                        "{} {}",
                        e["Properties"]["Method"].as_str().unwrap(),
                        e["Properties"]["Path"].as_str().unwrap()
                    );
                    if route != sample.route_key.clone().unwrap_or_default() {
                        continue; // the webhook route's sample needs a shop's signature: docs/webhooks.md
                    }
                    Collection::from_toml("body", sample.body.as_deref().unwrap()).unwrap_or_else(|e| panic!("{e}"));
                }
                "EventBridgeRule" => {
                    let sample = event("intake-s3-object-created.json");
                    let pattern = &e["Properties"]["Pattern"];
                    assert_eq!(sample["source"], pattern["source"][0].as_str().unwrap());
                    assert_eq!(sample["detail-type"], pattern["detail-type"][0].as_str().unwrap());
                    let prefix = pattern["detail"]["object"]["key"][0]["prefix"].as_str().unwrap();
                    assert!(sample["detail"]["object"]["key"].as_str().unwrap().starts_with(prefix), "{name}.{source}");
                }
                "Schedule" if stage == "intake" => {
                    // The rule's input, `{"collection": "<key>"}`, names a file under collections/.
                    let sample = event("intake-schedule.json");
                    let input = &e["Properties"]["Input"];
                    let input = input.get("Fn::Sub").unwrap_or(input).as_str().unwrap();
                    assert!(input.contains("\"collection\""), "{input}");
                    assert!(sample["collection"].as_str().unwrap().starts_with("collections/"), "{sample}");
                }
                "Schedule" => {
                    let sample = event(&format!("{stage}.json"));
                    assert_eq!(sample["detail-type"], "Scheduled Event", "{name}.{source}");
                }
                other => panic!("{name}.{source}: a {other} event source has no sample in events/: add one"),
            }
            covered += 1;
        }
    }
    // Nine sources; the webhook route alone has no sample (it needs a shop's signature).
    assert_eq!(covered, 8, "every function's event sources but the webhook route");
}
