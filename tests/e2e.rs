//! Every end-to-end suite, one module per file, linked into one test binary (see Cargo.toml).
//! Run one suite with `cargo test -p latentmint-e2e --test e2e <suite>::`.

mod bad_input;
mod blob_conformance;
mod chain_guard;
mod cid_vectors;
mod clip_parity;
mod editions;
mod eip712_reference;
mod engine_parity;
mod evolution_store_conformance;
mod fp16;
mod fuzz;
mod ipfs;
mod jobstore_conformance;
mod kms;
mod lambda_function;
mod living;
mod lora;
mod pipeline;
mod qa;
mod queue_conformance;
mod review_aws;
mod rpc_faults;
mod safety_parity;
mod sagemaker;
mod sample_events;
mod shapes_model;
mod state_loss;
mod tx_manager;
mod unicode;
mod webhook_secret;
