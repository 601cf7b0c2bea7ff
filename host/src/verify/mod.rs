//! Checking against tract, the independent referee: the parity of a blob with tract per layer,
//! whole network and float ([`parity`]: `sqz verify`), and the import of a SqueezeNet-family
//! ONNX model into a blob, checked the same way ([`import`]: `sqz import`).

pub mod import;
pub mod parity;

pub use parity::{FloatParity, LayerParity, NetworkParity, VerifyReport, run_all, tolerance};
