//! The model facade: the one place that names the `shared` model API.

pub use shared::{Error, Model, quantize_input_u8, run};

/// Input `[h, w, c]` of `model`.
pub fn input_dims(model: &Model<'_>) -> [u16; 3] {
    let d = model.input_dims();
    [d.h, d.w, d.c]
}
