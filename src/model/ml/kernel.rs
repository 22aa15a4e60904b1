//! The bridge between batchinfer's ONNX-ML kernels and tract.
//!
//! Each operator batchinfer implements itself is a [`Kernel`]: a pure function from
//! input tensors to output tensors, plus the type rules tract's analysis needs.
//! [`KernelExpansion`] is what the ONNX parser builds for such a node; when tract
//! types the model it wires a [`KernelOp`], the `TypedOp` that runs the kernel.
//! One wrapper for every kernel keeps tract's op traits in this one file.

use std::fmt::Debug;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

/// An operator implemented by batchinfer: what it computes and how its outputs are typed.
pub trait Kernel: Debug + Send + Sync + 'static {
    /// The ONNX op type, as `inspect` reports it.
    fn name(&self) -> &'static str;

    /// How many outputs the node has.
    fn n_outputs(&self) -> usize {
        1
    }

    /// Type rules for tract's analysis of the inference model. They must fix each
    /// output's datum type and rank; shapes that follow from the inputs should be tied
    /// to them so the batch dimension stays symbolic.
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult;

    /// Output facts of the typed model, from the typed input facts.
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>>;

    /// Computes the outputs of one batch.
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>>;
}

/// Boxes a kernel as the inference op the ONNX parser expects from a builder.
pub fn inference_op(kernel: impl Kernel) -> Box<dyn InferenceOp> {
    expand(KernelExpansion(Arc::new(kernel)))
}

#[derive(Debug, Clone)]
struct KernelExpansion(Arc<dyn Kernel>);

impl Expansion for KernelExpansion {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.0.n_outputs())
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_output_arity(outputs, self.0.n_outputs())?;
        self.0.rules(s, inputs, outputs)
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, KernelOp(self.0.clone()), inputs)
    }
}

/// The typed op running a kernel. Two ops are equal only if they share the kernel,
/// which is all tract needs to deduplicate nodes.
#[derive(Debug, Clone)]
pub struct KernelOp(Arc<dyn Kernel>);

impl PartialEq for KernelOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for KernelOp {}

impl Op for KernelOp {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    op_as_typed_op!();
}

impl EvalOp for KernelOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.0.eval(inputs)
    }
}

impl TypedOp for KernelOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.0.output_facts(inputs)
    }

    as_op!();
}
