//! The compact per-dump object index that diffs read: one entry per heap object.
//!
//! Entries are written in dump order into self-contained chunks of about [`CHUNK_TARGET_BYTES`],
//! each a version byte, an entry count and varint-encoded entries (address as a zig-zag delta
//! from the previous entry, so a typical entry takes 10-14 bytes instead of 40). Chunks can be
//! stored and decoded independently, which keeps ingest memory bounded and lets a remote store
//! keep them as bounded blobs.

use crate::varint;
use serde::{Deserialize, Serialize};

/// Target size of one encoded chunk.
pub const CHUNK_TARGET_BYTES: usize = 1024 * 1024;

/// Format version written as the first byte of each chunk.
const CHUNK_VERSION: u8 = 1;

/// Marks an absent generation in [`IndexEntry::generation`]'s encoding.
pub(crate) const NO_GENERATION: u32 = u32::MAX;

/// One heap object as a diff needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Slot address (unique within one dump only).
    pub address: u64,
    /// `object_id` where Ruby wrote it.
    pub object_id: Option<u64>,
    /// Index into the dump's index site table ([`crate::DumpAggregates::index_sites`]).
    pub site: u32,
    /// GC count at allocation, when allocation tracing was on.
    pub generation: Option<u32>,
    /// Bytes held.
    pub memsize: u64,
    /// STRING bytes (0 for other types).
    pub bytesize: u64,
}

/// Why an index chunk could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The chunk was written by an unknown format version.
    #[error("object index chunk has unknown version {0}")]
    UnknownVersion(u8),
    /// The chunk ends in the middle of an entry.
    #[error("object index chunk is truncated")]
    Truncated,
}

/// Encodes entries into chunks and hands each full chunk to `sink`.
pub struct IndexEncoder<S: FnMut(Vec<u8>)> {
    sink: S,
    body: Vec<u8>,
    entries_in_chunk: u64,
    previous_address: u64,
    chunks_written: u64,
}

impl<S: FnMut(Vec<u8>)> IndexEncoder<S> {
    /// Returns an encoder that passes finished chunks to `sink`.
    pub fn new(sink: S) -> Self {
        IndexEncoder {
            sink,
            body: Vec::with_capacity(CHUNK_TARGET_BYTES + 64),
            entries_in_chunk: 0,
            previous_address: 0,
            chunks_written: 0,
        }
    }

    /// Appends one entry, flushing the chunk once it reaches its target size.
    pub fn push(&mut self, entry: &IndexEntry) {
        let delta = entry.address.wrapping_sub(self.previous_address) as i64;
        self.previous_address = entry.address;
        // Encode into a stack buffer and append once: six varints of at most 10 bytes each.
        let mut encoded = [0u8; 60];
        let mut length = 0;
        for value in [
            zigzag(delta),
            u64::from(entry.site),
            entry
                .generation
                .map_or(0, |generation| u64::from(generation) + 1),
            entry.memsize,
            entry.bytesize,
            entry
                .object_id
                .map_or(0, |object_id| object_id.saturating_add(1)),
        ] {
            length += write_varint_into(&mut encoded[length..], value);
        }
        self.body.extend_from_slice(&encoded[..length]);
        self.entries_in_chunk += 1;
        if self.body.len() >= CHUNK_TARGET_BYTES {
            self.flush();
        }
    }

    /// Flushes the last partial chunk and returns how many chunks were written.
    pub fn finish(mut self) -> u64 {
        if self.entries_in_chunk > 0 {
            self.flush();
        }
        self.chunks_written
    }

    fn flush(&mut self) {
        let mut chunk = Vec::with_capacity(self.body.len() + 11);
        chunk.push(CHUNK_VERSION);
        write_varint(&mut chunk, self.entries_in_chunk);
        chunk.extend_from_slice(&self.body);
        (self.sink)(chunk);
        self.body.clear();
        self.entries_in_chunk = 0;
        self.previous_address = 0;
        self.chunks_written += 1;
    }
}

/// Decodes one chunk, appending its entries to `entries`.
pub fn decode_chunk(chunk: &[u8], entries: &mut Vec<IndexEntry>) -> Result<(), IndexError> {
    let (&version, mut rest) = chunk.split_first().ok_or(IndexError::Truncated)?;
    if version != CHUNK_VERSION {
        return Err(IndexError::UnknownVersion(version));
    }
    let count = read_varint(&mut rest)?;
    entries.reserve(usize::try_from(count).unwrap_or(0).min(rest.len()));
    let mut previous_address: u64 = 0;
    for _ in 0..count {
        let address = previous_address.wrapping_add(unzigzag(read_varint(&mut rest)?) as u64);
        previous_address = address;
        let site = u32::try_from(read_varint(&mut rest)?).map_err(|_| IndexError::Truncated)?;
        let generation = match read_varint(&mut rest)? {
            0 => None,
            stored => Some(u32::try_from(stored - 1).map_err(|_| IndexError::Truncated)?),
        };
        let memsize = read_varint(&mut rest)?;
        let bytesize = read_varint(&mut rest)?;
        let object_id = match read_varint(&mut rest)? {
            0 => None,
            stored => Some(stored - 1),
        };
        entries.push(IndexEntry {
            address,
            object_id,
            site,
            generation,
            memsize,
            bytesize,
        });
    }
    Ok(())
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Writes `value` as a varint at the start of `output` (at least 10 bytes); returns its length.
#[inline(always)]
fn write_varint_into(output: &mut [u8], mut value: u64) -> usize {
    let mut length = 0;
    while value >= 0x80 {
        output[length] = (value as u8) | 0x80;
        value >>= 7;
        length += 1;
    }
    output[length] = value as u8;
    length + 1
}

fn write_varint(output: &mut Vec<u8>, value: u64) {
    varint::write(output, value);
}

fn read_varint(input: &mut &[u8]) -> Result<u64, IndexError> {
    varint::read(input).ok_or(IndexError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(address: u64, generation: Option<u32>, object_id: Option<u64>) -> IndexEntry {
        IndexEntry {
            address,
            object_id,
            site: 7,
            generation,
            memsize: 40,
            bytesize: 3,
        }
    }

    #[test]
    fn test_index_round_trips_through_chunks() {
        let entries: Vec<IndexEntry> = (0..300_000u64)
            .map(|index| {
                let address = (0x7f00_0000_0000 + index * 40) ^ (index % 7 * 0x1000);
                entry(
                    address,
                    (index % 3 != 0).then_some(index as u32),
                    (index % 5 == 0).then_some(index * 8),
                )
            })
            .chain([
                entry(0, Some(u32::MAX - 1), Some(u64::MAX - 1)),
                entry(u64::MAX, None, Some(0)),
            ])
            .collect();
        let mut chunks = Vec::new();
        let mut encoder = IndexEncoder::new(|chunk| chunks.push(chunk));
        for entry in &entries {
            encoder.push(entry);
        }
        let chunk_count = encoder.finish();
        assert!(chunk_count > 1, "the test must span chunks");
        assert_eq!(chunk_count as usize, chunks.len());
        let mut decoded = Vec::new();
        for chunk in &chunks {
            decode_chunk(chunk, &mut decoded).unwrap();
        }
        assert_eq!(decoded, entries);
    }

    #[test]
    fn test_decode_chunk_rejects_damaged_input() {
        let mut chunks = Vec::new();
        let mut encoder = IndexEncoder::new(|chunk| chunks.push(chunk));
        encoder.push(&entry(0x1000, Some(1), None));
        encoder.finish();
        let chunk = &chunks[0];
        assert_eq!(
            decode_chunk(&chunk[..chunk.len() - 1], &mut Vec::new()),
            Err(IndexError::Truncated)
        );
        let mut wrong_version = chunk.clone();
        wrong_version[0] = 9;
        assert_eq!(
            decode_chunk(&wrong_version, &mut Vec::new()),
            Err(IndexError::UnknownVersion(9))
        );
        assert_eq!(
            decode_chunk(&[], &mut Vec::new()),
            Err(IndexError::Truncated)
        );
    }
}
