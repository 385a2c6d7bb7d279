//! Drives a [`DumpParser`] from a blocking `Read` or a tokio `AsyncRead`, plain or gzip.
//!
//! Gzip is detected from the magic bytes, not the file name, so a misnamed file still parses.
//! Multi-member gzip (concatenated streams) is read whole. A gzip stream cut short is reported as
//! a truncated dump, not as a fatal error, so the objects before the cut are still used.

use std::io::{BufRead, BufReader, ErrorKind, Read};

use flate2::bufread::MultiGzDecoder;

use crate::error::ParseError;
use crate::parser::{DumpParser, ParseOptions, ParseStats, Visitor};

/// Size of the read buffer: large enough that per-read overhead vanishes, small enough for L2.
const CHUNK_BYTES: usize = 256 * 1024;

/// Returns whether `prefix` starts with the gzip magic bytes.
pub fn is_gzip(prefix: &[u8]) -> bool {
    prefix.starts_with(&[0x1f, 0x8b])
}

/// Parses a whole dump from a blocking reader, decompressing gzip when the content is gzip.
pub fn parse_reader<R: Read, V: Visitor>(
    reader: R,
    options: &ParseOptions,
    visitor: &mut V,
) -> Result<ParseStats, ParseError> {
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    let prefix = buffered.fill_buf().map_err(|source| ParseError::Io {
        bytes_read: 0,
        source,
    })?;
    if is_gzip(prefix) {
        parse_plain_reader(MultiGzDecoder::new(buffered), options, visitor)
    } else {
        parse_plain_reader(buffered, options, visitor)
    }
}

fn parse_plain_reader<R: Read, V: Visitor>(
    mut reader: R,
    options: &ParseOptions,
    visitor: &mut V,
) -> Result<ParseStats, ParseError> {
    let mut parser = DumpParser::new(options.clone());
    let mut buffer = vec![0u8; CHUNK_BYTES];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return parser.finish(visitor),
            Ok(read) => parser.feed(&buffer[..read], visitor)?,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) if error.kind() == ErrorKind::UnexpectedEof => {
                return parser.finish_truncated(visitor);
            }
            Err(source) => {
                return Err(ParseError::Io {
                    bytes_read: parser.stats().bytes,
                    source,
                });
            }
        }
    }
}

/// Parses a whole dump from an async reader (an object-storage stream), plain or gzip.
///
/// The visitor runs on the calling task; callers with heavy visitors should run this on a
/// blocking-friendly runtime thread.
#[cfg(feature = "tokio")]
pub async fn parse_async_reader<R, V>(
    reader: R,
    options: &ParseOptions,
    visitor: &mut V,
) -> Result<ParseStats, ParseError>
where
    R: tokio::io::AsyncRead + Unpin,
    V: Visitor,
{
    use tokio::io::AsyncBufReadExt;

    let mut buffered = tokio::io::BufReader::with_capacity(64 * 1024, reader);
    let prefix = buffered.fill_buf().await.map_err(|source| ParseError::Io {
        bytes_read: 0,
        source,
    })?;
    if is_gzip(prefix) {
        let mut decoder = async_compression::tokio::bufread::GzipDecoder::new(buffered);
        decoder.multiple_members(true);
        parse_plain_async_reader(decoder, options, visitor).await
    } else {
        parse_plain_async_reader(buffered, options, visitor).await
    }
}

#[cfg(feature = "tokio")]
async fn parse_plain_async_reader<R, V>(
    mut reader: R,
    options: &ParseOptions,
    visitor: &mut V,
) -> Result<ParseStats, ParseError>
where
    R: tokio::io::AsyncRead + Unpin,
    V: Visitor,
{
    use tokio::io::AsyncReadExt;

    let mut parser = DumpParser::new(options.clone());
    let mut buffer = vec![0u8; CHUNK_BYTES];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) => return parser.finish(visitor),
            Ok(read) => parser.feed(&buffer[..read], visitor)?,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) if error.kind() == ErrorKind::UnexpectedEof => {
                return parser.finish_truncated(visitor);
            }
            Err(source) => {
                return Err(ParseError::Io {
                    bytes_read: parser.stats().bytes,
                    source,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;
    use crate::record::Record;

    #[derive(Default)]
    struct CountObjects(u64);

    impl Visitor for CountObjects {
        fn record(&mut self, _line_number: u64, record: &Record<'_>) {
            if matches!(record, Record::Object(_)) {
                self.0 += 1;
            }
        }
    }

    fn dump_of(objects: usize) -> Vec<u8> {
        (0..objects)
            .map(|index| {
                format!(
                    "{{\"address\":\"0x{:x}\", \"type\":\"STRING\", \"memsize\":40}}\n",
                    index + 1
                )
            })
            .collect::<String>()
            .into_bytes()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn test_parse_reader_reads_plain_and_gzip_alike() {
        let plain = dump_of(1000);
        let mut plain_count = CountObjects::default();
        let plain_stats =
            parse_reader(&plain[..], &ParseOptions::default(), &mut plain_count).unwrap();
        let mut gzip_count = CountObjects::default();
        let gzip_stats =
            parse_reader(&gzip(&plain)[..], &ParseOptions::default(), &mut gzip_count).unwrap();
        assert_eq!(plain_count.0, 1000);
        assert_eq!(gzip_count.0, 1000);
        assert_eq!(plain_stats, gzip_stats);
    }

    #[test]
    fn test_parse_reader_treats_cut_gzip_as_truncated_dump() {
        let compressed = gzip(&dump_of(20_000));
        let cut = &compressed[..compressed.len() / 2];
        let mut count = CountObjects::default();
        let stats = parse_reader(cut, &ParseOptions::default(), &mut count).unwrap();
        assert!(stats.truncated);
        assert!(
            count.0 > 0 && count.0 < 20_000,
            "kept the objects before the cut: {}",
            count.0
        );
    }

    #[test]
    fn test_parse_reader_empty_input_has_no_objects() {
        let mut count = CountObjects::default();
        let stats = parse_reader(&b""[..], &ParseOptions::default(), &mut count).unwrap();
        assert_eq!((stats.lines, stats.objects, stats.bad_lines), (0, 0, 0));
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn test_parse_async_reader_matches_blocking_reader() {
        let compressed = gzip(&dump_of(5000));
        let mut blocking_count = CountObjects::default();
        let blocking = parse_reader(
            &compressed[..],
            &ParseOptions::default(),
            &mut blocking_count,
        )
        .unwrap();
        let mut async_count = CountObjects::default();
        let asynchronous =
            parse_async_reader(&compressed[..], &ParseOptions::default(), &mut async_count)
                .await
                .unwrap();
        assert_eq!(blocking, asynchronous);
        assert_eq!(async_count.0, 5000);
    }
}
