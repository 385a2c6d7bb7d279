//! LEB128 varints: the integer encoding of the object index and of packed site rows.
//!
//! Small numbers (counts, lines, generations, deltas) take one or two bytes instead of eight.

/// Appends `value` to `output` as a varint.
pub fn write(output: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        output.push((value as u8) | 0x80);
        value >>= 7;
    }
    output.push(value as u8);
}

/// Reads a varint from the front of `input` and advances past it; `None` if `input` ends
/// inside the varint or the varint is longer than a `u64` (more than ten bytes, or a tenth
/// byte carrying more than the 64th bit).
pub fn read(input: &mut &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        if shift == 63 && byte > 1 {
            // Bits beyond the 64th: a damaged or foreign varint, not a number to truncate.
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_varint_round_trips_edges() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut bytes = Vec::new();
            write(&mut bytes, value);
            let mut input = bytes.as_slice();
            assert_eq!(read(&mut input), Some(value));
            assert!(input.is_empty());
        }
    }

    #[test]
    fn test_varint_read_rejects_truncated_input() {
        let mut bytes = Vec::new();
        write(&mut bytes, 1 << 20);
        bytes.pop();
        assert_eq!(read(&mut bytes.as_slice()), None);
        assert_eq!(read(&mut [0xff_u8; 11].as_slice()), None);
    }

    #[test]
    fn test_varint_read_rejects_bits_beyond_64() {
        // u64::MAX is nine bytes of 0xff and a tenth of 0x01; 0x02 there would be bit 64.
        let mut max = vec![0xff_u8; 9];
        max.push(0x01);
        assert_eq!(read(&mut max.as_slice()), Some(u64::MAX));
        for tenth in [0x02_u8, 0x7f, 0x40] {
            let mut bytes = vec![0x80_u8; 9];
            bytes.push(tenth);
            assert_eq!(read(&mut bytes.as_slice()), None, "tenth byte {tenth:#x}");
        }
    }

    proptest::proptest! {
        /// Any bytes: a varint read is either refused or the number whose canonical encoding
        /// has the same value, and never reads past the input.
        #[test]
        fn test_varint_read_of_arbitrary_bytes_is_exact(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..16),
        ) {
            let mut input = bytes.as_slice();
            if let Some(value) = read(&mut input) {
                let consumed = bytes.len() - input.len();
                proptest::prop_assert!(consumed <= 10);
                // Recompute from the consumed bytes with 128-bit arithmetic: nothing dropped.
                let exact = bytes[..consumed]
                    .iter()
                    .enumerate()
                    .fold(0u128, |sum, (index, byte)| {
                        sum | (u128::from(byte & 0x7f) << (7 * index))
                    });
                proptest::prop_assert_eq!(u128::from(value), exact);
            }
        }

        #[test]
        fn test_varint_round_trips_any_value(value in proptest::prelude::any::<u64>()) {
            let mut bytes = Vec::new();
            write(&mut bytes, value);
            let mut input = bytes.as_slice();
            proptest::prop_assert_eq!(read(&mut input), Some(value));
            proptest::prop_assert!(input.is_empty());
        }
    }
}
