//! What each stage may touch.
//!
//! A stage states the adapters it uses as trait bounds made of these capabilities, and each
//! runner hands it a value that has them: the local runner and the tests hold every adapter
//! ([`Ports`]); each Lambda function builds only its stage's struct ([`Generate`], [`Review`],
//! [`Publish`], [`Mint`], [`Intake`]), so a function cannot be wired with an adapter its stage
//! must not use, and a message on the wrong queue cannot reach one.
//!
//! | stage | queue, jobs | blobs | generator | inspector | pinner | signer | minter |
//! | --- | --- | --- | --- | --- | --- | --- | --- |
//! | intake | ✓ | | | | | | |
//! | generate | ✓ | ✓ | ✓ | | | | |
//! | review | ✓ | ✓ | | ✓ | | | |
//! | publish | ✓ | ✓ | | | ✓ | ✓ | |
//! | mint | ✓ | ✓ | | | ✓ (a batch's directory; an adopted token's content) | | ✓ |

use std::future::Future;
use std::sync::Arc;

use latentmint_core::ports::{BlobStore, Generator, Inspector, JobStore, Minter, Pinner, ProvenanceSigner, Queue};
use latentmint_core::{JobId, Stage};

use crate::{StageError, StageOutcome};

/// What every stage uses: the stage queues (to send a job on) and the job records.
pub trait Pipeline: Send + Sync {
    /// Stage queues.
    fn queue(&self) -> &dyn Queue;
    /// Job records.
    fn jobs(&self) -> &dyn JobStore;
}

/// The blob store: images, signed metadata, batch plans.
pub trait Images: Pipeline {
    /// Images and the other blobs.
    fn blobs(&self) -> &dyn BlobStore;
}

/// The image generator.
pub trait Generating: Pipeline {
    /// Image generator.
    fn generator(&self) -> &dyn Generator;
}

/// The automatic checks of an image.
pub trait Inspecting: Images {
    /// Checks images.
    fn inspector(&self) -> &dyn Inspector;
}

/// The content-addressed store (IPFS).
pub trait Pinning: Pipeline {
    /// Pins content and reads it back.
    fn pinner(&self) -> &dyn Pinner;
}

/// The publisher's signature on provenance records.
pub trait Signing: Pipeline {
    /// Signs provenance records as the publisher.
    fn signer(&self) -> &dyn ProvenanceSigner;
}

/// The chain.
pub trait Minting: Pipeline {
    /// Token minter.
    fn minter(&self) -> &dyn Minter;
}

/// One stage's adapters: the stage they run, and how it runs one job. [`crate::process_stage`]
/// lifts it to one queue delivery.
pub trait StagePorts: Pipeline {
    /// The stage these adapters run.
    const STAGE: Stage;
    /// Runs the stage on job `id` for the queue message `message_id`.
    fn run(&self, id: JobId, message_id: &str) -> impl Future<Output = Result<StageOutcome, StageError>> + Send;
}

/// Implements the capability traits named for a struct holding those adapters.
macro_rules! capabilities {
    ($t:ty: $($cap:ident),*) => {
        impl Pipeline for $t {
            fn queue(&self) -> &dyn Queue {
                self.queue.as_ref()
            }
            fn jobs(&self) -> &dyn JobStore {
                self.jobs.as_ref()
            }
        }
        $(capabilities!(@one $t, $cap);)*
    };
    (@one $t:ty, blobs) => { impl Images for $t { fn blobs(&self) -> &dyn BlobStore { self.blobs.as_ref() } } };
    (@one $t:ty, generator) => { impl Generating for $t { fn generator(&self) -> &dyn Generator { self.generator.as_ref() } } };
    (@one $t:ty, inspector) => { impl Inspecting for $t { fn inspector(&self) -> &dyn Inspector { self.inspector.as_ref() } } };
    (@one $t:ty, pinner) => { impl Pinning for $t { fn pinner(&self) -> &dyn Pinner { self.pinner.as_ref() } } };
    (@one $t:ty, signer) => { impl Signing for $t { fn signer(&self) -> &dyn ProvenanceSigner { self.signer.as_ref() } } };
    (@one $t:ty, minter) => { impl Minting for $t { fn minter(&self) -> &dyn Minter { self.minter.as_ref() } } };
}

/// Every adapter: what the local runner, the reconciliation and the tests hold.
#[derive(Clone)]
pub struct Ports {
    /// Stage queues.
    pub queue: Arc<dyn Queue>,
    /// Job records.
    pub jobs: Arc<dyn JobStore>,
    /// Images.
    pub blobs: Arc<dyn BlobStore>,
    /// Image generator.
    pub generator: Arc<dyn Generator>,
    /// Automatic checks of images.
    pub inspector: Arc<dyn Inspector>,
    /// Content-addressed store.
    pub pinner: Arc<dyn Pinner>,
    /// Token minter.
    pub minter: Arc<dyn Minter>,
    /// Signs provenance records as the publisher.
    pub signer: Arc<dyn ProvenanceSigner>,
}
capabilities!(Ports: blobs, generator, inspector, pinner, signer, minter);

impl Ports {
    /// The generate stage's share.
    pub fn generate(&self) -> Generate {
        Generate {
            queue: self.queue.clone(),
            jobs: self.jobs.clone(),
            blobs: self.blobs.clone(),
            generator: self.generator.clone(),
        }
    }

    /// The review stage's share.
    pub fn review(&self) -> Review {
        Review {
            queue: self.queue.clone(),
            jobs: self.jobs.clone(),
            blobs: self.blobs.clone(),
            inspector: self.inspector.clone(),
        }
    }

    /// The publish stage's share.
    pub fn publish(&self) -> Publish {
        Publish {
            queue: self.queue.clone(),
            jobs: self.jobs.clone(),
            blobs: self.blobs.clone(),
            pinner: self.pinner.clone(),
            signer: self.signer.clone(),
        }
    }

    /// The mint stage's share.
    pub fn mint(&self) -> Mint {
        Mint {
            queue: self.queue.clone(),
            jobs: self.jobs.clone(),
            blobs: self.blobs.clone(),
            pinner: self.pinner.clone(),
            minter: self.minter.clone(),
        }
    }
}

/// The intake's adapters: it records jobs and queues them for generation.
#[derive(Clone)]
pub struct Intake {
    /// Stage queues (it sends to `generate`).
    pub queue: Arc<dyn Queue>,
    /// Job records.
    pub jobs: Arc<dyn JobStore>,
}
capabilities!(Intake:);

/// The generate stage's adapters.
#[derive(Clone)]
pub struct Generate {
    /// Stage queues.
    pub queue: Arc<dyn Queue>,
    /// Job records.
    pub jobs: Arc<dyn JobStore>,
    /// Where images go.
    pub blobs: Arc<dyn BlobStore>,
    /// Image generator.
    pub generator: Arc<dyn Generator>,
}
capabilities!(Generate: blobs, generator);

/// The review stage's adapters.
#[derive(Clone)]
pub struct Review {
    /// Stage queues.
    pub queue: Arc<dyn Queue>,
    /// Job records.
    pub jobs: Arc<dyn JobStore>,
    /// Where images are read from.
    pub blobs: Arc<dyn BlobStore>,
    /// The automatic checks.
    pub inspector: Arc<dyn Inspector>,
}
capabilities!(Review: blobs, inspector);

/// The publish stage's adapters.
#[derive(Clone)]
pub struct Publish {
    /// Stage queues.
    pub queue: Arc<dyn Queue>,
    /// Job records.
    pub jobs: Arc<dyn JobStore>,
    /// Images, and the signed metadata kept for a retry.
    pub blobs: Arc<dyn BlobStore>,
    /// Content-addressed store.
    pub pinner: Arc<dyn Pinner>,
    /// Signs provenance records as the publisher.
    pub signer: Arc<dyn ProvenanceSigner>,
}
capabilities!(Publish: blobs, pinner, signer);

/// The mint stage's adapters.
#[derive(Clone)]
pub struct Mint {
    /// Stage queues.
    pub queue: Arc<dyn Queue>,
    /// Job records.
    pub jobs: Arc<dyn JobStore>,
    /// Signed metadata and batch plans.
    pub blobs: Arc<dyn BlobStore>,
    /// Pins a batch's metadata directory; reads an adopted token's content back.
    pub pinner: Arc<dyn Pinner>,
    /// Token minter.
    pub minter: Arc<dyn Minter>,
}
capabilities!(Mint: blobs, pinner, minter);
