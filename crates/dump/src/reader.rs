//! Drives a [`DumpParser`] from a blocking `Read` or a tokio `AsyncRead`, plain or gzip.
//!
//! Gzip is detected from the magic bytes, not the file name, so a misnamed file still parses.
//! Multi-member gzip (concatenated streams) is read whole. A gzip stream cut short is reported as
//! a truncated dump, not as a fatal error, so the objects before the cut are still used. A gzip
//! stream whose bytes do not decode is [`ParseError::CorruptGzip`], told apart from the input
//! itself failing ([`ParseError::Io`]): only the second can go away on a retry. How far a small
//! gzip stream may expand is bounded by [`ParseOptions::max_dump_bytes`], which counts
//! decompressed bytes.

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

/// The compressed input under a gzip decoder, remembering whether one of its reads failed.
///
/// The decoder reports its own errors (bad header, corrupt deflate data, wrong checksum) and
/// its input's through the same `read`; this flag tells them apart afterwards.
struct SourceErrors<R> {
    inner: R,
    failed: bool,
}

impl<R> SourceErrors<R> {
    fn new(inner: R) -> SourceErrors<R> {
        SourceErrors {
            inner,
            failed: false,
        }
    }
}

impl<R: Read> Read for SourceErrors<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let result = self.inner.read(buffer);
        if let Err(error) = &result
            && error.kind() != ErrorKind::Interrupted
        {
            self.failed = true;
        }
        result
    }
}

#[cfg(feature = "tokio")]
impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for SourceErrors<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
        buffer: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_read(context, buffer);
        if let std::task::Poll::Ready(Err(error)) = &poll
            && error.kind() != ErrorKind::Interrupted
        {
            self.failed = true;
        }
        poll
    }
}

/// The fatal error for a failed read after `bytes_read` decompressed bytes. Under a gzip
/// decoder (`gzip_source_failed` is `Some`) an error its input did not cause is the decoder's
/// own: the stream is corrupt.
fn read_error(
    bytes_read: u64,
    source: std::io::Error,
    gzip_source_failed: Option<bool>,
) -> ParseError {
    match gzip_source_failed {
        Some(false) => ParseError::CorruptGzip { bytes_read, source },
        Some(true) | None => ParseError::Io { bytes_read, source },
    }
}

/// Parses a whole dump from a blocking reader, decompressing gzip when the content is gzip.
pub fn parse_reader<R: Read, V: Visitor>(
    reader: R,
    options: &ParseOptions,
    visitor: &mut V,
) -> Result<ParseStats, ParseError> {
    let mut buffered = BufReader::with_capacity(64 * 1024, SourceErrors::new(reader));
    let prefix = buffered.fill_buf().map_err(|source| ParseError::Io {
        bytes_read: 0,
        source,
    })?;
    if is_gzip(prefix) {
        parse_plain_reader(MultiGzDecoder::new(buffered), options, visitor, |decoder| {
            Some(decoder.get_ref().get_ref().failed)
        })
    } else {
        parse_plain_reader(buffered, options, visitor, |_| None)
    }
}

/// Feeds `reader` to a parser; `gzip_source_failed` says, for a gzip decoder, whether its input
/// failed (`None`: `reader` is the input itself).
fn parse_plain_reader<R: Read, V: Visitor>(
    mut reader: R,
    options: &ParseOptions,
    visitor: &mut V,
    gzip_source_failed: impl Fn(&R) -> Option<bool>,
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
                let gzip = gzip_source_failed(&reader);
                return Err(read_error(parser.stats().bytes, source, gzip));
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

    let mut buffered = tokio::io::BufReader::with_capacity(64 * 1024, SourceErrors::new(reader));
    let prefix = buffered.fill_buf().await.map_err(|source| ParseError::Io {
        bytes_read: 0,
        source,
    })?;
    if is_gzip(prefix) {
        let mut decoder = async_compression::tokio::bufread::GzipDecoder::new(buffered);
        decoder.multiple_members(true);
        parse_plain_async_reader(decoder, options, visitor, |decoder| {
            Some(decoder.get_ref().get_ref().failed)
        })
        .await
    } else {
        parse_plain_async_reader(buffered, options, visitor, |_| None).await
    }
}

#[cfg(feature = "tokio")]
async fn parse_plain_async_reader<R, V>(
    mut reader: R,
    options: &ParseOptions,
    visitor: &mut V,
    gzip_source_failed: impl Fn(&R) -> Option<bool>,
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
                let gzip = gzip_source_failed(&reader);
                return Err(read_error(parser.stats().bytes, source, gzip));
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

    /// Fails every read after the first `good` bytes, like a connection dropped mid-stream.
    struct FailingAfter<'a> {
        bytes: &'a [u8],
        good: usize,
    }

    impl Read for FailingAfter<'_> {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            if self.good == 0 {
                return Err(std::io::Error::new(ErrorKind::ConnectionReset, "peer gone"));
            }
            let take = buffer.len().min(self.good).min(self.bytes.len());
            buffer[..take].copy_from_slice(&self.bytes[..take]);
            self.bytes = &self.bytes[take..];
            self.good -= take;
            Ok(take)
        }
    }

    /// One line of a gzip bomb: a valid object, so only the limit stops the parse.
    const BOMB_LINE: &[u8] = b"{\"address\":\"0x1\", \"type\":\"STRING\", \"memsize\":40}\n";

    /// `members` copies of one gzip member holding `member_bytes` bytes of dump lines: expands
    /// about a thousandfold, and costs one member's compression to build.
    fn gzip_bomb(member_bytes: usize, members: usize) -> Vec<u8> {
        let plain: Vec<u8> = BOMB_LINE
            .iter()
            .copied()
            .cycle()
            .take(member_bytes)
            .collect();
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&plain).unwrap();
        encoder.finish().unwrap().repeat(members)
    }

    #[test]
    fn test_parse_reader_stops_a_gzip_bomb_at_the_decompressed_limit() {
        let bomb = gzip_bomb(4 << 20, 64);
        assert!(bomb.len() < 1 << 20, "the bomb is small: {}", bomb.len());
        let options = ParseOptions {
            max_dump_bytes: Some(8 << 20),
            ..ParseOptions::default()
        };
        let mut count = CountObjects::default();
        let error = parse_reader(&bomb[..], &options, &mut count).unwrap_err();
        assert!(
            matches!(error, ParseError::TooLarge { limit } if limit == 8 << 20),
            "{error:?}"
        );
        // Parsing stopped within one read of the limit, not at the bomb's 256 MiB.
        let parsed_bytes = count.0 * BOMB_LINE.len() as u64;
        assert!(
            parsed_bytes <= (8 << 20) + CHUNK_BYTES as u64,
            "{parsed_bytes}"
        );
        // Without the limit the same bytes are a valid dump.
        let mut unlimited = CountObjects::default();
        let stats = parse_reader(
            &gzip_bomb(4 << 20, 4)[..],
            &ParseOptions::default(),
            &mut unlimited,
        )
        .unwrap();
        assert_eq!(stats.bytes, 16 << 20);
    }

    #[test]
    fn test_parse_reader_reports_corrupt_gzip_apart_from_read_errors() {
        let compressed = gzip(&dump_of(20_000));
        // A wrong CRC-32 in the trailer: the decoder itself fails.
        let mut corrupt = compressed.clone();
        let crc = corrupt.len() - 8;
        corrupt[crc] ^= 0xff;
        let error = parse_reader(
            &corrupt[..],
            &ParseOptions::default(),
            &mut CountObjects::default(),
        )
        .unwrap_err();
        assert!(matches!(error, ParseError::CorruptGzip { .. }), "{error:?}");
        // A bad header: magic bytes, then an unknown compression method.
        let header = [0x1f, 0x8b, 0x07, 0, 0, 0, 0, 0, 0, 0xff, b'x', b'y'];
        let error = parse_reader(
            &header[..],
            &ParseOptions::default(),
            &mut CountObjects::default(),
        )
        .unwrap_err();
        assert!(matches!(error, ParseError::CorruptGzip { .. }), "{error:?}");
        // The input failing under the decoder is a read error (worth a retry), not corruption.
        let failing = FailingAfter {
            bytes: &compressed,
            good: compressed.len() / 2,
        };
        let error = parse_reader(
            failing,
            &ParseOptions::default(),
            &mut CountObjects::default(),
        )
        .unwrap_err();
        assert!(matches!(error, ParseError::Io { .. }), "{error:?}");
        let plain = dump_of(20_000);
        let failing = FailingAfter {
            bytes: &plain,
            good: plain.len() / 2,
        };
        let error = parse_reader(
            failing,
            &ParseOptions::default(),
            &mut CountObjects::default(),
        )
        .unwrap_err();
        assert!(matches!(error, ParseError::Io { .. }), "{error:?}");
    }

    #[test]
    fn test_parse_reader_empty_and_header_only_gzip_have_no_lines() {
        let empty = gzip(b"");
        let stats = parse_reader(
            &empty[..],
            &ParseOptions::default(),
            &mut CountObjects::default(),
        )
        .unwrap();
        assert_eq!(
            (stats.lines, stats.bad_lines, stats.truncated),
            (0, 0, false)
        );
        // Cut right after the 10-byte header: a truncated dump with nothing in it.
        let stats = parse_reader(
            &empty[..10],
            &ParseOptions::default(),
            &mut CountObjects::default(),
        )
        .unwrap();
        assert_eq!((stats.lines, stats.bad_lines), (0, 0));
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn test_parse_async_reader_reports_corrupt_gzip_and_the_limit() {
        let mut corrupt = gzip(&dump_of(20_000));
        let crc = corrupt.len() - 8;
        corrupt[crc] ^= 0xff;
        let error = parse_async_reader(
            &corrupt[..],
            &ParseOptions::default(),
            &mut CountObjects::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, ParseError::CorruptGzip { .. }), "{error:?}");
        let options = ParseOptions {
            max_dump_bytes: Some(8 << 20),
            ..ParseOptions::default()
        };
        let error = parse_async_reader(
            &gzip_bomb(4 << 20, 64)[..],
            &options,
            &mut CountObjects::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, ParseError::TooLarge { .. }), "{error:?}");
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
