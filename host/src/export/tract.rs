//! tract, the independent engine every ONNX file of this project is run in: loading a model
//! (the golden vectors, the parity checks and the import all go through [`load_typed`]), the
//! pinned version, and the float input layout it takes.

use anyhow::{Context, Result};
use tract_onnx::prelude::*;

/// The tract version the project pins.
pub const TRACT_VERSION: &str = "0.23.9";

/// tract's ONNX loader, with its AMX matmul kernels left out. On AMX-capable x86 machines
/// (this project's development machines) tract-linalg 0.23.9 runs int8 matmuls on
/// `avx512amx_mmm_i32_16x16`, which crashed the tract check with SIGSEGV in 2 of 5 observed
/// runs of `tests/pipeline.rs` (gdb: the faulting frame is that kernel); without AMX the
/// AVX-512 kernels run them. A `TRACT_CPU_ISA` set in the environment still wins.
fn tract_onnx_loader() -> tract_onnx::Onnx {
    static NO_AMX: std::sync::Once = std::sync::Once::new();
    NO_AMX.call_once(|| {
        // Must precede tract's first ISA probe, which it caches for the process.
        if let Err(e) =
            tract_onnx::tract_core::knobs::set_config_global("TRACT_CPU_ISA", "-amx-int8,-amx-bf16")
        {
            eprintln!("warning: could not keep tract off its AMX kernels: {e}");
        }
    });
    tract_onnx::onnx()
}

/// `bytes` (an ONNX model) in tract with `input` as the fact of its input, optimised and
/// runnable.
pub fn load_typed(bytes: &[u8], input: InferenceFact) -> Result<Arc<TypedRunnableModel>> {
    let model = tract_onnx_loader()
        .with_ignore_output_shapes(true)
        .model_for_read(&mut &bytes[..])
        .context("tract could not read the ONNX model")?
        .with_input_fact(0, input)?
        .into_optimized()
        .context("tract could not optimise the model")?
        .into_runnable()?;
    Ok(model)
}

/// HWC `u8` pixels to CHW floats in [0, 1].
pub fn chw_unit(pixels: &[u8], c: usize) -> Vec<f32> {
    let plane = pixels.len() / c.max(1);
    let mut v = vec![0f32; pixels.len()];
    for (i, &p) in pixels.iter().enumerate() {
        v[(i % c) * plane + i / c] = f32::from(p) / 255.0;
    }
    v
}
