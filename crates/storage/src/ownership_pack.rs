//! The stored form of a dump's ownership results ([`DumpOwnership`]), shared by the backends
//! that keep bytes (SQLite, CQL): one *summary* blob (object counts, the per-class and per-type
//! sizes, the top of the dominator tree) and one *site row* blob per [`RetainedSite`] (a site's
//! sizes and owners). Each site row is stored under its [`site_hash`], so the fleet leak report
//! reads a few sites of many dumps without reading every site of each.
//!
//! Blob layout: one version byte ([`ENCODING_VERSION`], uncompressed), then a zlib stream of the
//! JSON serde makes of the analysis types (a site row: the `RetainedSite`; the summary: the
//! `DumpOwnership` fields other than `sites`). A blob of another version is refused as
//! `Internal`, naming the dump: a newer build wrote it, or it is damaged.
//!
//! Site hash: the first 8 bytes of SHA-256 over the site key's canonical encoding, read as a
//! big-endian signed 64-bit integer (a CQL `bigint`, a SQLite `INTEGER`). Stored rows are found
//! by it, so this encoding never changes:
//!
//! ```text
//! file         0x00 when absent, else 0x01, byte length (u64 big-endian), UTF-8 bytes
//! line         0x00 when absent, else 0x01, line (u32 big-endian)
//! object type  byte length (u8), the dump's name for the type in ASCII ("STRING")
//! class name   0x00 when absent, else 0x01, byte length (u64 big-endian), UTF-8 bytes
//! ```
//!
//! Two sites may share a hash: every site row holds its whole site key, and reads keep only
//! the rows whose key equals a site asked for ([`AskedSites::pick`]); no store keys site rows by
//! (dump, hash) alone, so colliding rows never overwrite each other.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::{Compression, Decompress, FlushDecompress, Status};
use heapfleet_analysis::{DominatorNode, DumpOwnership, RetainedGroup, RetainedSite, SiteKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, StorageError};

/// The version byte every blob starts with.
pub(crate) const ENCODING_VERSION: u8 = 1;

/// One site row, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodedSite {
    /// The site's position in [`DumpOwnership::sites`] (most retained bytes first).
    pub(crate) position: i32,
    /// [`site_hash`] of the site.
    pub(crate) site_hash: i64,
    /// The blob.
    pub(crate) bytes: Vec<u8>,
}

/// A dump's ownership results, encoded for storage.
#[derive(Debug, Clone)]
pub(crate) struct EncodedOwnership {
    /// Everything but the sites.
    pub(crate) summary: Vec<u8>,
    /// How many site rows belong with the summary.
    pub(crate) site_count: i32,
    /// One row per site, in position order.
    pub(crate) sites: Vec<EncodedSite>,
}

/// The summary as it is encoded: the `DumpOwnership` fields other than `sites`.
#[derive(Serialize)]
struct SummaryRef<'a> {
    objects: u64,
    reachable_objects: u64,
    reachable_bytes: u64,
    classes: &'a [RetainedGroup],
    types: &'a [RetainedGroup],
    tree: &'a [DominatorNode],
}

/// The summary as it is decoded.
#[derive(Deserialize)]
struct Summary {
    objects: u64,
    reachable_objects: u64,
    reachable_bytes: u64,
    classes: Vec<RetainedGroup>,
    types: Vec<RetainedGroup>,
    tree: Vec<DominatorNode>,
}

/// Returns the stable 64-bit hash of `site` that site rows are stored under (module docs).
pub(crate) fn site_hash(site: &SiteKey) -> i64 {
    let mut hasher = Sha256::new();
    hash_optional_text(&mut hasher, site.file.as_deref());
    match site.line {
        None => hasher.update([0]),
        Some(line) => {
            hasher.update([1]);
            hasher.update(line.to_be_bytes());
        }
    }
    let type_name = site.object_type.as_str();
    // Type names are a handful of ASCII letters.
    hasher.update([u8::try_from(type_name.len()).unwrap_or(u8::MAX)]);
    hasher.update(type_name.as_bytes());
    hash_optional_text(&mut hasher, site.class_name.as_deref());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Feeds an optional text to the site hash: 0 when absent, else 1, its length and its bytes.
fn hash_optional_text(hasher: &mut Sha256, text: Option<&str>) {
    match text {
        None => hasher.update([0]),
        Some(text) => {
            hasher.update([1]);
            hasher.update((text.len() as u64).to_be_bytes());
            hasher.update(text.as_bytes());
        }
    }
}

/// [`encode`] on tokio's blocking pool: compressing thousands of site rows is too much CPU
/// work for an async task.
pub(crate) async fn encode_off_runtime(
    dump: &str,
    ownership: &DumpOwnership,
) -> Result<EncodedOwnership> {
    check_distinct_sites(dump, ownership)?;
    let dump = dump.to_owned();
    let ownership = ownership.clone();
    tokio::task::spawn_blocking(move || encode(&dump, &ownership))
        .await
        .map_err(|join_error| StorageError::Internal {
            message: "encoding ownership results panicked".to_owned(),
            source: Some(join_error.into()),
        })?
}

/// Fails with `Invalid` if a site repeats in `ownership.sites`: a store keyed by site would keep
/// only one of them.
pub(crate) fn check_distinct_sites(dump: &str, ownership: &DumpOwnership) -> Result<()> {
    let mut seen: HashSet<&SiteKey> = HashSet::with_capacity(ownership.sites.len());
    match ownership
        .sites
        .iter()
        .find(|retained| !seen.insert(&retained.site))
    {
        Some(repeated) => Err(StorageError::Invalid(format!(
            "ownership results of dump {dump} list site {} twice",
            repeated.site
        ))),
        None => Ok(()),
    }
}

/// Encodes a dump's ownership results; `Invalid` if a site repeats (a keyed store would keep
/// only one of them) or there are more sites than a position can number.
pub(crate) fn encode(dump: &str, ownership: &DumpOwnership) -> Result<EncodedOwnership> {
    check_distinct_sites(dump, ownership)?;
    let site_count = i32::try_from(ownership.sites.len()).map_err(|_| {
        StorageError::Invalid(format!(
            "ownership results of dump {dump} have too many sites"
        ))
    })?;
    let mut writer = BlobWriter::new(dump);
    let summary = writer.blob(
        &SummaryRef {
            objects: ownership.objects,
            reachable_objects: ownership.reachable_objects,
            reachable_bytes: ownership.reachable_bytes,
            classes: &ownership.classes,
            types: &ownership.types,
            tree: &ownership.tree,
        },
        "ownership summary",
    )?;
    let sites = ownership
        .sites
        .iter()
        .zip(0..)
        .map(|(retained, position)| {
            Ok(EncodedSite {
                position,
                site_hash: site_hash(&retained.site),
                bytes: writer.blob(retained, "site ownership")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(EncodedOwnership {
        summary,
        site_count,
        sites,
    })
}

/// Encodes blobs, reusing one compressor: resetting it is much cheaper than setting up a new
/// one for each of thousands of small rows.
struct BlobWriter<'a> {
    dump: &'a str,
    encoder: ZlibEncoder<Vec<u8>>,
    json: Vec<u8>,
}

impl<'a> BlobWriter<'a> {
    fn new(dump: &'a str) -> BlobWriter<'a> {
        BlobWriter {
            dump,
            encoder: ZlibEncoder::new(vec![ENCODING_VERSION], Compression::fast()),
            json: Vec::new(),
        }
    }

    /// Returns the version byte and the compressed JSON of `value`.
    fn blob<T: Serialize>(&mut self, value: &T, part: &str) -> Result<Vec<u8>> {
        self.json.clear();
        serde_json::to_writer(&mut self.json, value)
            .map_err(std::io::Error::other)
            .and_then(|()| self.encoder.write_all(&self.json))
            // Finishes the stream and starts the next blob with its version byte.
            .and_then(|()| self.encoder.reset(vec![ENCODING_VERSION]))
            .map_err(|error| StorageError::Internal {
                message: format!("failed to encode the {part} of dump {}", self.dump),
                source: Some(error.into()),
            })
    }
}

/// Decodes blobs, reusing one decompressor.
pub(crate) struct OwnershipDecoder {
    decompress: Decompress,
}

impl OwnershipDecoder {
    pub(crate) fn new() -> OwnershipDecoder {
        OwnershipDecoder {
            decompress: Decompress::new(true),
        }
    }

    /// Decodes a summary blob: the ownership results without their sites.
    pub(crate) fn summary(&mut self, dump: &str, blob: &[u8]) -> Result<DumpOwnership> {
        let summary: Summary = self.decode(dump, blob, "ownership summary")?;
        Ok(DumpOwnership {
            objects: summary.objects,
            reachable_objects: summary.reachable_objects,
            reachable_bytes: summary.reachable_bytes,
            sites: Vec::new(),
            classes: summary.classes,
            types: summary.types,
            tree: summary.tree,
        })
    }

    /// Decodes a site row blob.
    pub(crate) fn site(&mut self, dump: &str, blob: &[u8]) -> Result<RetainedSite> {
        self.decode(dump, blob, "site ownership")
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &mut self,
        dump: &str,
        blob: &[u8],
        part: &str,
    ) -> Result<T> {
        let damaged = |detail: String| {
            StorageError::internal_message(format!("the stored {part} of dump {dump} {detail}"))
        };
        let (&version, compressed) = blob
            .split_first()
            .ok_or_else(|| damaged("is empty".to_owned()))?;
        if version != ENCODING_VERSION {
            return Err(damaged(format!(
                "has encoding version {version}, which this build cannot read (it reads {ENCODING_VERSION})"
            )));
        }
        let json = self
            .inflate(compressed)
            .map_err(|detail| damaged(format!("does not decompress: {detail}")))?;
        serde_json::from_slice(&json).map_err(|json_error| StorageError::Internal {
            message: format!("the stored {part} of dump {dump} is malformed"),
            source: Some(json_error.into()),
        })
    }

    /// Inflates one whole zlib stream; a stream cut short or followed by more bytes is an
    /// error.
    fn inflate(&mut self, compressed: &[u8]) -> std::result::Result<Vec<u8>, String> {
        self.decompress.reset(true);
        let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).max(256));
        loop {
            let consumed = usize::try_from(self.decompress.total_in()).unwrap_or(usize::MAX);
            let rest = compressed.get(consumed..).unwrap_or_default();
            let produced = out.len();
            let status = self
                .decompress
                .decompress_vec(rest, &mut out, FlushDecompress::Finish)
                .map_err(|error| error.to_string())?;
            let consumed_now = usize::try_from(self.decompress.total_in()).unwrap_or(usize::MAX);
            match status {
                Status::StreamEnd if consumed_now == compressed.len() => return Ok(out),
                Status::StreamEnd => return Err("trailing bytes after the stream".to_owned()),
                Status::Ok | Status::BufError => {
                    let stalled = consumed_now == consumed && out.len() == produced;
                    if stalled && out.len() < out.capacity() {
                        return Err("the stream is cut short".to_owned());
                    }
                    if out.len() == out.capacity() {
                        out.reserve(out.capacity());
                    }
                }
            }
        }
    }
}

/// Puts a dump's decoded summary and site rows (position, blob) back together; `Internal` if
/// the rows are not exactly positions `0..site_count`.
pub(crate) fn assemble(
    dump: &str,
    decoder: &mut OwnershipDecoder,
    mut ownership: DumpOwnership,
    site_count: i64,
    mut rows: Vec<(i32, Vec<u8>)>,
) -> Result<DumpOwnership> {
    rows.sort_unstable_by_key(|row| row.0);
    let complete = usize::try_from(site_count) == Ok(rows.len())
        && rows
            .iter()
            .zip(0..)
            .all(|(row, position)| row.0 == position);
    if !complete {
        return Err(StorageError::internal_message(format!(
            "the ownership results of dump {dump} have {} site rows, expected {site_count}",
            rows.len()
        )));
    }
    ownership.sites = rows
        .iter()
        .map(|(_, blob)| decoder.site(dump, blob))
        .collect::<Result<Vec<_>>>()?;
    Ok(ownership)
}

/// The sites a `site_ownership` read asks for, each once, in the order asked, with their hashes.
pub(crate) struct AskedSites {
    sites: Vec<SiteKey>,
    distinct: HashSet<SiteKey>,
    hashes: Vec<i64>,
}

impl AskedSites {
    pub(crate) fn new(sites: &[SiteKey]) -> AskedSites {
        let mut in_order: Vec<SiteKey> = Vec::with_capacity(sites.len());
        let mut distinct: HashSet<SiteKey> = HashSet::with_capacity(sites.len());
        for site in sites {
            if distinct.insert(site.clone()) {
                in_order.push(site.clone());
            }
        }
        let mut hashes: Vec<i64> = in_order.iter().map(site_hash).collect();
        hashes.sort_unstable();
        hashes.dedup();
        AskedSites {
            sites: in_order,
            distinct,
            hashes,
        }
    }

    /// The distinct hashes of the asked sites, ascending.
    pub(crate) fn hashes(&self) -> &[i64] {
        &self.hashes
    }

    /// Whether no site is asked for.
    pub(crate) fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// Keeps the rows whose site was asked for (rows read by hash may hold another site whose
    /// hash collides), in the order the sites were asked.
    pub(crate) fn pick(&self, rows: impl IntoIterator<Item = RetainedSite>) -> Vec<RetainedSite> {
        let mut found: HashMap<SiteKey, RetainedSite> = rows
            .into_iter()
            .filter(|retained| self.distinct.contains(&retained.site))
            .map(|retained| (retained.site.clone(), retained))
            .collect();
        self.sites
            .iter()
            .filter_map(|site| found.remove(site))
            .collect()
    }

    /// [`AskedSites::pick`] over rows held elsewhere, copying only the asked ones.
    pub(crate) fn pick_from(&self, rows: &[RetainedSite]) -> Vec<RetainedSite> {
        self.pick(
            rows.iter()
                .filter(|retained| self.distinct.contains(&retained.site))
                .cloned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use heapfleet_analysis::{OwnerSite, Retained, SiteOwner};
    use heapfleet_dump::ObjectType;

    use super::*;

    fn site(file: Option<&str>, line: Option<u32>, class_name: Option<&str>) -> SiteKey {
        SiteKey {
            file: file.map(str::to_owned),
            line,
            object_type: ObjectType::String,
            class_name: class_name.map(str::to_owned),
        }
    }

    fn retained_site(site: SiteKey, bytes: u64) -> RetainedSite {
        RetainedSite {
            site,
            retained: Retained {
                objects: 3,
                shallow_bytes: 120,
                retained_objects: 4,
                retained_bytes: bytes,
            },
            owners: vec![SiteOwner {
                owner: Some(OwnerSite {
                    file: Some("/app/cache.rb".to_owned()),
                    line: Some(4),
                    object_type: ObjectType::Hash,
                    class_name: Some("Hash".to_owned()),
                }),
                address: Some(0x7f00),
                owner_objects: 1,
                root: "global_list".to_owned(),
                path: vec![
                    "global_list".to_owned(),
                    "Cache".to_owned(),
                    "Hash".to_owned(),
                ],
                objects: 3,
                bytes,
                owner_retained_objects: 4,
                owner_retained_bytes: bytes + 40,
            }],
        }
    }

    fn sample() -> DumpOwnership {
        DumpOwnership {
            objects: 10,
            reachable_objects: 9,
            reachable_bytes: 900,
            sites: vec![
                retained_site(site(Some("/app/a.rb"), Some(1), Some("String")), 500),
                retained_site(site(None, None, None), 200),
            ],
            classes: vec![RetainedGroup {
                key: "String".to_owned(),
                retained: Retained::default(),
            }],
            types: Vec::new(),
            tree: vec![DominatorNode {
                parent: None,
                depth: 0,
                address: 0x7f00,
                object_type: ObjectType::Hash,
                class_name: Some("Hash".to_owned()),
                file: None,
                line: None,
                root: "vm".to_owned(),
                shallow_bytes: 40,
                retained_objects: 5,
                retained_bytes: 700,
            }],
        }
    }

    fn decode_all(dump: &str, encoded: &EncodedOwnership) -> Result<DumpOwnership> {
        let mut decoder = OwnershipDecoder::new();
        let summary = decoder.summary(dump, &encoded.summary)?;
        let rows = encoded
            .sites
            .iter()
            .map(|row| (row.position, row.bytes.clone()))
            .collect();
        assemble(
            dump,
            &mut decoder,
            summary,
            i64::from(encoded.site_count),
            rows,
        )
    }

    #[test]
    fn test_ownership_pack_round_trips() {
        let ownership = sample();
        let encoded = encode("d-1", &ownership).unwrap();
        assert_eq!(encoded.site_count, 2);
        assert_eq!(encoded.summary[0], ENCODING_VERSION);
        assert_eq!(
            encoded.sites[1].site_hash,
            site_hash(&ownership.sites[1].site)
        );
        assert_eq!(decode_all("d-1", &encoded).unwrap(), ownership);
        let empty = encode("d-1", &DumpOwnership::default()).unwrap();
        assert_eq!(decode_all("d-1", &empty).unwrap(), DumpOwnership::default());
    }

    #[test]
    fn test_ownership_pack_rejects_repeated_sites() {
        let mut ownership = sample();
        ownership.sites.push(ownership.sites[0].clone());
        assert!(matches!(
            encode("d-1", &ownership),
            Err(StorageError::Invalid(_))
        ));
    }

    #[test]
    fn test_ownership_pack_refuses_other_versions_and_damage_naming_the_dump() {
        let encoded = encode("d-1", &sample()).unwrap();
        let mut decoder = OwnershipDecoder::new();
        let mut newer = encoded.sites[0].bytes.clone();
        newer[0] = ENCODING_VERSION + 1;
        let error = decoder.site("d-7", &newer).unwrap_err();
        assert!(matches!(error, StorageError::Internal { .. }), "{error:?}");
        assert!(error.to_string().contains("d-7"), "{error}");
        assert!(error.to_string().contains("version 2"), "{error}");
        let cut = &encoded.summary[..encoded.summary.len() - 3];
        assert!(matches!(
            decoder.summary("d-7", cut),
            Err(StorageError::Internal { .. })
        ));
        assert!(matches!(
            decoder.summary("d-7", &[]),
            Err(StorageError::Internal { .. })
        ));
        let mut trailing = encoded.summary.clone();
        trailing.push(0);
        assert!(matches!(
            decoder.summary("d-7", &trailing),
            Err(StorageError::Internal { .. })
        ));
        // The decoder still works after the failures.
        assert_eq!(
            decoder.site("d-1", &encoded.sites[0].bytes).unwrap(),
            sample().sites[0]
        );
    }

    #[test]
    fn test_ownership_pack_assemble_requires_every_position() {
        let encoded = encode("d-1", &sample()).unwrap();
        let mut decoder = OwnershipDecoder::new();
        let summary = decoder.summary("d-1", &encoded.summary).unwrap();
        let one_row = vec![(1, encoded.sites[1].bytes.clone())];
        assert!(matches!(
            assemble("d-1", &mut decoder, summary, 2, one_row),
            Err(StorageError::Internal { .. })
        ));
    }

    #[test]
    fn test_site_hash_is_pinned_and_tells_absent_from_empty() {
        // Stored rows are found by this value: it must never change.
        let site = site(Some("/app/a.rb"), Some(12), Some("String"));
        assert_eq!(site_hash(&site), PINNED_HASH);
        let absent = SiteKey {
            file: None,
            line: None,
            object_type: ObjectType::String,
            class_name: None,
        };
        let empty = SiteKey {
            file: Some(String::new()),
            line: None,
            object_type: ObjectType::String,
            class_name: None,
        };
        let empty_class = SiteKey {
            file: None,
            line: None,
            object_type: ObjectType::String,
            class_name: Some(String::new()),
        };
        assert_ne!(site_hash(&absent), site_hash(&empty));
        assert_ne!(site_hash(&absent), site_hash(&empty_class));
        assert_ne!(site_hash(&empty), site_hash(&empty_class));
    }

    /// `site_hash` of `/app/a.rb:12` STRING `String`, computed from the module docs' encoding
    /// outside Rust (Python's hashlib).
    const PINNED_HASH: i64 = -6_875_667_662_340_753_847;

    #[test]
    fn test_asked_sites_pick_in_order_and_drop_colliding_rows() {
        let first = site(Some("/app/a.rb"), Some(1), None);
        let second = site(Some("/app/b.rb"), Some(2), None);
        let other = site(Some("/app/c.rb"), Some(3), None);
        let asked_list = [second.clone(), first.clone(), second.clone()];
        let asked = AskedSites::new(&asked_list);
        assert_eq!(asked.hashes().len(), 2);
        assert!(!asked.is_empty());
        // Rows as a read by hash may return them: any order, maybe a colliding site among them.
        let rows = vec![
            retained_site(first.clone(), 1),
            retained_site(other, 2),
            retained_site(second.clone(), 3),
        ];
        let picked = asked.pick(rows);
        let picked_sites: Vec<&SiteKey> = picked.iter().map(|retained| &retained.site).collect();
        assert_eq!(picked_sites, vec![&second, &first]);
        assert!(AskedSites::new(&[]).is_empty());
    }
}
