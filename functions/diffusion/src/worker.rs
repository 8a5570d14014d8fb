//! The second UNet session on a thread of its own, for the conditional half of classifier-free
//! guidance. The thread lives as long as the engine: starting a thread for every step cost a
//! spawn and, worse, a new thread starts on its parent's core and waits there until the
//! scheduler moves it, so both halves shared one core for part of each step.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use ndarray::{Array3, ArrayView4};
use ort::session::Session;
use ort::value::TensorElementType;

use crate::error::{DiffusionError, Result};
use crate::tensor::Precision;

/// One UNet call's inputs, owned so that they can cross to the worker thread.
struct Job {
    sample: Vec<f32>,
    shape: [usize; 4],
    t: f32,
    hidden: Arc<Array3<f32>>,
    dtype: (TensorElementType, Precision),
}

/// A thread running UNet calls on its own session, one at a time.
pub(crate) struct UnetWorker {
    jobs: Option<SyncSender<Job>>,
    results: Receiver<Result<Vec<f32>>>,
    thread: Option<JoinHandle<()>>,
}

impl UnetWorker {
    /// Moves `session` to a new thread.
    pub(crate) fn spawn(mut session: Session) -> Result<Self> {
        let (jobs, inbox) = sync_channel::<Job>(1);
        let (outbox, results) = sync_channel::<Result<Vec<f32>>>(1);
        let thread = std::thread::Builder::new()
            .name("unet-cond".into())
            .spawn(move || {
                for job in inbox {
                    let out = ArrayView4::from_shape(job.shape, &job.sample)
                        .map_err(|e| DiffusionError::BadOutput(e.to_string()))
                        .and_then(|sample| {
                            crate::pipeline::run_unet(&mut session, job.dtype, sample, job.t, job.hidden.view())
                        });
                    if outbox.send(out).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| DiffusionError::BadOutput(format!("cannot start the UNet thread: {e}")))?;
        Ok(Self { jobs: Some(jobs), results, thread: Some(thread) })
    }

    /// Starts a call; [`UnetWorker::wait`] returns its result.
    pub(crate) fn submit(
        &self,
        sample: ArrayView4<'_, f32>,
        t: f32,
        hidden: &Arc<Array3<f32>>,
        dtype: (TensorElementType, Precision),
    ) -> Result<()> {
        let shape = sample.dim();
        let job = Job {
            sample: sample.iter().copied().collect(),
            shape: [shape.0, shape.1, shape.2, shape.3],
            t,
            hidden: Arc::clone(hidden),
            dtype,
        };
        self.jobs.as_ref().and_then(|j| j.send(job).ok()).ok_or_else(gone)
    }

    /// The result of the call [`UnetWorker::submit`] started.
    pub(crate) fn wait(&self) -> Result<Vec<f32>> {
        self.results.recv().map_err(|_| gone())?
    }
}

fn gone() -> DiffusionError {
    DiffusionError::BadOutput("the UNet thread stopped (it panicked)".into())
}

impl Drop for UnetWorker {
    fn drop(&mut self) {
        // Closing the job channel ends the thread's loop.
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
