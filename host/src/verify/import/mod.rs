//! `sqz import`: a SqueezeNet-family ONNX model exported by PyTorch (torchvision-style
//! `squeezenet1_0` / `squeezenet1_1`, opsets 11 to 18), burn or tf2onnx, turned into a
//! `FloatNet`, calibrated on the user's images, quantised into a blob and checked against
//! tract like `sqz verify` does, plus a float check of the import itself (tract on the
//! original ONNX vs our `FloatNet` forward pass).
//!
//! What is understood, on the data path from the graph input to the graph output:
//!
//! * `Conv` (square kernel and stride, group 1, no dilation, symmetric padding after `auto_pad`
//!   is resolved), with `BatchNormalization`, `Add`/`Mul` of a per-channel constant and `Relu`
//!   right after it folded in;
//! * `MaxPool` (padding, `ceil_mode`), `AveragePool` (floor, or ceil when it changes nothing;
//!   padding only with `count_include_pad`), `GlobalAveragePool`, `ReduceMean` over H and W;
//!   an average pool covering the whole map becomes a global one;
//! * fire modules: squeeze 1x1 conv + ReLU feeding a 1x1 and a 3x3 (pad 1) conv, each + ReLU,
//!   `Concat` on channels with the 1x1 first, optionally `Add`ed to the fire's input (simple
//!   bypass) or to a 1x1 conv of it without ReLU (complex bypass);
//! * `Dropout` and `Identity` anywhere (inference: pass-through);
//! * after the map is 1x1: `Flatten`, `Reshape`, `Squeeze`, `Softmax`, `LogSoftmax` (logits are
//!   taken before the softmax);
//! * a leading `Transpose` NHWC -> NCHW on the graph input (tf2onnx).
//!
//! Anything else on the data path is one error naming the node and its op. Shape arithmetic
//! that only feeds a `Reshape`'s shape (`Shape`, `Gather`, `Unsqueeze`, ...) is ignored.
//!
//! Inputs are pixels scaled to [0, 1] (the blob's input quantisation, [`INPUT_QUANT`]): the
//! model must take such inputs. No mean/std normalisation is applied.
//!
//! [`INPUT_QUANT`]: crate::compress::quantize::INPUT_QUANT
//!
//! Parts: [`external`] loads tensors stored beside the model ([`read_model`]), `graph` reads the
//! ONNX graph (with `lower` for each node), [`parse`] walks its data path into layers (with
//! `fire` for fire modules), [`check`] quantises and checks the result.

pub mod check;
pub mod external;
mod fire;
mod graph;
mod lower;
pub mod parse;

pub use check::{
    ImportConfig, ImportResult, float_parity_onnx, import, report_path, write_outputs,
};
pub use external::read_model;
pub use parse::{Imported, parse};
