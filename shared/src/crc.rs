//! CRC-32 (IEEE 802.3): the blob header's checksum and the serial protocol's frame check.

/// The CRC of each 4-bit value: a 64-byte table, a sixteenth of the usual byte table's flash
/// for two lookups per byte (the blob is checked once at boot, frames are short).
const NIBBLE_TABLE: [u32; 16] = {
    let mut t = [0u32; 16];
    let mut i = 0;
    while i < 16 {
        let mut c = i as u32;
        let mut j = 0;
        while j < 4 {
            c = (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg());
            j += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320, init and xorout 0xFFFFFFFF), low nibble
/// first.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        crc = NIBBLE_TABLE[(crc & 0xf) as usize] ^ (crc >> 4);
        crc = NIBBLE_TABLE[(crc & 0xf) as usize] ^ (crc >> 4);
    }
    !crc
}

#[cfg(test)]
mod tests {
    extern crate std;

    use proptest::prelude::*;

    use super::*;

    /// The textbook bitwise CRC-32, the reference twin of the table walk.
    fn crc32_bitwise(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
            }
        }
        !crc
    }

    #[test]
    fn crc_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    proptest! {
        #[test]
        fn equals_the_bitwise_crc(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(crc32(&data), crc32_bitwise(&data));
        }
    }
}
