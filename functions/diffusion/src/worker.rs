//! UNet calls: one call on a session ([`run_unet`]), and the second UNet session on a thread of
//! its own, for the conditional half of classifier-free guidance. The thread lives as long as the engine: starting a thread for every step cost a
//! spawn and, worse, a new thread starts on its parent's core and waits there until the
//! scheduler moves it, so both halves shared one core for part of each step.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use ndarray::{Array1, Array3, ArrayView4};
use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorElementType};

use crate::error::{DiffusionError, Result, onnx};
use crate::tensor::{Precision, output_f32};

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
                        .and_then(|sample| run_unet(&mut session, job.dtype, sample, job.t, job.hidden.view()));
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

/// One UNet call: noise prediction for `sample` at timestep `t` given text embeddings.
pub(crate) fn run_unet(
    session: &mut Session,
    (dtype, precision): (TensorElementType, Precision),
    sample: ndarray::ArrayView4<'_, f32>,
    t: f32,
    hidden: ndarray::ArrayView3<'_, f32>,
) -> Result<Vec<f32>> {
    let sample = precision.input(sample, "unet")?;
    let hidden = precision.input(hidden, "unet")?;
    let timestep: SessionInputValue<'_> = match dtype {
        // As numpy casts diffusers' float timesteps: truncation toward zero.
        TensorElementType::Int64 => Tensor::from_array(Array1::from_vec(vec![t as i64])).map_err(onnx("unet"))?.into(),
        TensorElementType::Float32 => Tensor::from_array(Array1::from_vec(vec![t])).map_err(onnx("unet"))?.into(),
        TensorElementType::Float16 => {
            Tensor::from_array(Array1::from_vec(vec![half::f16::from_f32(t)])).map_err(onnx("unet"))?.into()
        }
        other => {
            return Err(DiffusionError::Onnx {
                component: "unet",
                message: format!("timestep of type {other:?} is not supported"),
            });
        }
    };
    let outputs = session
        .run(ort::inputs!["sample" => sample, "timestep" => timestep, "encoder_hidden_states" => hidden])
        .map_err(onnx("unet"))?;
    Ok(output_f32(&outputs[0], "unet")?.into_raw_vec_and_offset().0)
}
