//! Any byte stream into the device's end of the serial link (`protocol::Server`, the deframer,
//! the request decoder and the response encoder): never a panic, and every byte that ends a frame
//! is answered with one well-formed response frame (a zero-terminated COBS frame that the host's
//! decoder accepts). The first byte picks the engine's state: serving, or refusing its model.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shared::protocol::{
    CostUnit, Engine, ErrorCode, ErrorReport, Info, Server, decode_response,
};

/// A stand-in for the firmware's engine: 4x4x1 input, 3 classes, logits from the pixels.
struct Mock {
    refused: bool,
    /// The image sent in parts.
    stored: [u8; 16],
}

impl Engine for Mock {
    fn status(&self) -> Result<(), ErrorReport<'_>> {
        if self.refused {
            Err(ErrorReport { code: ErrorCode::ModelInvalid, detail: "payload CRC-32 mismatch" })
        } else {
            Ok(())
        }
    }
    fn info(&self) -> Info<'_> {
        Info {
            protocol_version: shared::protocol::PROTOCOL_VERSION,
            firmware_version: "fuzz",
            board: "mock",
            model_id: 7,
            blob_len: 1,
            arena_len: 1,
            input_dims: [4, 4, 1],
            num_classes: 3,
            cost_unit: CostUnit::Instructions,
            stack_size: 1,
            stack_hwm: 0,
        }
    }
    fn input_len(&self) -> usize {
        16
    }
    fn num_classes(&self) -> usize {
        3
    }
    fn classify(&mut self, pixels: &[u8], logits: &mut [i8]) -> u32 {
        assert_eq!(pixels.len(), 16, "classify called with the wrong input length");
        for (i, l) in logits.iter_mut().enumerate() {
            *l = pixels.iter().skip(i).step_by(3).fold(0u8, |a, &p| a ^ p) as i8;
        }
        pixels.len() as u32
    }
    fn store_part(&mut self, offset: usize, pixels: &[u8]) {
        // The server checks the part lies within the image; out of bounds panics here.
        self.stored[offset..offset + pixels.len()].copy_from_slice(pixels);
    }
    fn classify_stored(&mut self, logits: &mut [i8]) -> u32 {
        let image = self.stored;
        self.classify(&image, logits)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let mut engine = Mock { refused: mode & 1 == 1, stored: [0; 16] };
    let mut server = Server::new();
    for &byte in stream {
        if let Some(frame) = server.push(byte, &mut engine) {
            let (&last, body) = frame.split_last().expect("an empty response frame");
            assert_eq!(last, 0, "a response frame must end with its delimiter");
            assert!(!body.contains(&0), "a zero inside a COBS frame");
            let mut body = body.to_vec();
            decode_response(&mut body).expect("the host cannot decode the response");
        }
    }
});
