//! The query service over gRPC gives the same answers as the queries computed in process, for
//! every query, on real dumps (the shipped series, filed under two hosts).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use heapfleet_analysis::{LeakRank, PathTarget};
use heapfleet_catalog::{Catalog, NewDump, ProcessKey, SqliteCatalog};
use heapfleet_dump::ParseOptions;
use heapfleet_query::model::DumpQuery;
use heapfleet_query::{Queries, QueryServer, RemoteQueries, StoreQueries};
use heapfleet_storage::{AggregateStore, MemoryStore};
use heapfleet_tests::fixture;

/// Imports the series as one process on each of two hosts.
async fn queries(dir: &std::path::Path) -> StoreQueries {
    let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::open(dir).await.unwrap());
    let store: Arc<dyn AggregateStore> = Arc::new(MemoryStore::new());
    let mut files: Vec<_> = std::fs::read_dir(fixture("dumps/series"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".dump.gz"))
        .collect();
    files.sort();
    for host in ["web-1", "web-2"] {
        for (index, path) in files.iter().enumerate() {
            let new_dump = NewDump {
                process: ProcessKey {
                    tenant: "t".to_owned(),
                    host: host.to_owned(),
                    pid: 7,
                    instance: String::new(),
                },
                taken_at_unix: 1_800_000_000 + index as i64 * 600,
                jobs: Some(index as u64 * 100),
                role: Some("sidekiq".to_owned()),
                labels: BTreeMap::from([("version".to_owned(), format!("{}", index / 2))]),
                file_name: "x.dump.gz".to_owned(),
                size_bytes: 0,
                content_sha256: String::new(),
                gc_count: None,
                rss_bytes: None,
                object_key: None,
            };
            heapfleet_ingest::import_file(
                path,
                new_dump,
                catalog.as_ref(),
                store.clone(),
                ParseOptions::default(),
                None,
                None,
            )
            .await
            .unwrap();
        }
    }
    StoreQueries::new("t", catalog, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_remote_queries_answer_like_local_ones() {
    let dir = tempfile::tempdir().unwrap();
    let local = queries(dir.path()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut parts = heapfleet_service::server::server_parts(&[]).await.unwrap();
    parts
        .routes
        .add_service(QueryServer::new(local.clone()).into_server());
    let routes = parts.routes.routes();
    let server = tokio::spawn(async move {
        heapfleet_service::server::serve(
            listener,
            routes,
            &heapfleet_service::tls::TlsFile::default(),
            std::future::pending(),
        )
        .await
    });
    let remote = RemoteQueries::connect(&url).await.unwrap();

    let everything = DumpQuery::default();
    let web_2 = DumpQuery {
        host: Some("web-2".to_owned()),
        ..DumpQuery::default()
    };
    let local_processes = local.list_processes(&everything).await.unwrap();
    assert_eq!(local_processes.len(), 2);
    let remote_processes = remote.list_processes(&everything).await.unwrap();
    assert_eq!(
        remote_processes
            .iter()
            .map(|process| (&process.process.host, process.dump_count))
            .collect::<Vec<_>>(),
        local_processes
            .iter()
            .map(|process| (&process.process.host, process.dump_count))
            .collect::<Vec<_>>()
    );
    let filtered = remote.list_processes(&web_2).await.unwrap();
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].process.host, "web-2");
    assert_eq!(filtered[0].dump_count, 3);

    let report = local
        .leak_report(&everything, 10, LeakRank::Memory)
        .await
        .unwrap();
    assert!(!report.suspects.is_empty());
    assert_eq!(report.suspects[0].processes_growing, 2);
    assert_eq!(
        remote
            .leak_report(&everything, 10, LeakRank::Memory)
            .await
            .unwrap(),
        report
    );
    let one_host = remote
        .leak_report(&web_2, 10, LeakRank::Memory)
        .await
        .unwrap();
    assert_eq!(one_host.processes_analysed, 1);
    assert_eq!(one_host.suspects[0].hosts_growing, vec!["web-2"]);

    let version_0 = DumpQuery {
        labels: BTreeMap::from([("version".to_owned(), "0".to_owned())]),
        ..DumpQuery::default()
    };
    let local_compare = local.compare(&web_2, &everything, 5).await.unwrap();
    assert_eq!(
        remote.compare(&web_2, &everything, 5).await.unwrap(),
        local_compare
    );
    // Version 0 holds two dumps per process: too few to judge.
    assert_eq!(
        local
            .compare(&version_0, &web_2, 5)
            .await
            .unwrap()
            .a_processes,
        0
    );

    let site = &report.suspects[0].site;
    let file = site.file.clone().unwrap();
    let line = site.line.unwrap();
    let timeline = remote
        .site_timeline(&file, line, &everything)
        .await
        .unwrap();
    assert_eq!(
        timeline,
        local.site_timeline(&file, line, &everything).await.unwrap()
    );
    assert_eq!(timeline.processes.len(), 2);
    assert!(timeline.processes[0].points[2].count > timeline.processes[0].points[0].count);

    let first = local.list_dumps(&everything).await.unwrap()[0]
        .id
        .to_string();
    let summary = remote.dump_summary(&first).await.unwrap();
    assert_eq!(summary, local.dump_summary(&first).await.unwrap());
    // Imported dumps keep no file: retainer paths say so, as FAILED_PRECONDITION.
    let target = PathTarget::Site { file, line };
    let error = remote.retainer_paths(&first, &target, 3).await.unwrap_err();
    assert!(error.to_string().contains("--file"), "{error}");
    server.abort();
}
