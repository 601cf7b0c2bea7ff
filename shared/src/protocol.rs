//! Host <-> device serial protocol: postcard messages, CRC-32, COBS framing.
//!
//! # Wire format
//!
//! ```text
//! frame   = cobs(payload ++ crc32_le(payload)) ++ 0x00
//! payload = postcard(Request) | postcard(Response)
//! ```
//!
//! * [`crc32`] is CRC-32/ISO-HDLC (the zlib/Ethernet CRC), little-endian on the wire.
//! * COBS removes every `0x00` from the frame body, so `0x00` only ever ends a frame. A receiver
//!   that joins mid-stream or sees garbage resynchronises at the next `0x00`; an empty frame (two
//!   `0x00` in a row) is ignored, so a host may send a lone `0x00` to flush a half-received frame.
//! * A frame body (between delimiters) is at most [`MAX_FRAME`] bytes.
//!
//! An image too large for one frame travels in parts: [`Request::Part`] frames in order (each
//! answered with [`Response::Stored`]), then a [`Request::Classify`] with no pixels.
//!
//! The host sends a [`Request`] and waits for exactly one [`Response`]. Every received frame is
//! answered, bad ones included: a frame that is too long, not valid COBS, too short, fails its CRC,
//! carries an unknown message tag, does not decode, or carries an image of the wrong size gets a
//! [`Response::Error`] with an [`ErrorCode`], and the device goes on serving. The only unsolicited
//! message is [`Response::Fault`], sent once by a panicking or faulting device before it stops.
//!
//! The device side is [`Server`]: feed it received bytes, write back what it returns. It is I/O
//! free, allocation free and tested on the host; the model behind it is an [`Engine`]. It reads
//! requests and writes responses with the hand-written postcard codec of `wire` (serde's
//! generic code costs kilobytes of device flash); the tests check it against postcard.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::wire::{Decode, ReadError, Reader, Writer};

/// Version of this wire format; bumped on every incompatible change. Sent in [`Info`].
pub const PROTOCOL_VERSION: u16 = 2;
/// Largest frame body (COBS-encoded payload and CRC, without the `0x00` delimiter), in bytes.
pub const MAX_FRAME: usize = 1024;
/// Largest number of classes a [`Classification`] carries.
pub const MAX_CLASSES: usize = 16;
/// Longest text (error detail, fault message) a response carries, in bytes; longer text is cut.
pub const MAX_TEXT: usize = 120;
/// Largest encoded [`Response`] payload (before CRC and COBS), in bytes.
pub const MAX_RESPONSE: usize = 256;
/// Bytes of CRC appended to every payload.
pub const CRC_LEN: usize = 4;

/// A message from the host to the device.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// Ask for [`Info`]. Answered with [`Response::Info`], or [`Response::Error`] with
    /// [`ErrorCode::ModelInvalid`] when the firmware refused its model at boot.
    Hello,
    /// Classify one image. Answered with [`Response::Result`] echoing `seq`.
    Classify {
        /// Sequence number chosen by the host, echoed in the result.
        seq: u16,
        /// Raw pixels, `u8`, row-major HWC (`Info::input_dims`); the device quantises them.
        /// Empty: the image sent in [`Request::Part`]s, all of it.
        #[serde(borrow)]
        pixels: &'a [u8],
    },
    /// Part of an image too large for one frame: its pixels from byte `offset` on. Parts come
    /// in order from offset 0; answered with [`Response::Stored`], or [`ErrorCode::WrongLength`]
    /// (and the parts so far forgotten) when out of order or past the image's end.
    Part {
        /// Where these pixels start in the image, bytes.
        offset: u32,
        /// The pixels.
        #[serde(borrow)]
        pixels: &'a [u8],
    },
}

/// Pixels a [`Request::Part`] carries (the last part of an image may carry fewer): its frame
/// stays within [`MAX_FRAME`].
pub const PART_PIXELS: usize = 960;

/// True when a [`Request::Classify`] with `pixels` bytes fits one frame (tag, sequence number,
/// length and pixels, then the CRC, COBS-encoded); larger images go in [`Request::Part`]s.
pub const fn fits_one_frame(pixels: usize) -> bool {
    cobs_max_len(1 + 3 + 3 + pixels + CRC_LEN) <= MAX_FRAME
}

/// Number of [`Request`] variants; a payload whose first byte is not below this is
/// [`ErrorCode::UnknownTag`].
pub const REQUEST_TAGS: u8 = 3;

/// A message from the device to the host.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Response<'a> {
    /// Answer to [`Request::Hello`].
    #[serde(borrow)]
    Info(Info<'a>),
    /// Answer to [`Request::Classify`].
    Result(Classification),
    /// A refused request or a refused model.
    #[serde(borrow)]
    Error(ErrorReport<'a>),
    /// Unsolicited: the device panicked or faulted and has stopped. Text describes where.
    Fault(&'a str),
    /// Answer to [`Request::Part`]: bytes of the image held so far.
    Stored(u32),
}

/// What the device runs and how much memory it uses.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info<'a> {
    /// [`PROTOCOL_VERSION`] of the firmware.
    pub protocol_version: u16,
    /// Firmware crate version.
    pub firmware_version: &'a str,
    /// Board the firmware was built for (a cargo feature name, e.g. `mps2-an386`).
    pub board: &'a str,
    /// Model identifier stored in the blob.
    pub model_id: u64,
    /// Size of the embedded model blob, bytes.
    pub blob_len: u32,
    /// Size of the static activation arena, bytes.
    pub arena_len: u32,
    /// Input shape `[height, width, channels]`; a classify request carries their product in bytes.
    pub input_dims: [u16; 3],
    /// Number of output classes (logits per result).
    pub num_classes: u16,
    /// What [`Classification::cost`] counts.
    pub cost_unit: CostUnit,
    /// Bytes reserved for the stack.
    pub stack_size: u32,
    /// Deepest stack use seen since boot (stack painting), bytes.
    pub stack_hwm: u32,
}

/// Unit of [`Classification::cost`].
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostUnit {
    /// Retired instructions (QEMU with `-icount shift=0`: one instruction per virtual ns).
    Instructions,
    /// CPU clock cycles (DWT cycle counter on real silicon).
    Cycles,
}

/// Result of one inference.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// `seq` of the request.
    pub seq: u16,
    /// Index of the largest logit (the lowest index among equal maxima), see [`argmax`].
    pub class: u8,
    /// Quantised output logits, one per class.
    pub logits: heapless::Vec<i8, MAX_CLASSES>,
    /// Cost of the inference (quantisation of the input included), in [`Info::cost_unit`].
    pub cost: u32,
}

/// An error code and a human-readable detail.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorReport<'a> {
    /// What went wrong.
    pub code: ErrorCode,
    /// Detail text, at most [`MAX_TEXT`] bytes; may be empty.
    pub detail: &'a str,
}

impl<'a> ErrorReport<'a> {
    /// A report with no detail text.
    pub const fn new(code: ErrorCode) -> Self {
        Self { code, detail: "" }
    }
}

impl From<ErrorCode> for ErrorReport<'_> {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

/// Why a frame or a request was refused. Stable numeric codes (`as u8`) travel on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame body exceeded [`MAX_FRAME`] bytes before its delimiter.
    FrameTooLong = 1,
    /// The frame body is not valid COBS.
    Cobs = 2,
    /// The payload is too short to hold a message and its CRC, or a message ended early.
    Truncated = 3,
    /// The CRC does not match the payload.
    Crc = 4,
    /// The message tag is not a known message.
    UnknownTag = 5,
    /// The message does not decode (bad varint, bad UTF-8, ...).
    Malformed = 6,
    /// The message decodes but has bytes left over, or an image has the wrong number of pixels.
    WrongLength = 7,
    /// The model blob was refused at boot (detail says why); the device runs nothing.
    ModelInvalid = 8,
    /// The static arena is smaller than the model needs; the device runs nothing.
    ArenaTooSmall = 9,
    /// The response did not fit its buffer (a firmware bug).
    Internal = 10,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrorCode; 10] = [
        Self::FrameTooLong,
        Self::Cobs,
        Self::Truncated,
        Self::Crc,
        Self::UnknownTag,
        Self::Malformed,
        Self::WrongLength,
        Self::ModelInvalid,
        Self::ArenaTooSmall,
        Self::Internal,
    ];

    /// The code with numeric value `value`, if any.
    pub fn from_u8(value: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|c| *c as u8 == value)
    }

    /// Short lowercase name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::FrameTooLong => "frame too long",
            Self::Cobs => "bad COBS",
            Self::Truncated => "truncated",
            Self::Crc => "bad CRC",
            Self::UnknownTag => "unknown message tag",
            Self::Malformed => "malformed message",
            Self::WrongLength => "wrong length",
            Self::ModelInvalid => "model invalid",
            Self::ArenaTooSmall => "arena too small",
            Self::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.name(), *self as u8)
    }
}

impl fmt::Display for ErrorReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.detail)
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(*self as u8)
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = u8::deserialize(d)?;
        Self::from_u8(value).ok_or_else(|| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Unsigned(value.into()),
                &"a protocol error code",
            )
        })
    }
}

/// Index of the largest value, the lowest index among equal maxima; 0 for an empty slice.
pub fn argmax(values: &[i8]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

// ---------------------------------------------------------------------------------------------
// CRC-32 and COBS
// ---------------------------------------------------------------------------------------------

pub use crate::crc::crc32;

/// Worst-case COBS-encoded length of `len` bytes (without the delimiter).
pub const fn cobs_max_len(len: usize) -> usize {
    len + len / 254 + 1
}

/// COBS-encodes `data` into `out`; returns the encoded length (no delimiter is written).
///
/// Returns `None` when `out` is shorter than needed ([`cobs_max_len`] is always enough).
pub fn cobs_encode(data: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut code_at = 0;
    let mut o = 1;
    let mut code = 1u8;
    if out.is_empty() {
        return None;
    }
    for &b in data {
        if b == 0 {
            out[code_at] = code;
            code_at = o;
            *out.get_mut(o)? = 0;
            o += 1;
            code = 1;
        } else {
            *out.get_mut(o)? = b;
            o += 1;
            code += 1;
            if code == 0xFF {
                out[code_at] = code;
                code_at = o;
                *out.get_mut(o)? = 0;
                o += 1;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    Some(o)
}

/// Decodes a COBS frame body in place; returns the decoded length.
///
/// Fails with [`ErrorCode::Cobs`] on a `0x00` inside the body or a code that runs past its end.
pub fn cobs_decode_in_place(buf: &mut [u8]) -> Result<usize, ErrorCode> {
    let mut i = 0;
    let mut o = 0;
    while i < buf.len() {
        let code = buf[i] as usize;
        if code == 0 || i + code > buf.len() {
            return Err(ErrorCode::Cobs);
        }
        i += 1;
        for _ in 1..code {
            let b = buf[i];
            if b == 0 {
                return Err(ErrorCode::Cobs);
            }
            buf[o] = b;
            o += 1;
            i += 1;
        }
        if code != 0xFF && i < buf.len() {
            buf[o] = 0;
            o += 1;
        }
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------

/// Encodes `msg` as a complete frame (delimiter included) into `out`, using `scratch` for the
/// postcard payload; returns the frame length.
///
/// Fails with [`ErrorCode::Internal`] if `scratch` or `out` is too small.
pub fn encode_frame<T: Serialize>(
    msg: &T,
    scratch: &mut [u8],
    out: &mut [u8],
) -> Result<usize, ErrorCode> {
    let n = postcard::to_slice(msg, scratch)
        .map_err(|_| ErrorCode::Internal)?
        .len();
    seal_frame(scratch, n, out)
}

/// Appends the CRC to the `n`-byte payload in `scratch` and COBS-encodes it into `out` with the
/// delimiter; returns the frame length.
fn seal_frame(scratch: &mut [u8], n: usize, out: &mut [u8]) -> Result<usize, ErrorCode> {
    let crc = crc32(&scratch[..n]).to_le_bytes();
    scratch
        .get_mut(n..n + CRC_LEN)
        .ok_or(ErrorCode::Internal)?
        .copy_from_slice(&crc);
    let len = cobs_encode(&scratch[..n + CRC_LEN], out).ok_or(ErrorCode::Internal)?;
    *out.get_mut(len).ok_or(ErrorCode::Internal)? = 0;
    Ok(len + 1)
}

/// Checks a received frame body (delimiter removed): COBS-decodes it in place, checks the
/// CRC and returns the payload (still postcard-encoded).
pub fn open_frame(body: &mut [u8]) -> Result<&[u8], ErrorCode> {
    let len = cobs_decode_in_place(body)?;
    if len < CRC_LEN + 1 {
        return Err(ErrorCode::Truncated);
    }
    let (payload, crc) = body[..len].split_at(len - CRC_LEN);
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32(payload) != crc {
        return Err(ErrorCode::Crc);
    }
    Ok(payload)
}

/// Checks the message tag (the first byte) of a payload whose enum has `tags` variants.
fn check_tag(payload: &[u8], tags: u8) -> Result<(), ErrorCode> {
    match payload.first() {
        None => Err(ErrorCode::Truncated),
        Some(&tag) if tag >= tags => Err(ErrorCode::UnknownTag),
        Some(_) => Ok(()),
    }
}

/// Decodes a payload returned by [`open_frame`] as a `T` whose enum has `tags` variants.
pub fn decode_payload<'a, T: Deserialize<'a>>(payload: &'a [u8], tags: u8) -> Result<T, ErrorCode> {
    check_tag(payload, tags)?;
    match postcard::take_from_bytes::<T>(payload) {
        Ok((msg, [])) => Ok(msg),
        Ok(_) => Err(ErrorCode::WrongLength),
        Err(postcard::Error::DeserializeUnexpectedEnd) => Err(ErrorCode::Truncated),
        Err(_) => Err(ErrorCode::Malformed),
    }
}

/// Decodes a received request frame body (delimiter removed), in place. The same result as
/// [`decode_payload`] (postcard), read by the hand-written `wire` codec.
pub fn decode_request(body: &mut [u8]) -> Result<Request<'_>, ErrorCode> {
    let payload = open_frame(body)?;
    check_tag(payload, REQUEST_TAGS)?;
    match crate::wire::take::<Request<'_>>(payload) {
        Ok((msg, [])) => Ok(msg),
        Ok(_) => Err(ErrorCode::WrongLength),
        Err(ReadError::End) => Err(ErrorCode::Truncated),
        Err(ReadError::Bad) => Err(ErrorCode::Malformed),
    }
}

/// `Request`'s postcard encoding: the variant index, then the fields in declaration order.
impl<'a> Decode<'a> for Request<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, ReadError> {
        Ok(match r.u32()? {
            0 => Request::Hello,
            1 => Request::Classify {
                seq: r.u16()?,
                pixels: r.bytes()?,
            },
            2 => Request::Part {
                offset: r.u32()?,
                pixels: r.bytes()?,
            },
            _ => return Err(ReadError::Bad),
        })
    }
}

impl Response<'_> {
    /// Writes postcard's encoding of the response (variant index, then the fields in
    /// declaration order), by hand.
    fn write(&self, w: &mut Writer<'_>) {
        match self {
            Response::Info(info) => {
                w.varint(0);
                info.write(w);
            }
            Response::Result(c) => {
                w.varint(1);
                w.varint(c.seq.into());
                w.byte(c.class);
                w.varint(c.logits.len() as u64);
                for &l in &c.logits {
                    w.byte(l as u8);
                }
                w.varint(c.cost.into());
            }
            Response::Error(report) => {
                w.varint(2);
                w.byte(report.code as u8);
                w.bytes(report.detail.as_bytes());
            }
            Response::Fault(text) => {
                w.varint(3);
                w.bytes(text.as_bytes());
            }
            Response::Stored(bytes) => {
                w.varint(4);
                w.varint((*bytes).into());
            }
        }
    }
}

impl Info<'_> {
    fn write(&self, w: &mut Writer<'_>) {
        w.varint(self.protocol_version.into());
        w.bytes(self.firmware_version.as_bytes());
        w.bytes(self.board.as_bytes());
        w.varint(self.model_id);
        w.varint(self.blob_len.into());
        w.varint(self.arena_len.into());
        for d in self.input_dims {
            w.varint(d.into());
        }
        w.varint(self.num_classes.into());
        w.varint(self.cost_unit as u64);
        w.varint(self.stack_size.into());
        w.varint(self.stack_hwm.into());
    }
}

/// Number of [`Response`] variants.
pub const RESPONSE_TAGS: u8 = 5;

/// Decodes a received response frame body (delimiter removed), in place.
pub fn decode_response(body: &mut [u8]) -> Result<Response<'_>, ErrorCode> {
    decode_payload(open_frame(body)?, RESPONSE_TAGS)
}

/// Splits a byte stream into frame bodies at `0x00` delimiters, in a fixed buffer of `N` bytes.
#[derive(Debug)]
pub struct Deframer<const N: usize> {
    buf: heapless::Vec<u8, N>,
    /// The body in `buf` was handed out; forget it on the next byte.
    delivered: bool,
    /// The current body did not fit; drop bytes until the next delimiter.
    overflow: bool,
}

impl<const N: usize> Default for Deframer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Deframer<N> {
    /// An empty deframer.
    pub const fn new() -> Self {
        Self {
            buf: heapless::Vec::new(),
            delivered: false,
            overflow: false,
        }
    }

    /// Feeds one byte. At a delimiter, returns the frame body received since the previous one,
    /// or [`ErrorCode::FrameTooLong`] if it did not fit; empty bodies are skipped.
    pub fn push(&mut self, byte: u8) -> Option<Result<&mut [u8], ErrorCode>> {
        if core::mem::take(&mut self.delivered) {
            self.buf.clear();
        }
        if byte != 0 {
            if !self.overflow && self.buf.push(byte).is_err() {
                self.overflow = true;
                self.buf.clear();
            }
            return None;
        }
        if core::mem::take(&mut self.overflow) {
            return Some(Err(ErrorCode::FrameTooLong));
        }
        if self.buf.is_empty() {
            return None;
        }
        self.delivered = true;
        Some(Ok(&mut self.buf))
    }
}

// ---------------------------------------------------------------------------------------------
// Device side
// ---------------------------------------------------------------------------------------------

/// The model behind a [`Server`].
pub trait Engine {
    /// `Ok` when the model was accepted at boot, else why it was refused.
    fn status(&self) -> Result<(), ErrorReport<'_>>;
    /// Current device information (the stack high-water mark changes over time).
    fn info(&self) -> Info<'_>;
    /// Number of pixel bytes a classify request must carry.
    fn input_len(&self) -> usize;
    /// Number of logits [`Engine::classify`] writes.
    fn num_classes(&self) -> usize;
    /// Runs one inference on `pixels` (exactly [`Engine::input_len`] bytes), writing
    /// [`Engine::num_classes`] logits; returns the cost in [`Info::cost_unit`]. Only called
    /// when [`Engine::status`] is `Ok`.
    fn classify(&mut self, pixels: &[u8], logits: &mut [i8]) -> u32;
    /// Stores `pixels` at byte `offset` of the image sent in parts (in bounds, checked by the
    /// caller).
    fn store_part(&mut self, offset: usize, pixels: &[u8]);
    /// [`Engine::classify`] on the image the parts stored.
    fn classify_stored(&mut self, logits: &mut [i8]) -> u32;
}

/// Handles one request frame body and returns the response. `stored` counts the bytes of the
/// image sent in parts so far.
pub fn handle<'e, E: Engine>(
    body: &mut [u8],
    engine: &'e mut E,
    stored: &mut usize,
) -> Response<'e> {
    let request = match decode_request(body) {
        Ok(r) => r,
        Err(code) => return Response::Error(code.into()),
    };
    if engine.status().is_err() {
        // Borrow again inside the returning branch so the later `&mut` use stays legal.
        return match engine.status() {
            Err(report) => Response::Error(report),
            Ok(()) => Response::Error(ErrorCode::Internal.into()),
        };
    }
    match request {
        Request::Hello => Response::Info(engine.info()),
        Request::Part { offset, pixels } => {
            let end = *stored + pixels.len();
            if offset as usize != *stored || end > engine.input_len() {
                *stored = 0;
                return Response::Error(ErrorCode::WrongLength.into());
            }
            engine.store_part(*stored, pixels);
            *stored = end;
            Response::Stored(end as u32)
        }
        Request::Classify { seq, pixels } => {
            let whole = pixels.len() == engine.input_len();
            let parts = pixels.is_empty() && *stored == engine.input_len();
            *stored = 0;
            if !whole && !parts {
                return Response::Error(ErrorCode::WrongLength.into());
            }
            let n = engine.num_classes().min(MAX_CLASSES);
            let mut logits = [0i8; MAX_CLASSES];
            let cost = if whole {
                engine.classify(pixels, &mut logits[..n])
            } else {
                engine.classify_stored(&mut logits[..n])
            };
            let logits = &logits[..n];
            Response::Result(Classification {
                seq,
                class: argmax(logits) as u8,
                logits: heapless::Vec::from_slice(logits).unwrap_or_default(),
                cost,
            })
        }
    }
}

/// The device end of the link: bytes in, response frames out. No I/O, no allocation.
///
/// Holds a [`MAX_FRAME`]-byte receive buffer and about 0.5 KB for the response.
#[derive(Debug)]
pub struct Server {
    rx: Deframer<MAX_FRAME>,
    /// Bytes of the image sent in parts so far.
    stored: usize,
    scratch: [u8; MAX_RESPONSE],
    tx: [u8; cobs_max_len(MAX_RESPONSE) + 1],
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

impl Server {
    /// A server with empty buffers.
    pub const fn new() -> Self {
        Self {
            rx: Deframer::new(),
            stored: 0,
            scratch: [0; MAX_RESPONSE],
            tx: [0; cobs_max_len(MAX_RESPONSE) + 1],
        }
    }

    /// Feeds one received byte; returns a complete response frame to send when the byte ended
    /// a request frame (good or bad).
    pub fn push<E: Engine>(&mut self, byte: u8, engine: &mut E) -> Option<&[u8]> {
        let response = match self.rx.push(byte)? {
            Err(code) => Response::Error(code.into()),
            Ok(body) => handle(body, engine, &mut self.stored),
        };
        let len = encode_response(&response, &mut self.scratch, &mut self.tx);
        Some(&self.tx[..len])
    }
}

/// Encodes `response` into `out`, cutting text to [`MAX_TEXT`]; if it still does not fit,
/// encodes [`ErrorCode::Internal`] instead. Returns the frame length.
pub fn encode_response(response: &Response<'_>, scratch: &mut [u8], out: &mut [u8]) -> usize {
    let cut = |s: &'_ str| -> usize {
        let mut n = s.len().min(MAX_TEXT);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        n
    };
    let shortened;
    let response = match response {
        Response::Error(r) => {
            shortened = Response::Error(ErrorReport {
                code: r.code,
                detail: &r.detail[..cut(r.detail)],
            });
            &shortened
        }
        Response::Fault(s) => {
            shortened = Response::Fault(&s[..cut(s)]);
            &shortened
        }
        other => other,
    };
    write_frame(response, scratch, out)
        .or_else(|_| write_frame(&Response::Error(ErrorCode::Internal.into()), scratch, out))
        .unwrap_or(0)
}

/// [`encode_frame`] for a response, written by hand ([`Response::write`]) rather than by serde.
fn write_frame(
    response: &Response<'_>,
    scratch: &mut [u8],
    out: &mut [u8],
) -> Result<usize, ErrorCode> {
    let mut w = Writer::new(scratch);
    response.write(&mut w);
    let n = w.finish().ok_or(ErrorCode::Internal)?;
    seal_frame(scratch, n, out)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    const PIXELS: usize = 28 * 28;

    /// The frame body (no delimiter) carrying `payload` and its CRC.
    fn frame_body(payload: &[u8], out: &mut [u8]) -> usize {
        let mut raw = payload.to_vec();
        raw.extend(crc32(payload).to_le_bytes());
        cobs_encode(&raw, out).unwrap()
    }

    /// A stand-in model: logit `k` is the wrapped sum of pixels `k, k+10, ...`.
    struct MockEngine {
        refused: bool,
        calls: usize,
        /// The image sent in parts.
        parts: Vec<u8>,
    }

    impl MockEngine {
        fn new() -> Self {
            Self {
                refused: false,
                calls: 0,
                parts: vec![0; PIXELS],
            }
        }

        fn expected(pixels: &[u8]) -> Vec<i8> {
            (0..10)
                .map(|k| {
                    pixels
                        .iter()
                        .skip(k)
                        .step_by(10)
                        .fold(0u8, |a, &p| a.wrapping_add(p)) as i8
                })
                .collect()
        }
    }

    impl Engine for MockEngine {
        fn status(&self) -> Result<(), ErrorReport<'_>> {
            if self.refused {
                Err(ErrorReport {
                    code: ErrorCode::ModelInvalid,
                    detail: "checksum mismatch",
                })
            } else {
                Ok(())
            }
        }

        fn info(&self) -> Info<'_> {
            Info {
                protocol_version: PROTOCOL_VERSION,
                firmware_version: "0.1.0",
                board: "mock",
                model_id: 0xC0FFEE,
                blob_len: 12345,
                arena_len: 4096,
                input_dims: [28, 28, 1],
                num_classes: 10,
                cost_unit: CostUnit::Instructions,
                stack_size: 8192,
                stack_hwm: 1024,
            }
        }

        fn input_len(&self) -> usize {
            PIXELS
        }

        fn num_classes(&self) -> usize {
            10
        }

        fn classify(&mut self, pixels: &[u8], logits: &mut [i8]) -> u32 {
            self.calls += 1;
            logits.copy_from_slice(&Self::expected(pixels));
            1000 + self.calls as u32
        }

        fn store_part(&mut self, offset: usize, pixels: &[u8]) {
            self.parts[offset..offset + pixels.len()].copy_from_slice(pixels);
        }

        fn classify_stored(&mut self, logits: &mut [i8]) -> u32 {
            let image = std::mem::take(&mut self.parts);
            let cost = self.classify(&image, logits);
            self.parts = image;
            cost
        }
    }

    fn frame<T: Serialize>(msg: &T) -> Vec<u8> {
        let mut scratch = vec![0u8; MAX_FRAME];
        let mut out = vec![0u8; MAX_FRAME + 1];
        let n = encode_frame(msg, &mut scratch, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn image(seed: u8) -> Vec<u8> {
        (0..PIXELS)
            .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed))
            .collect()
    }

    /// Feeds `bytes` to `server` and returns the decoded responses (owned copies).
    fn exchange(server: &mut Server, engine: &mut MockEngine, bytes: &[u8]) -> Vec<Owned> {
        let mut frames = Vec::new();
        for &b in bytes {
            if let Some(f) = server.push(b, engine) {
                frames.push(f.to_vec());
            }
        }
        frames
            .into_iter()
            .map(|mut f| {
                assert_eq!(f.pop(), Some(0), "a frame ends with its delimiter");
                assert!(!f.contains(&0), "no 0x00 inside a frame");
                Owned::from(decode_response(&mut f).expect("device frames decode"))
            })
            .collect()
    }

    /// Response without borrows, for comparisons.
    #[derive(Debug, PartialEq)]
    enum Owned {
        Info(u64),
        Result(Classification),
        Error(ErrorCode),
        Fault,
        Stored(u32),
    }

    impl From<Response<'_>> for Owned {
        fn from(r: Response<'_>) -> Self {
            match r {
                Response::Info(i) => Owned::Info(i.model_id),
                Response::Result(c) => Owned::Result(c),
                Response::Error(e) => Owned::Error(e.code),
                Response::Fault(_) => Owned::Fault,
                Response::Stored(n) => Owned::Stored(n),
            }
        }
    }

    fn good_result(seq: u16, pixels: &[u8], cost: u32) -> Owned {
        let logits = MockEngine::expected(pixels);
        Owned::Result(Classification {
            seq,
            class: argmax(&logits) as u8,
            logits: heapless::Vec::from_slice(&logits).unwrap(),
            cost,
        })
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn cobs_known_vectors() {
        // Vectors from the COBS paper / Wikipedia.
        let cases: &[(&[u8], &[u8])] = &[
            (&[], &[0x01]),
            (&[0x00], &[0x01, 0x01]),
            (&[0x00, 0x00], &[0x01, 0x01, 0x01]),
            (&[0x11, 0x22, 0x00, 0x33], &[0x03, 0x11, 0x22, 0x02, 0x33]),
            (&[0x11, 0x00, 0x00, 0x00], &[0x02, 0x11, 0x01, 0x01, 0x01]),
        ];
        for (raw, enc) in cases {
            let mut out = [0u8; 16];
            let n = cobs_encode(raw, &mut out).unwrap();
            assert_eq!(&out[..n], *enc, "encode {raw:02x?}");
            let mut buf = enc.to_vec();
            let m = cobs_decode_in_place(&mut buf).unwrap();
            assert_eq!(&buf[..m], *raw, "decode {enc:02x?}");
        }
    }

    #[test]
    fn cobs_long_runs() {
        for len in [253, 254, 255, 256, 508, 509, 1000] {
            let raw: Vec<u8> = (0..len).map(|i| (i % 255 + 1) as u8).collect();
            let mut out = vec![0u8; cobs_max_len(len)];
            let n = cobs_encode(&raw, &mut out).unwrap();
            assert!(!out[..n].contains(&0));
            let mut buf = out[..n].to_vec();
            let m = cobs_decode_in_place(&mut buf).unwrap();
            assert_eq!(&buf[..m], &raw[..], "len {len}");
        }
        let mut small = [0u8; 3];
        assert_eq!(cobs_encode(&[1, 2, 3], &mut small), None);
    }

    #[test]
    fn cobs_rejects_bad_bodies() {
        assert_eq!(
            cobs_decode_in_place(&mut [0x05, 1, 2]),
            Err(ErrorCode::Cobs)
        );
        assert_eq!(
            cobs_decode_in_place(&mut [0x03, 0, 2]),
            Err(ErrorCode::Cobs)
        );
        assert_eq!(cobs_decode_in_place(&mut [0x00]), Err(ErrorCode::Cobs));
    }

    #[test]
    fn request_round_trip() {
        let pixels = image(7);
        for req in [
            Request::Hello,
            Request::Classify {
                seq: 513,
                pixels: &pixels,
            },
            Request::Part {
                offset: 70_000,
                pixels: &pixels[..300],
            },
        ] {
            let mut f = frame(&req);
            assert!(f.len() <= MAX_FRAME + 1);
            assert_eq!(f.pop(), Some(0));
            assert_eq!(decode_request(&mut f).unwrap(), req);
        }
    }

    #[test]
    fn response_round_trip() {
        let engine = MockEngine::new();
        let responses = [
            Response::Info(engine.info()),
            Response::Result(Classification {
                seq: 9,
                class: 3,
                logits: heapless::Vec::from_slice(&[-128, 0, 5, 127]).unwrap(),
                cost: u32::MAX,
            }),
            Response::Error(ErrorReport {
                code: ErrorCode::ModelInvalid,
                detail: "bad magic",
            }),
            Response::Fault("panicked at src/main.rs:1:1"),
        ];
        for resp in responses {
            let mut scratch = [0u8; MAX_RESPONSE];
            let mut out = [0u8; MAX_FRAME];
            let n = encode_response(&resp, &mut scratch, &mut out);
            assert_eq!(decode_response(&mut out[..n - 1]).unwrap(), resp);
        }
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let text = "é".repeat(MAX_TEXT);
        let mut scratch = [0u8; MAX_RESPONSE];
        let mut out = [0u8; MAX_FRAME];
        let n = encode_response(&Response::Fault(&text), &mut scratch, &mut out);
        match decode_response(&mut out[..n - 1]).unwrap() {
            Response::Fault(s) => assert!(s.len() <= MAX_TEXT && s.len() >= MAX_TEXT - 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_codes_are_stable() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(*code as u8, i as u8 + 1);
            assert_eq!(ErrorCode::from_u8(*code as u8), Some(*code));
        }
        assert_eq!(ErrorCode::from_u8(0), None);
    }

    #[test]
    fn server_answers_hello_and_classify() {
        let mut server = Server::new();
        let mut engine = MockEngine::new();
        let pixels = image(3);
        let mut bytes = frame(&Request::Hello);
        bytes.extend(frame(&Request::Classify {
            seq: 1,
            pixels: &pixels,
        }));
        bytes.extend(frame(&Request::Classify {
            seq: 2,
            pixels: &pixels,
        }));
        let got = exchange(&mut server, &mut engine, &bytes);
        assert_eq!(
            got,
            [
                Owned::Info(0xC0FFEE),
                good_result(1, &pixels, 1001),
                good_result(2, &pixels, 1002)
            ]
        );
    }

    /// Every class of bad frame gets its error code, and the next good frame is served.
    #[test]
    fn server_refuses_bad_frames_and_keeps_serving() {
        let pixels = image(5);
        let good = frame(&Request::Classify {
            seq: 7,
            pixels: &pixels,
        });
        let body = |f: &[u8]| f[..f.len() - 1].to_vec();
        let with_payload = |payload: &[u8]| {
            let mut p = payload.to_vec();
            p.extend(crc32(payload).to_le_bytes());
            let mut out = vec![0u8; cobs_max_len(p.len()) + 1];
            let n = cobs_encode(&p, &mut out).unwrap();
            out[n] = 0;
            out.truncate(n + 1);
            out
        };

        let mut bad_crc = body(&good);
        bad_crc[100] ^= 0x01;
        if bad_crc[100] == 0 {
            bad_crc[100] = 0x55;
        }
        bad_crc.push(0);

        let mut truncated = body(&good);
        truncated.truncate(400);
        truncated.push(0);

        // The first COBS code points past the end of the body.
        let bad_cobs = vec![0x09, 1, 2, 0];

        let short_pixels = frame(&Request::Classify {
            seq: 8,
            pixels: &pixels[..783],
        });
        let mut trailing = vec![0u8; 8];
        let n = postcard::to_slice(&Request::Hello, &mut trailing)
            .unwrap()
            .len();
        trailing.truncate(n);
        trailing.push(42);

        let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
            ("bad CRC", bad_crc, ErrorCode::Crc),
            // Cut inside a COBS run: the last code points past the end.
            ("truncated frame", truncated, ErrorCode::Cobs),
            (
                "tiny frame",
                with_payload(&[])[..].to_vec(),
                ErrorCode::Truncated,
            ),
            ("bad COBS", bad_cobs, ErrorCode::Cobs),
            ("wrong pixel count", short_pixels, ErrorCode::WrongLength),
            (
                "trailing bytes",
                with_payload(&trailing),
                ErrorCode::WrongLength,
            ),
            ("unknown tag", with_payload(&[7]), ErrorCode::UnknownTag),
            (
                "unknown tag varint",
                with_payload(&[0x80, 0x01]),
                ErrorCode::UnknownTag,
            ),
            (
                "message cut short",
                with_payload(&[1, 5]),
                ErrorCode::Truncated,
            ),
            (
                "bad varint",
                with_payload(&[1, 0xFF, 0xFF, 0xFF, 0xFF]),
                ErrorCode::Malformed,
            ),
            (
                "too long",
                {
                    let mut v = vec![0x11; MAX_FRAME + 10];
                    v.push(0);
                    v
                },
                ErrorCode::FrameTooLong,
            ),
        ];
        let mut server = Server::new();
        let mut engine = MockEngine::new();
        for (name, bytes, code) in cases {
            let got = exchange(&mut server, &mut engine, &bytes);
            assert_eq!(got, [Owned::Error(code)], "{name}");
            let got = exchange(&mut server, &mut engine, &good);
            assert!(
                matches!(got[..], [Owned::Result(ref c)] if c.seq == 7),
                "{name}: then {got:?}"
            );
        }
    }

    #[test]
    fn empty_frames_are_ignored_and_resync_works() {
        let mut server = Server::new();
        let mut engine = MockEngine::new();
        // Garbage without a delimiter, a lone delimiter, then a good frame: one error, one info.
        let mut bytes = vec![0x00, 0x00, 0x37, 0x99];
        bytes.push(0);
        bytes.extend([0, 0, 0]);
        bytes.extend(frame(&Request::Hello));
        let got = exchange(&mut server, &mut engine, &bytes);
        assert_eq!(got, [Owned::Error(ErrorCode::Cobs), Owned::Info(0xC0FFEE)]);
    }

    #[test]
    fn refused_model_answers_every_request_with_its_error() {
        let mut server = Server::new();
        let mut engine = MockEngine {
            refused: true,
            ..MockEngine::new()
        };
        let pixels = image(1);
        let mut bytes = frame(&Request::Hello);
        bytes.extend(frame(&Request::Classify {
            seq: 1,
            pixels: &pixels,
        }));
        let got = exchange(&mut server, &mut engine, &bytes);
        assert_eq!(
            got,
            [
                Owned::Error(ErrorCode::ModelInvalid),
                Owned::Error(ErrorCode::ModelInvalid)
            ]
        );
        assert_eq!(engine.calls, 0, "a refused model runs nothing");
    }

    #[test]
    fn frame_size_limits_hold() {
        let big = vec![0xFFu8; 4096];
        let part = frame(&Request::Part {
            offset: u32::MAX,
            pixels: &big[..PART_PIXELS],
        });
        assert!(part.len() <= MAX_FRAME + 1, "{}", part.len());
        let largest = (0..2048).rev().find(|&n| fits_one_frame(n)).unwrap();
        let one = frame(&Request::Classify {
            seq: u16::MAX,
            pixels: &big[..largest],
        });
        assert!(one.len() <= MAX_FRAME + 1, "{}", one.len());
        assert!(fits_one_frame(PIXELS) && !fits_one_frame(1024));
    }

    #[test]
    fn an_image_in_parts_is_classified_as_in_one_frame() {
        let pixels = image(9);
        let part = |offset: usize, end: usize| {
            frame(&Request::Part {
                offset: offset as u32,
                pixels: &pixels[offset..end],
            })
        };
        let classify_stored = frame(&Request::Classify {
            seq: 8,
            pixels: &[],
        });
        let mut server = Server::new();
        let mut engine = MockEngine::new();
        let mut bytes = part(0, 300);
        bytes.extend(part(300, 700));
        bytes.extend(part(700, PIXELS));
        bytes.extend(&classify_stored);
        let got = exchange(&mut server, &mut engine, &bytes);
        assert_eq!(
            got,
            [
                Owned::Stored(300),
                Owned::Stored(700),
                Owned::Stored(PIXELS as u32),
                good_result(8, &pixels, 1001)
            ]
        );
        // Out of order, past the end, or classified before the last part: refused, and the
        // parts so far are forgotten.
        let mut bytes = part(0, 300);
        bytes.extend(part(400, 700));
        bytes.extend(part(300, 700));
        bytes.extend(&classify_stored);
        let got = exchange(&mut server, &mut engine, &bytes);
        let wrong = || Owned::Error(ErrorCode::WrongLength);
        assert_eq!(got, [Owned::Stored(300), wrong(), wrong(), wrong()]);
        let mut past_end = part(0, 700);
        past_end.extend(frame(&Request::Part {
            offset: 700,
            pixels: &[1; PIXELS],
        }));
        let got = exchange(&mut server, &mut engine, &past_end);
        assert_eq!(got, [Owned::Stored(700), wrong()]);
        let got = exchange(&mut server, &mut engine, &classify_stored);
        assert_eq!(got, [wrong()]);
        assert_eq!(engine.calls, 1);
    }

    #[test]
    fn argmax_takes_lowest_index_on_ties() {
        assert_eq!(argmax(&[1, 5, 5, -3]), 1);
        assert_eq!(argmax(&[-128; 4]), 0);
        assert_eq!(argmax(&[]), 0);
    }

    proptest! {
        /// Any byte stream: the server never panics and answers every non-empty frame with
        /// exactly one response, and a good frame afterwards is still served.
        #[test]
        fn any_bytes_get_one_answer_per_frame(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let mut server = Server::new();
            let mut engine = MockEngine::new();
            let got = exchange(&mut server, &mut engine, &bytes);
            let frames = bytes.split(|&b| b == 0).count() - 1; // bodies that got a delimiter
            let empty = bytes.split(|&b| b == 0).rev().skip(1).filter(|b| b.is_empty()).count();
            prop_assert_eq!(got.len(), frames - empty);
            let mut tail = vec![0u8];
            tail.extend(frame(&Request::Hello));
            // The leading 0x00 ends any unterminated garbage (answered with an error).
            let got = exchange(&mut server, &mut engine, &tail);
            prop_assert!(got.len() <= 2 && got.last() == Some(&Owned::Info(0xC0FFEE)), "{:?}", got);
        }

        /// The hand-written request reader gives postcard's answer on any payload: the same
        /// request, or the same error code.
        #[test]
        fn requests_read_as_postcard_reads_them(
            payload in proptest::collection::vec(any::<u8>(), 0..40),
            len in 0usize..40,
            tag in 0u8..4,
        ) {
            // Random bytes, and well-formed classify headers with random lengths.
            let mut shaped = vec![tag];
            shaped.extend(postcard::to_allocvec(&(len as u16)).unwrap());
            shaped.extend(postcard::to_allocvec(&len).unwrap());
            shaped.extend(&payload);
            for p in [&payload[..], &shaped[..]] {
                let mut body = [0u8; 200];
                let n = frame_body(p, &mut body);
                let theirs = decode_payload::<Request<'_>>(p, REQUEST_TAGS);
                prop_assert_eq!(decode_request(&mut body[..n]), theirs);
            }
        }

        /// The hand-written response writer gives postcard's bytes.
        #[test]
        fn responses_are_written_as_postcard_writes_them(
            which in 0u8..5,
            n in any::<u32>(),
            wide in any::<u64>(),
            text in "[a-zé ]{0,40}",
            logits in proptest::collection::vec(any::<i8>(), 0..=MAX_CLASSES),
        ) {
            let info = Info {
                protocol_version: n as u16,
                firmware_version: &text,
                board: "mps2-an386",
                model_id: wide,
                blob_len: n,
                arena_len: n >> 7,
                input_dims: [n as u16, (n >> 16) as u16, 3],
                num_classes: (n >> 3) as u16,
                cost_unit: if n % 2 == 0 { CostUnit::Instructions } else { CostUnit::Cycles },
                stack_size: n >> 14,
                stack_hwm: n >> 21,
            };
            let response = match which {
                0 => Response::Info(info),
                1 => Response::Result(Classification {
                    seq: n as u16,
                    class: (n >> 16) as u8,
                    logits: heapless::Vec::from_slice(&logits).unwrap(),
                    cost: n,
                }),
                2 => Response::Error(ErrorReport { code: ErrorCode::ALL[n as usize % 10], detail: &text }),
                3 => Response::Stored(n),
                _ => Response::Fault(&text),
            };
            let (mut scratch, mut ours, mut theirs) = ([0u8; MAX_RESPONSE], [0u8; 300], [0u8; 300]);
            let a = encode_response(&response, &mut scratch, &mut ours);
            let b = encode_frame(&response, &mut scratch, &mut theirs).unwrap();
            prop_assert_eq!(&ours[..a], &theirs[..b]);
        }

        /// A good frame with one byte flipped is refused (never misread as another request).
        #[test]
        fn one_corrupted_byte_is_refused(seed in any::<u8>(), at in 0usize..800, xor in 1u8..=255) {
            let pixels = image(seed);
            let mut f = frame(&Request::Classify { seq: 3, pixels: &pixels });
            let at = at % (f.len() - 1);
            f[at] ^= xor;
            let mut server = Server::new();
            let mut engine = MockEngine::new();
            let got = exchange(&mut server, &mut engine, &f);
            prop_assert!(!got.is_empty());
            prop_assert!(got.iter().all(|r| matches!(r, Owned::Error(_))), "{:?}", got);
            prop_assert_eq!(engine.calls, 0);
        }
    }
}
