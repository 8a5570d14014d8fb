//! Float tensors in the precision a model was exported with. The engine computes in f32
//! (scheduler maths, guidance); fp16 exports (`optimum-cli export onnx --dtype fp16`) get
//! their inputs converted on the way in and their outputs widened on the way out.

use half::f16;
use ndarray::{ArrayD, ArrayView, Dimension};
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor, TensorElementType, TensorRef, ValueType};

use crate::error::{DiffusionError, Result, onnx};

/// Float element type of a model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// float32.
    F32,
    /// float16.
    F16,
}

impl Precision {
    /// The precision of `session`'s input `name`.
    pub(crate) fn of_input(session: &Session, name: &str, component: &'static str) -> Result<Self> {
        let dtype = session.inputs().iter().find(|o| o.name() == name).and_then(|o| o.dtype().tensor_type());
        match dtype {
            Some(TensorElementType::Float32) => Ok(Self::F32),
            Some(TensorElementType::Float16) => Ok(Self::F16),
            Some(other) => Err(DiffusionError::Onnx {
                component,
                message: format!("input `{name}` is {other:?}; expected float32 or float16"),
            }),
            None => Err(DiffusionError::Onnx {
                component,
                message: format!("the model has no tensor input named `{name}`"),
            }),
        }
    }

    /// `a` as an input of this precision: a view without copying for f32, a converted copy
    /// for f16.
    pub(crate) fn input<'a, D: Dimension + 'static>(
        self,
        a: ArrayView<'a, f32, D>,
        component: &'static str,
    ) -> Result<SessionInputValue<'a>> {
        Ok(match self {
            Self::F32 => TensorRef::from_array_view(a).map_err(onnx(component))?.into(),
            Self::F16 => Tensor::from_array(a.mapv(f16::from_f32).into_dyn()).map_err(onnx(component))?.into(),
        })
    }
}

/// A float output as f32, whichever float type the model returns.
pub(crate) fn output_f32(v: &DynValue, component: &'static str) -> Result<ArrayD<f32>> {
    match v.dtype() {
        ValueType::Tensor { ty: TensorElementType::Float32, .. } => {
            Ok(v.try_extract_array::<f32>().map_err(onnx(component))?.to_owned())
        }
        ValueType::Tensor { ty: TensorElementType::Float16, .. } => {
            Ok(v.try_extract_array::<f16>().map_err(onnx(component))?.mapv(f32::from))
        }
        other => {
            Err(DiffusionError::Onnx { component, message: format!("output is {other:?}; expected a float tensor") })
        }
    }
}
