//! [`Dims`] (NHWC, one image) and [`Pad`].

use serde::{Deserialize, Serialize};

/// Tensor dimensions of one image, NHWC with N = 1: `h x w x c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dims {
    /// Height.
    pub h: u16,
    /// Width.
    pub w: u16,
    /// Channels.
    pub c: u16,
}

impl Dims {
    /// `h * w * c`.
    pub fn len(&self) -> usize {
        self.h as usize * self.w as usize * self.c as usize
    }
    /// Whether the tensor is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Padding `[top, left, bottom, right]`.
pub type Pad = [u8; 4];
