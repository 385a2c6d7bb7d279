//! One pass over a dump: per-(site, generation) totals, duplicated strings, the object index.
//!
//! Memory is bounded by the number of distinct sites, classes and files, never by the number of
//! objects: objects stream through into the index encoder's sink, and duplicated strings are
//! counted with a pruned table of bounded size (see [`DuplicateCounter`]).
//!
//! Class names are resolved only at [`DumpAggregator::finish`], because an object may come
//! before its class in the dump. Sites are keyed by class *address* while scanning; two class
//! addresses with the same name (reloaded or anonymous classes) merge at the end.

use std::hash::{BuildHasher, Hash};

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use heapfleet_dump::{BadLine, ObjectRecord, ObjectType, ParseStats, Record, Visitor};
use serde::{Deserialize, Serialize};

use crate::index::{IndexEncoder, IndexEntry, NO_GENERATION};
use crate::site::SiteKey;

/// How many totals updates are queued before they are applied together.
const PENDING_TOTALS: usize = 256;
/// Marks an absent file or line in the scan-time keys.
const ABSENT: u32 = u32::MAX;
/// Most tracked (value, site, generation) string keys at once.
const DUPLICATE_TABLE_CAPACITY: usize = 1 << 16;
/// Longest duplicated-string value kept, in bytes.
const DUPLICATE_VALUE_PREVIEW_BYTES: usize = 120;
/// Only this many leading bytes of a string value are hashed.
const DUPLICATE_HASHED_BYTES: usize = 4096;
/// How many duplicated strings a dump keeps.
pub const MAX_DUPLICATED_STRINGS: usize = 500;

/// Totals for objects of one site allocated in one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Objects.
    pub count: u64,
    /// Bytes held (`memsize`).
    pub memsize: u64,
    /// STRING bytes.
    pub bytesize: u64,
    /// Outgoing references.
    pub references: u64,
}

impl Totals {
    /// Adds `other` to these totals.
    pub fn add(&mut self, other: &Totals) {
        self.count += other.count;
        self.memsize += other.memsize;
        self.bytesize += other.bytesize;
        self.references += other.references;
    }
}

/// A site's totals within one generation: the unit every per-dump view is computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteGenerationStats {
    /// The site.
    pub site: SiteKey,
    /// Allocation generation, `None` for objects without one.
    pub generation: Option<u32>,
    /// Totals.
    pub totals: Totals,
}

/// Strings with equal content allocated at one site in one generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicatedString {
    /// The content, cut to at most 120 bytes.
    pub value: String,
    /// Where the copies were allocated.
    pub site: SiteKey,
    /// Their allocation generation.
    pub generation: Option<u32>,
    /// How many copies (a lower bound: see the module docs).
    pub count: u64,
    /// Bytes of one copy.
    pub bytesize: u64,
    /// Bytes held by all copies.
    pub memsize: u64,
}

/// Everything one dump contributes: stored once per dump, read by every view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DumpAggregates {
    /// Per (site, generation) totals, sorted by site then generation.
    pub sites: Vec<SiteGenerationStats>,
    /// The most wasteful duplicated strings (copies x bytes), at most [`MAX_DUPLICATED_STRINGS`].
    pub duplicated_strings: Vec<DuplicatedString>,
    /// The site table the object index refers to ([`IndexEntry::site`] indexes it).
    pub index_sites: Vec<SiteKey>,
    /// GC-root categories and how many references each holds.
    pub roots: Vec<(String, u64)>,
    /// SHAPE records (Ruby 3.2+) and their total memsize; they are not heap objects.
    pub shapes: Totals,
    /// What the parser saw.
    pub parse: ParseStats,
}

/// The scan-time site key: class by address, file by interned id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ScanSiteKey {
    file: u32,
    line: u32,
    object_type: ObjectType,
    class: u64,
}

/// Interns file names (raw, still escaped), remembering the last one: consecutive objects in a
/// dump very often share a file.
#[derive(Default)]
struct FileInterner {
    ids: HashMap<Box<[u8]>, u32, PathTailHashing>,
    names: Vec<Box<[u8]>>,
    last: Option<u32>,
}

impl FileInterner {
    fn intern(&mut self, raw: &[u8]) -> u32 {
        if let Some(last) = self.last
            && *self.names[last as usize] == *raw
        {
            return last;
        }
        let id = match self.ids.get(raw) {
            Some(&id) => id,
            None => {
                let id =
                    u32::try_from(self.names.len()).expect("fewer than 4 billion distinct files");
                self.ids.insert(raw.into(), id);
                self.names.push(raw.into());
                id
            }
        };
        self.last = Some(id);
        id
    }
}

/// Hashes a file path by its length and its last 16 bytes only. Paths share long prefixes
/// (`/app/vendor/bundle/ruby/3.1.0/gems/...`) and differ in their tails, so this tells them
/// apart at a fraction of the cost of hashing every byte; the map still compares keys in full,
/// so paths with equal tails only share a bucket.
#[derive(Debug, Default, Clone, Copy)]
struct PathTailHashing;

impl std::hash::BuildHasher for PathTailHashing {
    type Hasher = PathTailHasher;

    fn build_hasher(&self) -> PathTailHasher {
        PathTailHasher(0)
    }
}

struct PathTailHasher(u64);

impl std::hash::Hasher for PathTailHasher {
    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(16)..];
        let mut padded = [0u8; 16];
        padded[..tail.len()].copy_from_slice(tail);
        let [low, high] = [&padded[..8], &padded[8..]]
            .map(|half| u64::from_le_bytes(half.try_into().expect("an 8-byte half of 16 bytes")));
        let length = (bytes.len() as u64).rotate_left(32);
        let mixed = (self.0 ^ low ^ length).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = (mixed ^ high)
            .wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            .rotate_left(29);
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 31)
    }
}

/// Counts duplicated strings per (content, site, generation) in bounded memory.
///
/// Most strings in a heap are unique, so a string's first sighting only goes into `seen_once`, a
/// direct-mapped table of key hashes (a later key may overwrite it). A key found there again is a
/// duplicate and moves into `entries`, where it is counted exactly from then on. When `entries`
/// fills up, keys seen fewer than `min_count` times are dropped and the bar rises. Counts are
/// therefore lower bounds; strings duplicated often are found.
struct DuplicateCounter {
    /// 32-bit fingerprints of keys seen once; small enough to stay in L2 cache.
    seen_once: Vec<u32>,
    /// One bit per hash bucket, set when a key in it is promoted into `entries`: a clear bit
    /// proves a string is not yet a known duplicate, so unique strings (most) skip the map.
    /// Bits are never cleared; a stale bit only costs a map probe.
    promoted: Vec<u64>,
    /// Keyed by a 64-bit hash of (content, site, generation); collisions are negligible.
    entries: HashMap<u64, DuplicateEntry, FixedState>,
    /// Strings not looked up yet.
    pending: Vec<PendingString>,
    /// The preview bytes of the pending strings, back to back.
    pending_previews: Vec<u8>,
    hasher: FixedState,
    min_count: u64,
}

/// Slots in the first-sighting table (256 KiB of fingerprints).
const SEEN_ONCE_SLOTS: usize = 1 << 16;
/// Bits in the promoted-key filter (128 KiB).
const PROMOTED_BITS: usize = 1 << 20;

/// A string queued for lookup, with what its entry needs.
struct PendingString {
    key_hash: u64,
    site: u32,
    generation: u32,
    bytesize: u64,
    memsize: u64,
    has_escapes: bool,
    /// Where its preview bytes are in `pending_previews`.
    preview: std::ops::Range<usize>,
}

/// How many strings are queued before they are looked up together.
const PENDING_STRINGS: usize = 64;

struct DuplicateEntry {
    site: u32,
    generation: u32,
    count: u64,
    bytesize: u64,
    memsize: u64,
    preview: Option<Box<str>>,
}

impl DuplicateCounter {
    fn new() -> Self {
        DuplicateCounter {
            seen_once: vec![0; SEEN_ONCE_SLOTS],
            promoted: vec![0; PROMOTED_BITS / 64],
            entries: HashMap::with_capacity_and_hasher(1024, FixedState::default()),
            pending: Vec::with_capacity(PENDING_STRINGS),
            pending_previews: Vec::with_capacity(PENDING_STRINGS * DUPLICATE_VALUE_PREVIEW_BYTES),
            hasher: FixedState::with_seed(0x6865_6170),
            min_count: 2,
        }
    }

    /// Queues one string. Lookups happen in batches (see [`DuplicateCounter::apply_pending`]).
    fn add(
        &mut self,
        value: &[u8],
        has_escapes: bool,
        site: u32,
        generation: u32,
        bytesize: u64,
        memsize: u64,
    ) {
        let hashed = &value[..value.len().min(DUPLICATE_HASHED_BYTES)];
        let content_hash = self.hasher.hash_one((hashed, value.len()));
        let placement = (u64::from(site) << 32) | u64::from(generation);
        // Non-zero, so an empty first-sighting slot never matches.
        let key_hash = (content_hash ^ placement.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
        // The preview is copied now: the line it comes from is gone when the batch is applied.
        let cut = floor_char_boundary(value, DUPLICATE_VALUE_PREVIEW_BYTES);
        let preview_start = self.pending_previews.len();
        self.pending_previews.extend_from_slice(&value[..cut]);
        self.pending.push(PendingString {
            key_hash,
            site,
            generation,
            bytesize,
            memsize,
            has_escapes,
            preview: preview_start..preview_start + cut,
        });
        if self.pending.len() == PENDING_STRINGS {
            self.apply_pending();
        }
    }

    /// Looks up the queued strings. Each first-sighting lookup is a likely cache miss; done
    /// together in this loop the CPU overlaps them instead of stalling once per string.
    fn apply_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        let previews = std::mem::take(&mut self.pending_previews);
        for string in &pending {
            self.count(string, &previews[string.preview.clone()]);
        }
        (self.pending, self.pending_previews) = (pending, previews);
        self.pending.clear();
        self.pending_previews.clear();
    }

    fn count(&mut self, string: &PendingString, preview: &[u8]) {
        let key_hash = string.key_hash;
        // The filter bit comes from hash bits that neither the slot nor the fingerprint uses.
        let bit = ((key_hash >> 12) as usize) & (PROMOTED_BITS - 1);
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        let known = if self.promoted[word] & mask != 0 {
            self.entries.get_mut(&key_hash)
        } else {
            None
        };
        let entry = match known {
            Some(entry) => entry,
            None => {
                // Slot from the low bits, fingerprint from the high bits (never 0, the empty mark).
                let fingerprint = ((key_hash >> 32) as u32) | 1;
                let slot = &mut self.seen_once[(key_hash as usize) & (SEEN_ONCE_SLOTS - 1)];
                if *slot != fingerprint {
                    *slot = fingerprint;
                    return;
                }
                *slot = 0;
                self.promoted[word] |= mask;
                // The first sighting's memsize is taken to equal this one's: same content, site
                // and generation.
                self.entries.entry(key_hash).or_insert(DuplicateEntry {
                    site: string.site,
                    generation: string.generation,
                    count: 1,
                    bytesize: string.bytesize,
                    memsize: string.memsize,
                    preview: None,
                })
            }
        };
        entry.count += 1;
        entry.memsize += string.memsize;
        if entry.count == 2 {
            let text = heapfleet_dump::JsonStr::from_raw(preview, string.has_escapes).decode();
            entry.preview = Some(text.into());
        }
        if self.entries.len() >= DUPLICATE_TABLE_CAPACITY {
            self.prune();
        }
    }

    fn prune(&mut self) {
        while self.entries.len() >= DUPLICATE_TABLE_CAPACITY / 2 {
            let min_count = self.min_count;
            self.entries.retain(|_, entry| entry.count >= min_count);
            self.min_count += 1;
        }
    }
}

/// Returns the largest index `<= limit` that does not split a UTF-8 sequence or an escape.
fn floor_char_boundary(bytes: &[u8], limit: usize) -> usize {
    if bytes.len() <= limit {
        return bytes.len();
    }
    let mut cut = limit;
    while cut > 0 && (bytes[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    // Do not end on a lone backslash: it would start an escape that is not there.
    let trailing_backslashes = bytes[..cut]
        .iter()
        .rev()
        .take_while(|&&byte| byte == b'\\')
        .count();
    if trailing_backslashes % 2 == 1 {
        cut -= 1;
    }
    cut
}

/// Streams a dump's records into aggregates and an object index. Use it as the parser's
/// [`Visitor`], then call [`DumpAggregator::finish`].
pub struct DumpAggregator<S: FnMut(Vec<u8>)> {
    files: FileInterner,
    /// Scan-time site -> index site id (one entry per distinct site: a small table).
    site_ids: HashMap<ScanSiteKey, u32, FixedState>,
    scan_sites: Vec<ScanSiteKey>,
    /// The site of the previous object: consecutive objects very often share it.
    last_site: Option<(ScanSiteKey, u32)>,
    /// Totals per (site id, generation), keyed by `site << 32 | generation`.
    totals: HashMap<u64, Totals, FixedState>,
    /// Updates to `totals` not applied yet: (key, memsize, bytesize, references).
    pending_totals: Vec<(u64, u64, u64, u64)>,
    /// CLASS/MODULE address -> name (or the real class name of a singleton class).
    class_names: HashMap<u64, Option<Box<str>>, FixedState>,
    duplicates: DuplicateCounter,
    roots: Vec<(String, u64)>,
    shapes: Totals,
    /// The object-index encoder; `None` when only aggregates are wanted.
    index: Option<IndexEncoder<S>>,
}

impl<S: FnMut(Vec<u8>)> DumpAggregator<S> {
    /// Returns an aggregator that passes encoded object-index chunks to `index_sink`.
    pub fn new(index_sink: S) -> Self {
        Self::build(Some(IndexEncoder::new(index_sink)))
    }

    fn build(index: Option<IndexEncoder<S>>) -> Self {
        DumpAggregator {
            files: FileInterner::default(),
            site_ids: HashMap::with_hasher(FixedState::default()),
            scan_sites: Vec::new(),
            last_site: None,
            totals: HashMap::with_capacity_and_hasher(4096, FixedState::default()),
            pending_totals: Vec::with_capacity(PENDING_TOTALS),
            class_names: HashMap::with_hasher(FixedState::default()),
            duplicates: DuplicateCounter::new(),
            roots: Vec::new(),
            shapes: Totals::default(),
            index,
        }
    }

    fn add_object(&mut self, object: &ObjectRecord<'_>) {
        let object_type = object.object_type.unwrap_or(ObjectType::Unknown);
        if matches!(object_type, ObjectType::Class | ObjectType::Module) {
            let name = object
                .name
                .or(object.real_class_name)
                .map(|name| name.decode().into());
            self.class_names.insert(object.address, name);
        }
        let key = ScanSiteKey {
            file: object
                .file
                .map_or(ABSENT, |file| self.files.intern(file.raw())),
            line: object.line.unwrap_or(ABSENT),
            object_type,
            // An IMEMO's "class" slot holds VM-internal data (a cref's class, a method entry's
            // owner), not the object's class; naming it would mislead.
            class: if object_type == ObjectType::Imemo {
                0
            } else {
                object.class.unwrap_or(0)
            },
        };
        let generation = object.generation.unwrap_or(NO_GENERATION);
        let site = self.site_id(key);
        let bytesize = object.bytesize.unwrap_or(0);
        self.pending_totals.push((
            (u64::from(site) << 32) | u64::from(generation),
            object.memsize,
            bytesize,
            u64::from(object.references.len()),
        ));
        if self.pending_totals.len() == PENDING_TOTALS {
            self.apply_pending_totals();
        }

        if object_type == ObjectType::String
            && let Some(value) = object.value
        {
            self.duplicates.add(
                value.raw(),
                value.has_escapes(),
                site,
                generation,
                bytesize,
                object.memsize,
            );
        }
        if let Some(index) = &mut self.index {
            index.push(&IndexEntry {
                address: object.address,
                object_id: object.object_id,
                site,
                generation: object.generation,
                memsize: object.memsize,
                bytesize,
            });
        }
    }

    /// Applies the queued totals updates. Each update is a likely cache miss in a large table;
    /// done one per object they stall in turn, between thousands of parsing instructions, while
    /// done together in this tight loop the CPU overlaps them.
    fn apply_pending_totals(&mut self) {
        for &(key, memsize, bytesize, references) in &self.pending_totals {
            let totals = self.totals.entry(key).or_default();
            totals.count += 1;
            totals.memsize += memsize;
            totals.bytesize += bytesize;
            totals.references += references;
        }
        self.pending_totals.clear();
    }

    /// Returns the id of a scan-time site, registering it on first sight.
    #[inline]
    fn site_id(&mut self, key: ScanSiteKey) -> u32 {
        if let Some((last_key, last_site)) = self.last_site
            && last_key == key
        {
            return last_site;
        }
        let site = match self.site_ids.get(&key) {
            Some(&site) => site,
            None => {
                let site =
                    u32::try_from(self.scan_sites.len()).expect("fewer than 4 billion sites");
                self.site_ids.insert(key, site);
                self.scan_sites.push(key);
                site
            }
        };
        self.last_site = Some((key, site));
        site
    }

    /// Resolves class names and files, merges sites that resolve alike, and returns the
    /// aggregates. `parse` is what the parser returned.
    pub fn finish(mut self, parse: ParseStats) -> DumpAggregates {
        self.apply_pending_totals();
        self.duplicates.apply_pending();
        let DumpAggregator {
            files,
            scan_sites,
            totals,
            class_names,
            duplicates,
            roots,
            shapes,
            index,
            ..
        } = self;
        if let Some(index) = index {
            index.finish();
        }
        let file_names: Vec<String> = files
            .names
            .iter()
            .map(|raw| {
                heapfleet_dump::JsonStr::from_raw(raw, raw.contains(&b'\\'))
                    .decode()
                    .into_owned()
            })
            .collect();
        let resolve = |key: &ScanSiteKey| SiteKey {
            file: (key.file != ABSENT).then(|| file_names[key.file as usize].clone()),
            line: (key.line != ABSENT).then_some(key.line),
            object_type: key.object_type,
            class_name: class_names.get(&key.class).map(|name| {
                name.as_deref()
                    .map_or_else(|| "(anonymous class)".to_owned(), str::to_owned)
            }),
        };
        let index_sites: Vec<SiteKey> = scan_sites.iter().map(resolve).collect();

        let mut merged: std::collections::BTreeMap<(SiteKey, Option<u32>), Totals> =
            Default::default();
        for (key, site_totals) in totals {
            let (site, generation) = ((key >> 32) as u32, key as u32);
            let generation = (generation != NO_GENERATION).then_some(generation);
            merged
                .entry((index_sites[site as usize].clone(), generation))
                .or_default()
                .add(&site_totals);
        }
        let sites = merged
            .into_iter()
            .map(|((site, generation), totals)| SiteGenerationStats {
                site,
                generation,
                totals,
            })
            .collect();

        let mut duplicated_strings: Vec<DuplicatedString> = duplicates
            .entries
            .into_iter()
            .filter(|(_, entry)| entry.count >= 2)
            .map(|(_, entry)| DuplicatedString {
                value: entry.preview.map(String::from).unwrap_or_default(),
                site: index_sites[entry.site as usize].clone(),
                generation: (entry.generation != NO_GENERATION).then_some(entry.generation),
                count: entry.count,
                bytesize: entry.bytesize,
                memsize: entry.memsize,
            })
            .collect();
        duplicated_strings.sort_by(|left, right| {
            (right.count * right.bytesize.max(1), right.count)
                .cmp(&(left.count * left.bytesize.max(1), left.count))
                .then_with(|| left.value.cmp(&right.value))
        });
        duplicated_strings.truncate(MAX_DUPLICATED_STRINGS);

        DumpAggregates {
            sites,
            duplicated_strings,
            index_sites,
            roots,
            shapes,
            parse,
        }
    }
}

impl DumpAggregator<fn(Vec<u8>)> {
    /// Returns an aggregator that computes the aggregates only, without an object index: for a
    /// quick look at a dump that will not be diffed.
    pub fn without_index() -> Self {
        Self::build(None)
    }
}

impl<S: FnMut(Vec<u8>)> Visitor for DumpAggregator<S> {
    fn record(&mut self, _line_number: u64, record: &Record<'_>) {
        match record {
            Record::Object(object) => self.add_object(object),
            Record::Root(root) => {
                let name = root.root.decode();
                let references = u64::from(root.references.len());
                match self
                    .roots
                    .iter_mut()
                    .find(|(existing, _)| *existing == name)
                {
                    Some((_, total)) => *total += references,
                    None => self.roots.push((name.into_owned(), references)),
                }
            }
            Record::Shape(shape) => {
                self.shapes.count += 1;
                self.shapes.memsize += shape.memsize;
            }
        }
    }

    fn bad_line(&mut self, _bad_line: &BadLine) {}
}

#[cfg(test)]
mod tests {
    use heapfleet_dump::{ParseOptions, parse_reader};

    use super::*;
    use crate::index::decode_chunk;

    const DUMP: &str = r#"{"type":"ROOT", "root":"vm", "references":["0x100", "0x200"]}
{"address":"0x100", "type":"CLASS", "class":"0x900", "name":"Shop::Cart", "references":[], "memsize":500}
{"address":"0x200", "type":"OBJECT", "class":"0x100", "ivars":2, "references":["0x300"], "file":"/app/cart.rb", "line":3, "method":"new", "generation":5, "memsize":40}
{"address":"0x300", "type":"STRING", "class":"0x400", "bytesize":3, "value":"abc", "file":"/app/cart.rb", "line":4, "generation":5, "memsize":40}
{"address":"0x310", "type":"STRING", "class":"0x400", "bytesize":3, "value":"abc", "file":"/app/cart.rb", "line":4, "generation":5, "memsize":40}
{"address":"0x320", "type":"STRING", "class":"0x400", "bytesize":3, "value":"xyz", "file":"/app/cart.rb", "line":4, "generation":6, "memsize":40}
{"address":"0x330", "type":"STRING", "class":"0x401", "bytesize":3, "value":"abc", "file":"/app/cart.rb", "line":4, "generation":5, "memsize":40}
{"address":"0x400", "type":"CLASS", "class":"0x901", "name":"String", "memsize":600}
{"address":"0x401", "type":"CLASS", "class":"0x902", "name":"String", "memsize":600}
{"address":"0x500", "type":"HASH", "class":"0x999", "size":0, "memsize":160}
"#;

    fn aggregate(dump: &str) -> (DumpAggregates, Vec<IndexEntry>) {
        let mut chunks = Vec::new();
        let mut aggregator = DumpAggregator::new(|chunk| chunks.push(chunk));
        let parse =
            parse_reader(dump.as_bytes(), &ParseOptions::default(), &mut aggregator).unwrap();
        let aggregates = aggregator.finish(parse);
        let mut entries = Vec::new();
        for chunk in &chunks {
            decode_chunk(chunk, &mut entries).unwrap();
        }
        (aggregates, entries)
    }

    fn site(
        file: Option<&str>,
        line: Option<u32>,
        object_type: ObjectType,
        class_name: Option<&str>,
    ) -> SiteKey {
        SiteKey {
            file: file.map(str::to_owned),
            line,
            object_type,
            class_name: class_name.map(str::to_owned),
        }
    }

    #[test]
    fn test_aggregator_resolves_classes_and_merges_same_named_classes() {
        let (aggregates, _) = aggregate(DUMP);
        let strings_gen5 = aggregates
            .sites
            .iter()
            .find(|row| {
                row.site
                    == site(
                        Some("/app/cart.rb"),
                        Some(4),
                        ObjectType::String,
                        Some("String"),
                    )
                    && row.generation == Some(5)
            })
            .expect("merged string site");
        assert_eq!(
            strings_gen5.totals,
            Totals {
                count: 3,
                memsize: 120,
                bytesize: 9,
                references: 0
            }
        );
        let object = aggregates
            .sites
            .iter()
            .find(|row| row.site.object_type == ObjectType::Object)
            .expect("object site");
        assert_eq!(object.site.class_name.as_deref(), Some("Shop::Cart"));
        assert_eq!(object.totals.references, 1);
        let hash = aggregates
            .sites
            .iter()
            .find(|row| row.site.object_type == ObjectType::Hash)
            .unwrap();
        assert_eq!(hash.site, site(None, None, ObjectType::Hash, None));
        assert_eq!(hash.generation, None);
    }

    #[test]
    fn test_aggregator_without_index_gives_the_same_aggregates() {
        let (with_index, _) = aggregate(DUMP);
        let mut aggregator = DumpAggregator::without_index();
        let parse =
            parse_reader(DUMP.as_bytes(), &ParseOptions::default(), &mut aggregator).unwrap();
        assert_eq!(aggregator.finish(parse), with_index);
    }

    #[test]
    fn test_aggregator_counts_every_object_once() {
        let (aggregates, entries) = aggregate(DUMP);
        let total: u64 = aggregates.sites.iter().map(|row| row.totals.count).sum();
        assert_eq!(total, 9);
        assert_eq!(aggregates.parse.objects, 9);
        assert_eq!(entries.len(), 9);
        assert_eq!(aggregates.roots, vec![("vm".to_owned(), 2)]);
        let string_entry = entries.iter().find(|entry| entry.address == 0x320).unwrap();
        assert_eq!(string_entry.generation, Some(6));
        assert_eq!(
            aggregates.index_sites[string_entry.site as usize].object_type,
            ObjectType::String
        );
    }

    #[test]
    fn test_aggregator_finds_duplicated_strings_per_site_and_generation() {
        let (aggregates, _) = aggregate(DUMP);
        assert_eq!(
            aggregates.duplicated_strings.len(),
            1,
            "{:?}",
            aggregates.duplicated_strings
        );
        let duplicate = &aggregates.duplicated_strings[0];
        assert_eq!(duplicate.value, "abc");
        // 0x300 and 0x310 share a scan-time site; 0x330 has another class address, so it is
        // counted under its own scan-time site and only merged in the site totals.
        assert_eq!(duplicate.count, 2);
        assert_eq!(duplicate.generation, Some(5));
    }

    #[test]
    fn test_duplicate_counter_stays_bounded_and_keeps_heavy_hitters() {
        let mut counter = DuplicateCounter::new();
        for index in 0..500_000u64 {
            counter.add(format!("unique-{index}").as_bytes(), false, 0, 0, 10, 40);
            if index % 10 == 0 {
                counter.add(b"hot", false, 1, 0, 3, 40);
            }
        }
        counter.apply_pending();
        assert!(counter.entries.len() < DUPLICATE_TABLE_CAPACITY);
        let hot = counter
            .entries
            .values()
            .find(|entry| entry.preview.as_deref() == Some("hot"))
            .unwrap();
        assert_eq!(hot.count, 50_000);
    }

    #[test]
    fn test_file_interner_tells_apart_paths_with_equal_tails() {
        let mut files = FileInterner::default();
        let paths: [&[u8]; 4] = [
            b"/app/a/lib/rack/utils.rb",
            b"/app/b/lib/rack/utils.rb",
            b"utils.rb",
            b"/app/a/lib/rack/utils.rb",
        ];
        let ids: Vec<u32> = paths.iter().map(|path| files.intern(path)).collect();
        assert_eq!(ids, vec![0, 1, 2, 0]);
        assert_eq!(files.names.len(), 3);
    }

    #[test]
    fn test_floor_char_boundary_never_splits_utf8_or_escapes() {
        assert_eq!(floor_char_boundary("aé".as_bytes(), 2), 1);
        assert_eq!(floor_char_boundary(br"ab\n", 3), 2);
        assert_eq!(floor_char_boundary(br"a\\b", 3), 3);
        assert_eq!(floor_char_boundary(b"abc", 10), 3);
    }
}
