//! The device behind the protocol: the validated model, its arena and the cost counter.

use shared::protocol::{
    CostUnit, Engine, ErrorCode, ErrorReport, Info, MAX_TEXT, PROTOCOL_VERSION,
};

use crate::config::{ARENA_LEN, BLOB_LEN, INPUT_LEN, NUM_CLASSES};
use crate::model::{self, Model};
use crate::take_once::TakeOnce;
use crate::text::{push, push_error};
use crate::{board, stack};

/// The blob, 16-byte aligned for zero-copy weight access.
#[repr(C, align(16))]
struct Aligned<B: ?Sized>(B);

static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.blob")));

/// The activation arena, sized from the blob at build time.
#[repr(C, align(16))]
struct Arena([u8; ARENA_LEN]);

static ARENA: TakeOnce<Arena> = TakeOnce::new(Arena([0; ARENA_LEN]));
static INPUT: TakeOnce<[i8; INPUT_LEN]> = TakeOnce::new([0; INPUT_LEN]);
static REFUSAL: TakeOnce<heapless::String<MAX_TEXT>> = TakeOnce::new(heapless::String::new());

/// The embedded model blob.
pub fn blob() -> &'static [u8] {
    &BLOB.0
}

/// Why the model was refused at boot.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    /// Protocol error code sent to the host.
    pub code: ErrorCode,
    /// Human-readable reason.
    pub detail: &'static str,
}

/// The validated model and its buffers, or the reason it was refused.
#[derive(Debug)]
pub struct Device {
    state: Result<Loaded, Refusal>,
}

#[derive(Debug)]
struct Loaded {
    model: Model<'static>,
    arena: &'static mut [u8],
    input: &'static mut [i8; INPUT_LEN],
}

impl Device {
    /// Validates the embedded blob and takes the static buffers. Call once.
    ///
    /// A blob that does not validate (e.g. corrupted in flash), or needs more arena or input
    /// than the build reserved, is refused: the device then answers every request with the
    /// refusal and runs nothing.
    pub fn boot() -> Self {
        let refusal = REFUSAL.take_once("boot ran twice");
        let arena = &mut ARENA.take_once("boot ran twice").0[..];
        let input = INPUT.take_once("boot ran twice");
        let checked = match model::validate(blob()) {
            Err(e) => {
                push_error(refusal, &e);
                Err(ErrorCode::ModelInvalid)
            }
            Ok(m) if m.arena_len() > arena.len() => {
                // The sizes are in the blob and in `info`: a fixed message.
                push(
                    refusal,
                    "the model needs more arena than the build reserved",
                );
                Err(ErrorCode::ArenaTooSmall)
            }
            Ok(m) if m.input_len() != INPUT_LEN || m.num_classes() != NUM_CLASSES => {
                push(refusal, "model shape differs from the build's");
                Err(ErrorCode::ModelInvalid)
            }
            Ok(model) => Ok(model),
        };
        let refusal: &'static heapless::String<MAX_TEXT> = refusal;
        let state = match checked {
            Ok(model) => Ok(Loaded {
                model,
                arena,
                input,
            }),
            Err(code) => Err(Refusal {
                code,
                detail: refusal.as_str(),
            }),
        };
        Self { state }
    }

    /// `Err` when the model was refused at boot.
    pub fn refusal(&self) -> Option<Refusal> {
        self.state.as_ref().err().copied()
    }
}

impl Engine for Device {
    fn status(&self) -> Result<(), ErrorReport<'_>> {
        match &self.state {
            Ok(_) => Ok(()),
            Err(r) => Err(ErrorReport {
                code: r.code,
                detail: r.detail,
            }),
        }
    }

    fn info(&self) -> Info<'_> {
        let (model_id, dims, classes) = match &self.state {
            Ok(l) => (
                l.model.model_id(),
                model::input_dims(&l.model),
                l.model.num_classes() as u16,
            ),
            Err(_) => (0, [0; 3], 0),
        };
        Info {
            protocol_version: PROTOCOL_VERSION,
            firmware_version: env!("CARGO_PKG_VERSION"),
            board: board::NAME,
            model_id,
            blob_len: BLOB_LEN as u32,
            arena_len: ARENA_LEN as u32,
            input_dims: dims,
            num_classes: classes,
            cost_unit: board::COST_UNIT,
            stack_size: stack::size() as u32,
            stack_hwm: stack::high_water_mark() as u32,
        }
    }

    fn input_len(&self) -> usize {
        INPUT_LEN
    }

    fn num_classes(&self) -> usize {
        NUM_CLASSES
    }

    fn classify(&mut self, pixels: &[u8], logits: &mut [i8]) -> u32 {
        let Ok(l) = &mut self.state else {
            return 0; // unreachable: the server checks `status` first
        };
        let start = board::cost_counter();
        model::quantize_input_u8(&l.model, pixels, &mut l.input[..]);
        model::run(&l.model, &l.input[..], l.arena, logits);
        board::cost_since(start)
    }

    fn store_part(&mut self, offset: usize, pixels: &[u8]) {
        if let Ok(l) = &mut self.state {
            // Quantised as it arrives: the input quantisation is per pixel.
            let end = (offset + pixels.len()).min(INPUT_LEN);
            if let Some(out) = l.input.get_mut(offset..end) {
                model::quantize_input_u8(&l.model, pixels, out);
            }
        }
    }

    fn classify_stored(&mut self, logits: &mut [i8]) -> u32 {
        let Ok(l) = &mut self.state else {
            return 0; // unreachable: the server checks `status` first
        };
        let start = board::cost_counter();
        model::run(&l.model, &l.input[..], l.arena, logits);
        board::cost_since(start)
    }
}

/// Unit of the cost counter, re-exported for the smoke output.
pub const COST_UNIT: CostUnit = board::COST_UNIT;
