//! The conformance suite every [`AggregateStore`] implementation must pass (feature
//! `testsuite`).
//!
//! One `pub async fn` per behaviour, each taking `&dyn AggregateStore`;
//! [`run_aggregate_store_test_suite`] runs them all. The functions know nothing about the backend
//! and may share a keyspace with other runs: each one only touches dump ids it made with
//! [`unique_dump_id`].

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use heapfleet_analysis::{
    DominatorNode, DumpAggregates, DumpOwnership, DuplicatedString, IndexEncoder, IndexEntry,
    OwnerSite, Retained, RetainedGroup, RetainedSite, SiteGenerationStats, SiteKey, SiteOwner,
    Totals,
};
use heapfleet_dump::{BadLine, BadLineReason, ObjectType, ParseStats};

use crate::error::{Result, StorageError};
use crate::store::{AggregateStore, DumpSiteOwnership, DumpSiteStats, SiteSeriesPoint};

/// Returns a dump id no other suite run uses, even against a shared database.
pub fn unique_dump_id(test_name: &str) -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since_epoch| since_epoch.as_nanos());
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!(
        "suite-{test_name}-{}-{nanos}-{sequence}",
        std::process::id()
    )
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

/// The site the series tests follow.
pub fn leaky_site() -> SiteKey {
    site(
        Some("/app/models/cart.rb"),
        Some(12),
        ObjectType::String,
        Some("String"),
    )
}

fn totals(count: u64) -> Totals {
    Totals {
        count,
        memsize: count * 40,
        bytesize: count * 3,
        references: count / 2,
    }
}

fn row(site: SiteKey, generation: Option<u32>, count: u64) -> SiteGenerationStats {
    SiteGenerationStats {
        site,
        generation,
        totals: totals(count),
    }
}

/// Returns aggregates exercising every stored part and every awkward site key: absent file,
/// line, class and generation, an empty file name and class name (which are not absent),
/// non-ASCII and quoted text, the largest line and generation. `scale` multiplies the leaky
/// site's counts so dumps differ. Sites come sorted by site then generation, as reads return
/// them.
pub fn sample_aggregates(scale: u64) -> DumpAggregates {
    let quoted_file = "/app/lib/\"weird\" naïve.rb";
    let mut sites = vec![
        row(leaky_site(), None, scale),
        row(leaky_site(), Some(7), 2 * scale),
        row(leaky_site(), Some(u32::MAX - 1), 3 * scale),
        row(site(None, None, ObjectType::Hash, None), None, 11),
        row(
            site(Some(""), Some(0), ObjectType::Object, Some("")),
            Some(0),
            12,
        ),
        row(
            site(
                Some(quoted_file),
                None,
                ObjectType::Data,
                Some("Foo::\"Bar\""),
            ),
            Some(3),
            13,
        ),
        row(
            site(Some(quoted_file), Some(u32::MAX), ObjectType::Unknown, None),
            Some(3),
            14,
        ),
        row(
            site(
                Some("/gems/rack-2.2.8/lib/rack.rb"),
                Some(9),
                ObjectType::Array,
                Some("Array"),
            ),
            Some(1),
            15,
        ),
    ];
    sites
        .sort_by(|left, right| (&left.site, left.generation).cmp(&(&right.site, right.generation)));
    let index_sites = vec![
        leaky_site(),
        site(None, None, ObjectType::Hash, None),
        // A repeated key: classes of one name merged at the end of a scan.
        leaky_site(),
        site(Some(""), Some(0), ObjectType::Object, Some("")),
    ];
    DumpAggregates {
        sites,
        duplicated_strings: vec![DuplicatedString {
            value: "naïve \"copy\"".to_owned(),
            site: leaky_site(),
            generation: Some(7),
            count: 40 * scale,
            bytesize: 12,
            memsize: 1600 * scale,
        }],
        index_sites,
        roots: vec![("vm".to_owned(), 3), ("global_list".to_owned(), 120)],
        shapes: Totals {
            count: 5,
            memsize: 500,
            bytesize: 0,
            references: 0,
        },
        parse: ParseStats {
            bytes: 10_000,
            lines: 120,
            objects: 100,
            roots: 2,
            shapes: 5,
            bad_lines: 1,
            repaired_lines: 1,
            skipped_lines: 0,
            truncated: false,
            bad_line_samples: vec![BadLine {
                line_number: 42,
                reason: BadLineReason::UnescapedQuote,
            }],
        },
    }
}

/// Returns `count` index entries spread over `site_count` sites, starting at `first_address`.
pub fn sample_index_entries(first_address: u64, count: u64, site_count: u32) -> Vec<IndexEntry> {
    (0..count)
        .map(|position| IndexEntry {
            address: first_address + position * 40,
            object_id: (position % 3 == 0).then_some(8 * position + 8),
            site: u32::try_from(position % u64::from(site_count.max(1))).unwrap_or(0),
            generation: (position % 4 != 0).then_some(u32::try_from(position % 50).unwrap_or(0)),
            memsize: 40 + position % 7,
            bytesize: position % 5,
        })
        .collect()
}

/// Encodes `entries` as one self-contained index chunk.
pub fn encode_chunk(entries: &[IndexEntry]) -> Vec<u8> {
    let mut chunks = Vec::new();
    let mut encoder = IndexEncoder::new(|chunk| chunks.push(chunk));
    for entry in entries {
        encoder.push(entry);
    }
    encoder.finish();
    assert!(
        chunks.len() <= 1,
        "a test chunk must stay below the encoder's chunk size"
    );
    chunks.pop().unwrap_or_default()
}

/// Stores `chunks` (in the given order of numbers) and finishes the index.
async fn put_index(store: &dyn AggregateStore, dump: &str, chunks: &[Vec<u8>], order: &[u32]) {
    for &chunk_number in order {
        let chunk = chunks[usize::try_from(chunk_number).expect("chunk number fits usize")].clone();
        store
            .put_index_chunk(dump, chunk_number, chunk)
            .await
            .expect("put index chunk");
    }
    let chunk_count = u32::try_from(chunks.len()).expect("chunk count fits u32");
    store
        .finish_index(dump, chunk_count)
        .await
        .expect("finish index");
}

fn is_not_found<T: std::fmt::Debug>(result: &Result<T>) -> bool {
    matches!(result, Err(StorageError::NotFound(_)))
}

/// Aggregates read back equal what was put, every part and every awkward site key included;
/// the site-only read agrees.
pub async fn test_store_aggregates_round_trip(store: &dyn AggregateStore) {
    let dump = unique_dump_id("round-trip");
    let aggregates = sample_aggregates(1);
    store
        .put_dump_aggregates(&dump, &aggregates)
        .await
        .expect("put aggregates");
    let read = store
        .get_dump_aggregates(&dump)
        .await
        .expect("get aggregates");
    assert_eq!(read, aggregates);
    let sites = store.get_site_stats(&dump).await.expect("get site stats");
    assert_eq!(sites, aggregates.sites);

    // Unsorted input reads back sorted by site then generation.
    let mut reversed = aggregates.clone();
    reversed.sites.reverse();
    let unsorted_dump = unique_dump_id("round-trip-unsorted");
    store
        .put_dump_aggregates(&unsorted_dump, &reversed)
        .await
        .expect("put unsorted");
    assert_eq!(
        store
            .get_site_stats(&unsorted_dump)
            .await
            .expect("get unsorted"),
        aggregates.sites
    );

    let empty_dump = unique_dump_id("round-trip-empty");
    store
        .put_dump_aggregates(&empty_dump, &DumpAggregates::default())
        .await
        .expect("put empty");
    assert_eq!(
        store
            .get_dump_aggregates(&empty_dump)
            .await
            .expect("get empty"),
        DumpAggregates::default()
    );
}

/// A second put under the same id replaces the first, never adds to it; putting the same
/// aggregates twice reads back as once.
pub async fn test_store_put_aggregates_overwrites(store: &dyn AggregateStore) {
    let dump = unique_dump_id("overwrite");
    let first = sample_aggregates(1);
    store
        .put_dump_aggregates(&dump, &first)
        .await
        .expect("put first");
    store
        .put_dump_aggregates(&dump, &first)
        .await
        .expect("put first again");
    assert_eq!(store.get_dump_aggregates(&dump).await.expect("get"), first);
    let series = store
        .site_series(&[&dump], &leaky_site())
        .await
        .expect("series");
    assert_eq!(
        series[0].totals.count, 6,
        "a repeated put must not double the totals"
    );

    let mut second = sample_aggregates(5);
    second.sites.retain(|row| row.site == leaky_site());
    second.index_sites.truncate(1);
    second.roots.clear();
    store
        .put_dump_aggregates(&dump, &second)
        .await
        .expect("put second");
    assert_eq!(
        store.get_dump_aggregates(&dump).await.expect("get second"),
        second
    );
}

/// Repeated (site, generation) rows and empty dump ids are `Invalid`, and a rejected put
/// leaves the dump as it was.
pub async fn test_store_rejects_invalid_writes(store: &dyn AggregateStore) {
    let dump = unique_dump_id("invalid");
    let mut repeated = sample_aggregates(1);
    let copy = repeated.sites[0].clone();
    repeated.sites.push(copy);
    let result = store.put_dump_aggregates(&dump, &repeated).await;
    assert!(
        matches!(result, Err(StorageError::Invalid(_))),
        "{result:?}"
    );
    assert!(is_not_found(&store.get_dump_aggregates(&dump).await));

    let valid = sample_aggregates(1);
    store
        .put_dump_aggregates(&dump, &valid)
        .await
        .expect("put valid");
    let result = store.put_dump_aggregates(&dump, &repeated).await;
    assert!(
        matches!(result, Err(StorageError::Invalid(_))),
        "{result:?}"
    );
    assert_eq!(store.get_dump_aggregates(&dump).await.expect("get"), valid);

    let empty_id = "";
    assert!(matches!(
        store.put_dump_aggregates(empty_id, &valid).await,
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        store.get_dump_aggregates(empty_id).await,
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        store.put_index_chunk(empty_id, 0, vec![1]).await,
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        store.site_series(&[empty_id], &leaky_site()).await,
        Err(StorageError::Invalid(_))
    ));
}

/// Reads of a dump with nothing stored are `NotFound`.
pub async fn test_store_unknown_dump_is_not_found(store: &dyn AggregateStore) {
    let dump = unique_dump_id("unknown");
    assert!(is_not_found(&store.get_dump_aggregates(&dump).await));
    assert!(is_not_found(&store.get_site_stats(&dump).await));
    assert!(is_not_found(&store.load_index(&dump).await));
    assert!(is_not_found(
        &store.site_series(&[&dump], &leaky_site()).await
    ));
    assert!(is_not_found(&store.site_totals_for_dumps(&[&dump]).await));
}

/// Chunks stored out of order load back in chunk order with the aggregates' site table.
pub async fn test_store_index_round_trips_in_chunk_order(store: &dyn AggregateStore) {
    let dump = unique_dump_id("index");
    let aggregates = sample_aggregates(1);
    let site_count = u32::try_from(aggregates.index_sites.len()).expect("site count fits u32");
    let parts: Vec<Vec<IndexEntry>> = (0..4u64)
        .map(|part| {
            sample_index_entries(
                0x7f00_0000_0000 + part * 0x10_0000,
                500 + part * 100,
                site_count,
            )
        })
        .collect();
    let chunks: Vec<Vec<u8>> = parts.iter().map(|part| encode_chunk(part)).collect();
    put_index(store, &dump, &chunks, &[2, 0, 3, 1]).await;
    store
        .put_dump_aggregates(&dump, &aggregates)
        .await
        .expect("put aggregates");
    let index = store.load_index(&dump).await.expect("load index");
    assert_eq!(index.sites, aggregates.index_sites);
    assert_eq!(index.entries, parts.concat());
}

/// Full-size chunks as the encoder makes them (about 1 MiB each) survive the store.
pub async fn test_store_index_keeps_full_size_chunks(store: &dyn AggregateStore) {
    let dump = unique_dump_id("index-large");
    let entries = sample_index_entries(0x5500_0000_0000, 250_000, 4);
    let mut chunks = Vec::new();
    let mut encoder = IndexEncoder::new(|chunk| chunks.push(chunk));
    for entry in &entries {
        encoder.push(entry);
    }
    encoder.finish();
    assert!(chunks.len() >= 2, "the test must span full chunks");
    store
        .put_dump_aggregates(&dump, &sample_aggregates(1))
        .await
        .expect("put aggregates");
    let order: Vec<u32> = (0..u32::try_from(chunks.len()).expect("chunk count fits u32")).collect();
    put_index(store, &dump, &chunks, &order).await;
    let index = store.load_index(&dump).await.expect("load index");
    assert_eq!(index.entries, entries);
}

/// An index is not readable before it is finished, nor without aggregates, nor after a new
/// chunk arrives; finishing with a chunk missing is `Invalid`.
pub async fn test_store_unfinished_index_is_not_readable(store: &dyn AggregateStore) {
    let dump = unique_dump_id("unfinished");
    let chunks: Vec<Vec<u8>> = (0..3u64)
        .map(|part| encode_chunk(&sample_index_entries(part * 0x1_0000, 10, 4)))
        .collect();
    store
        .put_index_chunk(&dump, 0, chunks[0].clone())
        .await
        .expect("put chunk 0");
    store
        .put_index_chunk(&dump, 2, chunks[2].clone())
        .await
        .expect("put chunk 2");
    store
        .put_dump_aggregates(&dump, &sample_aggregates(1))
        .await
        .expect("put aggregates");
    assert!(
        is_not_found(&store.load_index(&dump).await),
        "unfinished index must not load"
    );

    let result = store.finish_index(&dump, 3).await;
    assert!(
        matches!(result, Err(StorageError::Invalid(_))),
        "{result:?}"
    );
    assert!(
        is_not_found(&store.load_index(&dump).await),
        "a failed finish must not finish"
    );

    store
        .put_index_chunk(&dump, 1, chunks[1].clone())
        .await
        .expect("put chunk 1");
    store.finish_index(&dump, 3).await.expect("finish");
    assert_eq!(
        store.load_index(&dump).await.expect("load").entries.len(),
        30
    );

    // A re-ingest's first chunk hides the old index until the re-ingest finishes.
    store
        .put_index_chunk(&dump, 0, chunks[0].clone())
        .await
        .expect("put chunk 0 again");
    assert!(
        is_not_found(&store.load_index(&dump).await),
        "a re-ingest in progress must not load"
    );
    store.finish_index(&dump, 3).await.expect("finish again");
    assert_eq!(
        store
            .load_index(&dump)
            .await
            .expect("load again")
            .entries
            .len(),
        30
    );

    // Finished but without aggregates (so without a site table): not readable either.
    let no_aggregates = unique_dump_id("unfinished-no-aggregates");
    put_index(store, &no_aggregates, &chunks[..1], &[0]).await;
    assert!(is_not_found(&store.load_index(&no_aggregates).await));
}

/// Finishing with fewer chunks than an earlier ingest stored drops the extra chunks; an empty
/// index (zero chunks) loads as no entries.
pub async fn test_store_finish_index_drops_stale_chunks(store: &dyn AggregateStore) {
    let dump = unique_dump_id("stale-chunks");
    store
        .put_dump_aggregates(&dump, &sample_aggregates(1))
        .await
        .expect("put aggregates");
    let old: Vec<Vec<u8>> = (0..3u64)
        .map(|part| encode_chunk(&sample_index_entries(part * 0x1_0000, 10, 4)))
        .collect();
    put_index(store, &dump, &old, &[0, 1, 2]).await;
    let new_entries = [
        sample_index_entries(0x9_0000, 7, 4),
        sample_index_entries(0xa_0000, 8, 4),
    ];
    let new: Vec<Vec<u8>> = new_entries.iter().map(|part| encode_chunk(part)).collect();
    put_index(store, &dump, &new, &[0, 1]).await;
    let index = store.load_index(&dump).await.expect("load");
    assert_eq!(index.entries, new_entries.concat());

    let empty = unique_dump_id("empty-index");
    store
        .put_dump_aggregates(&empty, &DumpAggregates::default())
        .await
        .expect("put empty aggregates");
    store
        .finish_index(&empty, 0)
        .await
        .expect("finish empty index");
    let index = store.load_index(&empty).await.expect("load empty index");
    assert!(index.entries.is_empty() && index.sites.is_empty());
}

/// A site's series gives one point per requested dump, in the order asked, generations summed,
/// zero where the dump has no such objects; a dump without aggregates is `NotFound`.
pub async fn test_store_site_series_across_dumps(store: &dyn AggregateStore) {
    let first = unique_dump_id("series-1");
    let second = unique_dump_id("series-2");
    let third = unique_dump_id("series-3");
    store
        .put_dump_aggregates(&first, &sample_aggregates(1))
        .await
        .expect("put first");
    let mut without_site = sample_aggregates(2);
    without_site.sites.retain(|row| row.site != leaky_site());
    store
        .put_dump_aggregates(&second, &without_site)
        .await
        .expect("put second");
    store
        .put_dump_aggregates(&third, &sample_aggregates(10))
        .await
        .expect("put third");

    let series = store
        .site_series(&[&third, &first, &second], &leaky_site())
        .await
        .expect("series");
    let scaled = |scale: u64| {
        let mut sum = Totals::default();
        for count in [scale, 2 * scale, 3 * scale] {
            sum.add(&totals(count));
        }
        sum
    };
    assert_eq!(
        series,
        vec![
            SiteSeriesPoint {
                dump: third.clone(),
                totals: scaled(10)
            },
            SiteSeriesPoint {
                dump: first.clone(),
                totals: scaled(1)
            },
            SiteSeriesPoint {
                dump: second.clone(),
                totals: Totals::default()
            },
        ]
    );

    // Absent parts of a site key are matched exactly: no file is not an empty file name.
    let no_site = site(None, None, ObjectType::Object, None);
    let empty_site = site(Some(""), Some(0), ObjectType::Object, Some(""));
    let points = store
        .site_series(&[&first], &no_site)
        .await
        .expect("series of absent site");
    assert_eq!(points[0].totals, Totals::default());
    let points = store
        .site_series(&[&first], &empty_site)
        .await
        .expect("series of empty site");
    assert_eq!(points[0].totals, totals(12));

    assert!(
        store
            .site_series(&[], &leaky_site())
            .await
            .expect("empty series")
            .is_empty()
    );
    let missing = unique_dump_id("series-missing");
    assert!(is_not_found(
        &store.site_series(&[&first, &missing], &leaky_site()).await
    ));
}

/// The bulk read returns each dump's site rows in the order asked; a missing dump is
/// `NotFound`.
pub async fn test_store_site_totals_for_dumps(store: &dyn AggregateStore) {
    let first = unique_dump_id("bulk-1");
    let second = unique_dump_id("bulk-2");
    let first_aggregates = sample_aggregates(1);
    let mut second_aggregates = sample_aggregates(3);
    second_aggregates.sites.truncate(2);
    store
        .put_dump_aggregates(&first, &first_aggregates)
        .await
        .expect("put first");
    store
        .put_dump_aggregates(&second, &second_aggregates)
        .await
        .expect("put second");
    let bulk = store
        .site_totals_for_dumps(&[&second, &first])
        .await
        .expect("bulk read");
    assert_eq!(
        bulk,
        vec![
            DumpSiteStats {
                dump: second.clone(),
                sites: second_aggregates.sites.clone()
            },
            DumpSiteStats {
                dump: first.clone(),
                sites: first_aggregates.sites.clone()
            },
        ]
    );
    assert!(
        store
            .site_totals_for_dumps(&[])
            .await
            .expect("empty bulk read")
            .is_empty()
    );
    let missing = unique_dump_id("bulk-missing");
    assert!(is_not_found(
        &store.site_totals_for_dumps(&[&first, &missing]).await
    ));
}

/// Many sites per dump and many dumps per bulk read: a dump of 10,000 site rows reads back whole
/// alone and amid 20 other dumps, in the order asked, and a smaller rewrite leaves no old row.
pub async fn test_store_many_sites_and_dumps(store: &dyn AggregateStore) {
    let large = unique_dump_id("many-sites");
    let mut large_aggregates = sample_aggregates(2);
    large_aggregates.sites = (0..10_000_u32)
        .map(|line| {
            let file = format!("/app/file_{}.rb", line % 37);
            row(
                site(Some(&file), Some(line), ObjectType::String, Some("String")),
                Some(line % 5),
                u64::from(line) + 1,
            )
        })
        .collect();
    large_aggregates
        .sites
        .sort_by(|a, b| (&a.site, a.generation).cmp(&(&b.site, b.generation)));
    store
        .put_dump_aggregates(&large, &large_aggregates)
        .await
        .expect("put the large dump");
    assert_eq!(
        store
            .get_site_stats(&large)
            .await
            .expect("read the large dump"),
        large_aggregates.sites
    );
    let mut small_dumps = Vec::new();
    for scale in 1..=20 {
        let dump = unique_dump_id("many-dumps");
        let aggregates = sample_aggregates(scale);
        store
            .put_dump_aggregates(&dump, &aggregates)
            .await
            .expect("put a small dump");
        small_dumps.push((dump, aggregates.sites));
    }
    let mut asked: Vec<&str> = small_dumps.iter().map(|(dump, _)| dump.as_str()).collect();
    asked.insert(7, &large);
    let bulk = store
        .site_totals_for_dumps(&asked)
        .await
        .expect("bulk read");
    let bulk_dumps: Vec<&str> = bulk.iter().map(|stats| stats.dump.as_str()).collect();
    assert_eq!(bulk_dumps, asked);
    assert_eq!(bulk[7].sites, large_aggregates.sites);
    for (dump, sites) in &small_dumps {
        let read = bulk
            .iter()
            .find(|stats| &stats.dump == dump)
            .expect("dump read");
        assert_eq!(&read.sites, sites, "sites of {dump}");
    }
    let smaller = sample_aggregates(5);
    store
        .put_dump_aggregates(&large, &smaller)
        .await
        .expect("rewrite the large dump");
    assert_eq!(
        store
            .get_site_stats(&large)
            .await
            .expect("read the rewrite"),
        smaller.sites
    );
}

/// Deleting a dump removes its aggregates and index and nothing of other dumps; deleting again
/// succeeds.
pub async fn test_store_delete_dump(store: &dyn AggregateStore) {
    let deleted = unique_dump_id("delete");
    let kept = unique_dump_id("delete-kept");
    let chunk = encode_chunk(&sample_index_entries(0x1000, 10, 4));
    for dump in [&deleted, &kept] {
        store
            .put_dump_aggregates(dump, &sample_aggregates(1))
            .await
            .expect("put aggregates");
        put_index(store, dump, std::slice::from_ref(&chunk), &[0]).await;
    }
    store.delete_dump(&deleted).await.expect("delete");
    assert!(is_not_found(&store.get_dump_aggregates(&deleted).await));
    assert!(is_not_found(&store.get_site_stats(&deleted).await));
    assert!(is_not_found(&store.load_index(&deleted).await));
    store.delete_dump(&deleted).await.expect("delete again");
    store
        .delete_dump(&unique_dump_id("delete-never-stored"))
        .await
        .expect("delete unknown");

    assert_eq!(
        store
            .get_dump_aggregates(&kept)
            .await
            .expect("kept aggregates"),
        sample_aggregates(1)
    );
    assert_eq!(
        store
            .load_index(&kept)
            .await
            .expect("kept index")
            .entries
            .len(),
        10
    );

    // A deleted dump can be stored anew, with no leftovers from before.
    store
        .put_dump_aggregates(&deleted, &DumpAggregates::default())
        .await
        .expect("put after delete");
    assert!(
        store
            .get_site_stats(&deleted)
            .await
            .expect("sites after delete")
            .is_empty()
    );
    assert!(is_not_found(&store.load_index(&deleted).await));
    store
        .finish_index(&deleted, 0)
        .await
        .expect("finish after delete");
    assert!(
        store
            .load_index(&deleted)
            .await
            .expect("index after delete")
            .entries
            .is_empty()
    );
}

/// Returns one site's ownership row: `owners` owners (a root among them), each with a path of a
/// few steps, so that a row is about a kilobyte of JSON. `scale` multiplies the sizes.
pub fn sample_retained_site(site: SiteKey, scale: u64, owners: usize) -> RetainedSite {
    let owners = (0..owners)
        .map(|number| {
            let number_u64 = number as u64;
            if number == 1 {
                SiteOwner {
                    owner: None,
                    address: None,
                    owner_objects: 1,
                    root: "vm".to_owned(),
                    path: vec!["vm".to_owned()],
                    objects: scale,
                    bytes: 40 * scale,
                    owner_retained_objects: scale,
                    owner_retained_bytes: 40 * scale,
                }
            } else {
                SiteOwner {
                    owner: Some(OwnerSite {
                        file: (number % 3 != 2).then(|| format!("/app/lib/holder_{number}.rb")),
                        line: (number % 4 != 3).then_some(u32::try_from(number).unwrap_or(0)),
                        object_type: ObjectType::Hash,
                        class_name: Some(format!("Holder::N{number} \"naïve\"")),
                    }),
                    address: Some(0x7f00_0000_0000 + number_u64 * 40),
                    owner_objects: number_u64 + 1,
                    root: "global_list".to_owned(),
                    path: vec![
                        "global_list".to_owned(),
                        "Object".to_owned(),
                        "…".to_owned(),
                        format!("Holder::N{number}"),
                        "Hash".to_owned(),
                    ],
                    objects: 100 * scale + number_u64,
                    bytes: 4_000 * scale + number_u64,
                    owner_retained_objects: 200 * scale + number_u64,
                    owner_retained_bytes: 8_000 * scale + number_u64,
                }
            }
        })
        .collect();
    RetainedSite {
        site,
        retained: Retained {
            objects: 10 * scale,
            shallow_bytes: 400 * scale,
            retained_objects: 12 * scale,
            retained_bytes: 480 * scale,
        },
        owners,
    }
}

/// The sites of [`sample_ownership`], most retained bytes first: every awkward site key (absent
/// file, line and class, an empty file and class name, non-ASCII and quoted text, the largest
/// line).
pub fn sample_ownership_sites() -> Vec<SiteKey> {
    vec![
        leaky_site(),
        site(None, None, ObjectType::Hash, None),
        site(Some(""), Some(0), ObjectType::Object, Some("")),
        site(
            Some("/app/lib/\"weird\" naïve.rb"),
            Some(u32::MAX),
            ObjectType::Unknown,
            None,
        ),
        site(
            Some("/gems/rack-2.2.8/lib/rack.rb"),
            Some(9),
            ObjectType::Array,
            Some("Array"),
        ),
    ]
}

/// Returns ownership results exercising every stored part: sites with awkward keys, owners
/// with and without an owner object, classes, types, a dominator tree, and sizes up to
/// `u64::MAX`. `scale` multiplies the sizes so dumps differ.
pub fn sample_ownership(scale: u64) -> DumpOwnership {
    let sites: Vec<RetainedSite> = sample_ownership_sites()
        .into_iter()
        .enumerate()
        .map(|(position, site)| sample_retained_site(site, scale * (10 - position as u64), 3))
        .collect();
    DumpOwnership {
        objects: u64::MAX,
        reachable_objects: 1_000 * scale,
        reachable_bytes: 40_000 * scale,
        sites,
        classes: vec![
            RetainedGroup {
                key: "String".to_owned(),
                retained: Retained {
                    objects: 5,
                    shallow_bytes: 200,
                    retained_objects: 5,
                    retained_bytes: 200 * scale,
                },
            },
            RetainedGroup {
                key: "(no class) \"x\" é".to_owned(),
                retained: Retained::default(),
            },
        ],
        types: vec![RetainedGroup {
            key: "STRING".to_owned(),
            retained: Retained {
                objects: 5,
                shallow_bytes: 200,
                retained_objects: 5,
                retained_bytes: 200 * scale,
            },
        }],
        tree: vec![
            DominatorNode {
                parent: None,
                depth: 0,
                address: 0x7f00_0000_1000,
                object_type: ObjectType::Hash,
                class_name: Some("Hash".to_owned()),
                file: Some("/app/cache.rb".to_owned()),
                line: Some(3),
                root: "global_list".to_owned(),
                shallow_bytes: 160,
                retained_objects: 900,
                retained_bytes: 36_000 * scale,
            },
            DominatorNode {
                parent: Some(0),
                depth: 1,
                address: 0x7f00_0000_2000,
                object_type: ObjectType::String,
                class_name: None,
                file: None,
                line: None,
                root: "global_list".to_owned(),
                shallow_bytes: 40,
                retained_objects: 1,
                retained_bytes: 40,
            },
        ],
    }
}

/// Returns ownership results with `count` sites (`/app/file_<n % 37>.rb`, line `n`), each
/// with five owners.
pub fn ownership_with_sites(count: u32, scale: u64) -> DumpOwnership {
    let mut ownership = sample_ownership(scale);
    ownership.sites = (0..count)
        .map(|line| {
            let file = format!("/app/file_{}.rb", line % 37);
            sample_retained_site(
                site(Some(&file), Some(line), ObjectType::String, Some("String")),
                scale + u64::from(count - line),
                5,
            )
        })
        .collect();
    ownership
}

/// Ownership results read back equal what was put, every part and awkward site key included;
/// they are independent of the aggregates: a dump may have either without the other.
pub async fn test_store_ownership_round_trip(store: &dyn AggregateStore) {
    let dump = unique_dump_id("ownership-round-trip");
    let ownership = sample_ownership(1);
    store
        .put_dump_ownership(&dump, &ownership)
        .await
        .expect("put ownership");
    assert_eq!(
        store
            .get_dump_ownership(&dump)
            .await
            .expect("get ownership"),
        ownership
    );
    assert!(
        is_not_found(&store.get_dump_aggregates(&dump).await),
        "ownership results are not aggregates"
    );

    // Aggregates stored later leave the ownership results alone, and the reverse.
    store
        .put_dump_aggregates(&dump, &sample_aggregates(1))
        .await
        .expect("put aggregates");
    assert_eq!(
        store
            .get_dump_ownership(&dump)
            .await
            .expect("get ownership after aggregates"),
        ownership
    );
    store
        .put_dump_ownership(&dump, &sample_ownership(2))
        .await
        .expect("put ownership again");
    assert_eq!(
        store
            .get_dump_aggregates(&dump)
            .await
            .expect("aggregates after ownership"),
        sample_aggregates(1)
    );

    let empty = unique_dump_id("ownership-round-trip-empty");
    store
        .put_dump_ownership(&empty, &DumpOwnership::default())
        .await
        .expect("put empty ownership");
    assert_eq!(
        store
            .get_dump_ownership(&empty)
            .await
            .expect("get empty ownership"),
        DumpOwnership::default()
    );
}

/// A second put replaces the first, never merges with it: a rewrite with fewer sites leaves
/// none of the old sites readable, whole or by site; putting the same results twice reads back
/// as once.
pub async fn test_store_put_ownership_replaces(store: &dyn AggregateStore) {
    let dump = unique_dump_id("ownership-rewrite");
    let first = ownership_with_sites(300, 1);
    store
        .put_dump_ownership(&dump, &first)
        .await
        .expect("put first");
    store
        .put_dump_ownership(&dump, &first)
        .await
        .expect("put first again");
    assert_eq!(store.get_dump_ownership(&dump).await.expect("get"), first);

    let mut second = sample_ownership(7);
    second.sites.truncate(2);
    second.sites.push(first.sites[5].clone());
    second.tree.truncate(1);
    second.classes.clear();
    store
        .put_dump_ownership(&dump, &second)
        .await
        .expect("put second");
    assert_eq!(
        store.get_dump_ownership(&dump).await.expect("get second"),
        second
    );
    let old_sites = [
        first.sites[0].site.clone(),
        first.sites[5].site.clone(),
        first.sites[299].site.clone(),
        sample_ownership_sites()[1].clone(),
    ];
    let read = store
        .site_ownership(&[&dump], &old_sites)
        .await
        .expect("site ownership after the rewrite");
    assert_eq!(
        read,
        vec![DumpSiteOwnership {
            dump: dump.clone(),
            sites: vec![first.sites[5].clone(), second.sites[1].clone()],
        }]
    );

    // Fewer sites still: none.
    let mut third = second.clone();
    third.sites.clear();
    store
        .put_dump_ownership(&dump, &third)
        .await
        .expect("put third");
    assert_eq!(
        store.get_dump_ownership(&dump).await.expect("get third"),
        third
    );
    let read = store
        .site_ownership(&[&dump], &old_sites)
        .await
        .expect("site ownership after the second rewrite");
    assert!(read[0].sites.is_empty(), "{read:?}");
}

/// `site_ownership` answers one entry per dump in the order asked, each with the asked sites
/// it has in the order asked (a site asked twice given once); a dump without ownership results
/// (with aggregates or with nothing stored) gives an entry without sites. Dumps and sites in
/// numbers beyond what one request carries read the same.
pub async fn test_store_site_ownership_across_dumps(store: &dyn AggregateStore) {
    let first = unique_dump_id("site-ownership-1");
    let second = unique_dump_id("site-ownership-2");
    let aggregates_only = unique_dump_id("site-ownership-aggregates-only");
    let nothing = unique_dump_id("site-ownership-nothing");
    let first_ownership = sample_ownership(1);
    let mut second_ownership = sample_ownership(3);
    second_ownership.sites.remove(0);
    store
        .put_dump_ownership(&first, &first_ownership)
        .await
        .expect("put first");
    store
        .put_dump_ownership(&second, &second_ownership)
        .await
        .expect("put second");
    store
        .put_dump_aggregates(&aggregates_only, &sample_aggregates(1))
        .await
        .expect("put aggregates");

    let sites = sample_ownership_sites();
    let asked = [sites[2].clone(), sites[0].clone(), sites[2].clone()];
    let read = store
        .site_ownership(&[&second, &aggregates_only, &first, &nothing], &asked)
        .await
        .expect("site ownership");
    assert_eq!(
        read,
        vec![
            DumpSiteOwnership {
                dump: second.clone(),
                sites: vec![second_ownership.sites[1].clone()],
            },
            DumpSiteOwnership {
                dump: aggregates_only.clone(),
                sites: Vec::new(),
            },
            DumpSiteOwnership {
                dump: first.clone(),
                sites: vec![
                    first_ownership.sites[2].clone(),
                    first_ownership.sites[0].clone()
                ],
            },
            DumpSiteOwnership {
                dump: nothing.clone(),
                sites: Vec::new(),
            },
        ]
    );
    assert!(
        store
            .site_ownership(&[], &asked)
            .await
            .expect("no dumps")
            .is_empty()
    );
    let no_sites = store
        .site_ownership(&[&first, &nothing], &[])
        .await
        .expect("no sites");
    assert_eq!(no_sites.len(), 2);
    assert!(no_sites.iter().all(|entry| entry.sites.is_empty()));

    // 40 dumps, some without ownership results, and 150 sites asked of 200 stored (and 20
    // that no dump has).
    let wide = ownership_with_sites(200, 2);
    let mut dumps = Vec::new();
    for number in 0..40 {
        let dump = unique_dump_id("site-ownership-many");
        if number % 3 != 1 {
            store
                .put_dump_ownership(&dump, &wide)
                .await
                .expect("put a dump of many sites");
        }
        dumps.push(dump);
    }
    let mut asked_sites: Vec<SiteKey> = wide
        .sites
        .iter()
        .rev()
        .step_by(4)
        .chain(wide.sites.iter().skip(1).step_by(2))
        .take(150)
        .map(|retained| retained.site.clone())
        .collect();
    asked_sites.extend((0..20).map(|line| {
        site(
            Some("/app/elsewhere.rb"),
            Some(line),
            ObjectType::String,
            None,
        )
    }));
    let mut expected_sites: Vec<RetainedSite> = Vec::new();
    for site in &asked_sites {
        if let Some(retained) = wide.sites.iter().find(|retained| &retained.site == site)
            && !expected_sites.contains(retained)
        {
            expected_sites.push(retained.clone());
        }
    }
    let dump_refs: Vec<&str> = dumps.iter().map(String::as_str).collect();
    let read = store
        .site_ownership(&dump_refs, &asked_sites)
        .await
        .expect("site ownership of many dumps");
    assert_eq!(read.len(), dumps.len());
    for (number, (entry, dump)) in read.iter().zip(&dumps).enumerate() {
        assert_eq!(&entry.dump, dump);
        if number % 3 == 1 {
            assert!(entry.sites.is_empty(), "{dump} has no ownership results");
        } else {
            assert_eq!(entry.sites, expected_sites, "sites of {dump}");
        }
    }
}

/// Sites a dump lacks are absent from its entry, including sites that differ from a stored one
/// only in an absent part (no file is not an empty file name, no class is not an empty class
/// name) or in the type.
pub async fn test_store_site_ownership_leaves_out_missing_sites(store: &dyn AggregateStore) {
    let dump = unique_dump_id("site-ownership-missing");
    let ownership = sample_ownership(1);
    store
        .put_dump_ownership(&dump, &ownership)
        .await
        .expect("put ownership");
    let sites = sample_ownership_sites();
    let lookalikes = [
        site(None, Some(0), ObjectType::Object, Some("")),
        site(Some(""), Some(0), ObjectType::Object, None),
        site(Some(""), None, ObjectType::Object, Some("")),
        site(Some(""), Some(0), ObjectType::String, Some("")),
        site(None, None, ObjectType::Hash, Some("")),
        site(Some(""), None, ObjectType::Hash, None),
    ];
    let read = store
        .site_ownership(&[&dump], &lookalikes)
        .await
        .expect("site ownership of lookalikes");
    assert!(read[0].sites.is_empty(), "{read:?}");
    let mut asked = lookalikes.to_vec();
    asked.insert(3, sites[1].clone());
    asked.push(sites[2].clone());
    let read = store
        .site_ownership(&[&dump], &asked)
        .await
        .expect("site ownership of a mix");
    assert_eq!(
        read[0].sites,
        vec![ownership.sites[1].clone(), ownership.sites[2].clone()]
    );
}

/// Reads of ownership results before any put are `NotFound`, also for a dump with aggregates;
/// a repeated site or an empty dump id is `Invalid`, and a rejected put leaves the dump's
/// results as they were.
pub async fn test_store_ownership_not_found_before_put(store: &dyn AggregateStore) {
    let dump = unique_dump_id("ownership-unknown");
    assert!(is_not_found(&store.get_dump_ownership(&dump).await));
    store
        .put_dump_aggregates(&dump, &sample_aggregates(1))
        .await
        .expect("put aggregates");
    assert!(is_not_found(&store.get_dump_ownership(&dump).await));

    let mut repeated = sample_ownership(1);
    repeated.sites.push(repeated.sites[0].clone());
    let result = store.put_dump_ownership(&dump, &repeated).await;
    assert!(
        matches!(result, Err(StorageError::Invalid(_))),
        "{result:?}"
    );
    assert!(is_not_found(&store.get_dump_ownership(&dump).await));
    let valid = sample_ownership(1);
    store
        .put_dump_ownership(&dump, &valid)
        .await
        .expect("put valid");
    let result = store.put_dump_ownership(&dump, &repeated).await;
    assert!(
        matches!(result, Err(StorageError::Invalid(_))),
        "{result:?}"
    );
    assert_eq!(
        store.get_dump_ownership(&dump).await.expect("get valid"),
        valid
    );

    let empty_id = "";
    assert!(matches!(
        store.put_dump_ownership(empty_id, &valid).await,
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        store.get_dump_ownership(empty_id).await,
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        store
            .site_ownership(&[&dump, empty_id], &[leaky_site()])
            .await,
        Err(StorageError::Invalid(_))
    ));
}

/// Deleting a dump removes its ownership results with everything else, and nothing of other
/// dumps; the dump can get new results afterwards, with no leftovers.
pub async fn test_store_delete_dump_removes_ownership(store: &dyn AggregateStore) {
    let deleted = unique_dump_id("ownership-delete");
    let kept = unique_dump_id("ownership-delete-kept");
    let ownership = sample_ownership(1);
    for dump in [&deleted, &kept] {
        store
            .put_dump_aggregates(dump, &sample_aggregates(1))
            .await
            .expect("put aggregates");
        store
            .put_dump_ownership(dump, &ownership)
            .await
            .expect("put ownership");
    }
    store.delete_dump(&deleted).await.expect("delete");
    assert!(is_not_found(&store.get_dump_ownership(&deleted).await));
    assert!(is_not_found(&store.get_dump_aggregates(&deleted).await));
    let read = store
        .site_ownership(&[&deleted, &kept], &sample_ownership_sites())
        .await
        .expect("site ownership after delete");
    assert!(read[0].sites.is_empty(), "{read:?}");
    assert_eq!(read[1].sites, ownership.sites);
    assert_eq!(
        store
            .get_dump_ownership(&kept)
            .await
            .expect("kept ownership"),
        ownership
    );
    store.delete_dump(&deleted).await.expect("delete again");

    // Deleted with only ownership results stored.
    let ownership_only = unique_dump_id("ownership-delete-only");
    store
        .put_dump_ownership(&ownership_only, &ownership)
        .await
        .expect("put ownership only");
    store
        .delete_dump(&ownership_only)
        .await
        .expect("delete ownership only");
    assert!(is_not_found(
        &store.get_dump_ownership(&ownership_only).await
    ));

    let mut smaller = sample_ownership(4);
    smaller.sites.truncate(1);
    store
        .put_dump_ownership(&deleted, &smaller)
        .await
        .expect("put after delete");
    assert_eq!(
        store
            .get_dump_ownership(&deleted)
            .await
            .expect("ownership after delete"),
        smaller
    );
}

/// A dump of 20,000 sites (each row with five owners) round-trips, and `site_ownership` of
/// three of its sites returns those three only.
pub async fn test_store_ownership_many_sites(store: &dyn AggregateStore) {
    let dump = unique_dump_id("ownership-many-sites");
    let ownership = ownership_with_sites(20_000, 1);
    store
        .put_dump_ownership(&dump, &ownership)
        .await
        .expect("put 20,000 sites");
    let read = store
        .get_dump_ownership(&dump)
        .await
        .expect("get 20,000 sites");
    assert_eq!(read.sites.len(), ownership.sites.len());
    assert!(read == ownership, "20,000 sites read back differently");
    let asked = [
        ownership.sites[19_999].site.clone(),
        ownership.sites[0].site.clone(),
        ownership.sites[7_321].site.clone(),
    ];
    let read = store
        .site_ownership(&[&dump], &asked)
        .await
        .expect("three sites of 20,000");
    assert_eq!(
        read,
        vec![DumpSiteOwnership {
            dump: dump.clone(),
            sites: vec![
                ownership.sites[19_999].clone(),
                ownership.sites[0].clone(),
                ownership.sites[7_321].clone(),
            ],
        }]
    );
    store.delete_dump(&dump).await.expect("delete");
}

/// Stores a dump, drops `store`, reopens with `reopen` and checks that aggregates, index and
/// ownership results are still there. Durable backends run this with their own reopen.
pub async fn check_dumps_survive_reopen<S, F, Fut>(store: S, reopen: F)
where
    S: AggregateStore,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<S>>,
{
    let dump = unique_dump_id("durable");
    let aggregates = sample_aggregates(2);
    let entries = sample_index_entries(0x4000, 100, 4);
    store
        .put_dump_aggregates(&dump, &aggregates)
        .await
        .expect("put aggregates");
    put_index(&store, &dump, &[encode_chunk(&entries)], &[0]).await;
    store
        .put_dump_ownership(&dump, &sample_ownership(2))
        .await
        .expect("put ownership");
    drop(store);
    let reopened = reopen().await.expect("reopen the store");
    assert_eq!(
        reopened
            .get_dump_aggregates(&dump)
            .await
            .expect("aggregates survive a reopen"),
        aggregates
    );
    assert_eq!(
        reopened
            .load_index(&dump)
            .await
            .expect("index survives a reopen")
            .entries,
        entries
    );
    assert_eq!(
        reopened
            .get_dump_ownership(&dump)
            .await
            .expect("ownership survives a reopen"),
        sample_ownership(2)
    );
}

/// Runs every backend-independent behaviour against `store`.
pub async fn run_aggregate_store_test_suite(store: &dyn AggregateStore) {
    test_store_aggregates_round_trip(store).await;
    test_store_put_aggregates_overwrites(store).await;
    test_store_rejects_invalid_writes(store).await;
    test_store_unknown_dump_is_not_found(store).await;
    test_store_index_round_trips_in_chunk_order(store).await;
    test_store_index_keeps_full_size_chunks(store).await;
    test_store_unfinished_index_is_not_readable(store).await;
    test_store_finish_index_drops_stale_chunks(store).await;
    test_store_site_series_across_dumps(store).await;
    test_store_site_totals_for_dumps(store).await;
    test_store_many_sites_and_dumps(store).await;
    test_store_delete_dump(store).await;
    test_store_ownership_round_trip(store).await;
    test_store_put_ownership_replaces(store).await;
    test_store_site_ownership_across_dumps(store).await;
    test_store_site_ownership_leaves_out_missing_sites(store).await;
    test_store_ownership_not_found_before_put(store).await;
    test_store_delete_dump_removes_ownership(store).await;
    test_store_ownership_many_sites(store).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_sample_aggregates_are_sorted_without_repeats() {
        let aggregates = sample_aggregates(1);
        let keys: Vec<(&SiteKey, Option<u32>)> = aggregates
            .sites
            .iter()
            .map(|row| (&row.site, row.generation))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(keys, sorted);
    }
}
