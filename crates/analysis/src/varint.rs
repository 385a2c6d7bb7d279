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
/// inside the varint or the varint is longer than a `u64`.
pub fn read(input: &mut &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
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
}
