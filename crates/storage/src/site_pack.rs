//! Packed site rows: a dump's site x generation rows as a few self-contained blobs, so that a
//! remote store returns a dump's sites as one or two cells instead of hundreds of rows.
//!
//! The fleet-wide leak report reads every site row of every dump in scope (1,000 processes x
//! 10 dumps is about 2.3 million rows). Read as CQL rows, each costs the server a clustering
//! row and the driver ten column values; packed, a dump costs one cell per block.
//!
//! A block holds up to [`ROWS_PER_BLOCK`] rows, in the order given (the store sorts them by site
//! then generation first), so a block stays well under the size a CQL server accepts in one
//! mutation even for dumps with a hundred thousand sites. Layout, integers as varints:
//!
//! ```text
//! version (one byte, 1)
//! string count, then each string: byte length, UTF-8 bytes
//! row count, then each row:
//!   same_site (1: the previous row's site; 0: a site follows)
//!   [site: file (0 = none, else string index + 1), line (0 = none, else line + 1),
//!          object type code, class name (0 = none, else string index + 1)]
//!   generation (0 = none, else generation + 1), count, memsize, bytesize, references
//! ```

use std::collections::HashMap;

use heapfleet_analysis::{SiteGenerationStats, SiteKey, Totals, varint};
use heapfleet_dump::ObjectType;

use crate::error::{Result, StorageError};

/// Rows per block: a block of typical sites is 100-300 KiB.
pub(crate) const ROWS_PER_BLOCK: usize = 4096;

/// The layout version written in each block's first byte.
const VERSION: u8 = 1;

/// Encodes `rows` (at most [`ROWS_PER_BLOCK`] of them) as one block.
pub(crate) fn encode_block(rows: &[SiteGenerationStats]) -> Vec<u8> {
    let mut strings = StringTable::default();
    let mut body = Vec::with_capacity(rows.len() * 16);
    varint::write(&mut body, rows.len() as u64);
    let mut previous: Option<&SiteKey> = None;
    for row in rows {
        if previous == Some(&row.site) {
            body.push(1);
        } else {
            body.push(0);
            varint::write(&mut body, strings.reference(row.site.file.as_deref()));
            varint::write(
                &mut body,
                row.site.line.map_or(0, |line| u64::from(line) + 1),
            );
            body.push(row.site.object_type.code());
            varint::write(&mut body, strings.reference(row.site.class_name.as_deref()));
        }
        previous = Some(&row.site);
        varint::write(
            &mut body,
            row.generation
                .map_or(0, |generation| u64::from(generation) + 1),
        );
        for value in [
            row.totals.count,
            row.totals.memsize,
            row.totals.bytesize,
            row.totals.references,
        ] {
            varint::write(&mut body, value);
        }
    }
    let mut block = Vec::with_capacity(body.len() + strings.bytes + 8);
    block.push(VERSION);
    varint::write(&mut block, strings.texts.len() as u64);
    for text in strings.texts {
        varint::write(&mut block, text.len() as u64);
        block.extend_from_slice(text.as_bytes());
    }
    block.extend_from_slice(&body);
    block
}

/// A block's strings, each stored once and referred to by position.
#[derive(Default)]
struct StringTable<'a> {
    texts: Vec<&'a str>,
    positions: HashMap<&'a str, u64>,
    bytes: usize,
}

impl<'a> StringTable<'a> {
    /// Returns the reference to write for `text`: 0 for none, else its position + 1.
    fn reference(&mut self, text: Option<&'a str>) -> u64 {
        let Some(text) = text else {
            return 0;
        };
        let position = *self.positions.entry(text).or_insert_with(|| {
            self.texts.push(text);
            self.bytes += text.len() + 2;
            self.texts.len() as u64 - 1
        });
        position + 1
    }
}

/// Decodes a block written by [`encode_block`], appending its rows to `rows`. A damaged block
/// is an internal error naming the dump and the block.
pub(crate) fn decode_block(
    dump: &str,
    block_number: i32,
    block: &[u8],
    rows: &mut Vec<SiteGenerationStats>,
) -> Result<()> {
    let damaged = |what: &str| {
        StorageError::internal_message(format!(
            "packed site rows of dump {dump}, block {block_number}: {what}"
        ))
    };
    let Some((&version, mut input)) = block.split_first() else {
        return Err(damaged("the block is empty"));
    };
    if version != VERSION {
        return Err(damaged(&format!("unknown layout version {version}")));
    }
    let next = |input: &mut &[u8]| varint::read(input).ok_or_else(|| damaged("truncated"));
    let string_count = next(&mut input)?;
    let mut strings = Vec::with_capacity(usize::try_from(string_count).unwrap_or(0).min(65_536));
    for _ in 0..string_count {
        let length = usize::try_from(next(&mut input)?).map_err(|_| damaged("string too long"))?;
        if length > input.len() {
            return Err(damaged("truncated string"));
        }
        let (text, rest) = input.split_at(length);
        input = rest;
        let text = std::str::from_utf8(text).map_err(|_| damaged("a string is not UTF-8"))?;
        strings.push(text.to_owned());
    }
    let string = |reference: u64| -> Result<Option<String>> {
        match reference {
            0 => Ok(None),
            reference => usize::try_from(reference - 1)
                .ok()
                .and_then(|position| strings.get(position))
                .map(|text| Some(text.clone()))
                .ok_or_else(|| damaged("a string reference is out of range")),
        }
    };
    let small = |value: u64, what: &str| -> Result<u32> {
        u32::try_from(value).map_err(|_| damaged(&format!("{what} {value} is out of range")))
    };
    let row_count = next(&mut input)?;
    rows.reserve(usize::try_from(row_count).unwrap_or(0).min(ROWS_PER_BLOCK));
    let mut site: Option<SiteKey> = None;
    for _ in 0..row_count {
        let (&same_site, rest) = input.split_first().ok_or_else(|| damaged("truncated"))?;
        input = rest;
        match same_site {
            1 if site.is_some() => {}
            0 => {
                let file = string(next(&mut input)?)?;
                let line = match next(&mut input)? {
                    0 => None,
                    line => Some(small(line - 1, "line")?),
                };
                let (&code, rest) = input.split_first().ok_or_else(|| damaged("truncated"))?;
                input = rest;
                let object_type = ObjectType::from_code(code)
                    .ok_or_else(|| damaged(&format!("unknown object type code {code}")))?;
                let class_name = string(next(&mut input)?)?;
                site = Some(SiteKey {
                    file,
                    line,
                    object_type,
                    class_name,
                });
            }
            _ => return Err(damaged("a row's site marker is invalid")),
        }
        let generation = match next(&mut input)? {
            0 => None,
            generation => Some(small(generation - 1, "generation")?),
        };
        let totals = Totals {
            count: next(&mut input)?,
            memsize: next(&mut input)?,
            bytesize: next(&mut input)?,
            references: next(&mut input)?,
        };
        rows.push(SiteGenerationStats {
            site: site.clone().expect("a site was read or carried over"),
            generation,
            totals,
        });
    }
    if !input.is_empty() {
        return Err(damaged("bytes left after the last row"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        file: Option<&str>,
        line: Option<u32>,
        class_name: Option<&str>,
        generation: Option<u32>,
        count: u64,
    ) -> SiteGenerationStats {
        SiteGenerationStats {
            site: SiteKey {
                file: file.map(str::to_owned),
                line,
                object_type: ObjectType::String,
                class_name: class_name.map(str::to_owned),
            },
            generation,
            totals: Totals {
                count,
                memsize: count * 40,
                bytesize: u64::MAX,
                references: 0,
            },
        }
    }

    fn sample_rows() -> Vec<SiteGenerationStats> {
        vec![
            row(None, None, None, None, 3),
            row(Some(""), Some(0), Some(""), Some(0), 1),
            row(Some("app/a.rb"), Some(7), Some("String"), Some(4), 10),
            row(
                Some("app/a.rb"),
                Some(7),
                Some("String"),
                Some(u32::MAX - 1),
                11,
            ),
            row(Some("app/a.rb"), Some(u32::MAX - 1), None, None, 12),
            row(Some("app/é.rb"), None, Some("String"), Some(5), 13),
        ]
    }

    #[test]
    fn test_site_pack_round_trips_every_kind_of_row() {
        let rows = sample_rows();
        let block = encode_block(&rows);
        let mut decoded = Vec::new();
        decode_block("d", 0, &block, &mut decoded).unwrap();
        assert_eq!(decoded, rows);
    }

    #[test]
    fn test_site_pack_round_trips_an_empty_block() {
        let mut decoded = vec![row(None, None, None, None, 1)];
        decode_block("d", 0, &encode_block(&[]), &mut decoded).unwrap();
        assert_eq!(decoded.len(), 1, "an empty block appends nothing");
    }

    #[test]
    fn test_site_pack_shares_strings_between_rows() {
        let rows: Vec<_> = (0..100)
            .map(|line| {
                row(
                    Some("a/long/path/to/some/file.rb"),
                    Some(line),
                    Some("Klass"),
                    None,
                    1,
                )
            })
            .collect();
        let block = encode_block(&rows);
        let path = b"a/long/path/to/some/file.rb";
        let copies = block
            .windows(path.len())
            .filter(|window| window == path)
            .count();
        assert_eq!(copies, 1, "the file is stored once");
        let mut decoded = Vec::new();
        decode_block("d", 0, &block, &mut decoded).unwrap();
        assert_eq!(decoded, rows);
    }

    #[test]
    fn test_site_pack_rejects_damaged_blocks_by_name() {
        let block = encode_block(&sample_rows());
        for cut in [0, 1, block.len() / 2, block.len() - 1] {
            let error = decode_block("dump-7", 3, &block[..cut], &mut Vec::new()).unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains("dump-7") && message.contains("block 3"),
                "{message}"
            );
        }
        let mut extra = block.clone();
        extra.push(0);
        assert!(decode_block("d", 0, &extra, &mut Vec::new()).is_err());
        let mut versioned = block;
        versioned[0] = 9;
        let error = decode_block("d", 0, &versioned, &mut Vec::new()).unwrap_err();
        assert!(error.to_string().contains("version 9"), "{error}");
    }
}
