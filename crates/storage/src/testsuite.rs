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
    DumpAggregates, DuplicatedString, IndexEncoder, IndexEntry, SiteGenerationStats, SiteKey,
    Totals,
};
use heapfleet_dump::{BadLine, BadLineReason, ObjectType, ParseStats};

use crate::error::{Result, StorageError};
use crate::store::{AggregateStore, DumpSiteStats, SiteSeriesPoint};

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

/// Stores a dump, drops `store`, reopens with `reopen` and checks that aggregates and index are
/// still there. Durable backends run this with their own reopen.
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
