//! The query answers to and from their API messages, both ways, so the server and the client
//! agree on every field.

use heapfleet_analysis::{
    DiffRow, DuplicatedString, EvidencePoint, GenerationDetail, GenerationFilter, GenerationTotals,
    GroupBy, GroupDifference, LeakReport, LeakSuspect, PathCluster, PathStep, ProcessEvidence,
    RankBy, RetainerPath, RetainerPaths, RollupRow, SignatureStep, SinceDump, SiteKey, Totals,
};
use heapfleet_analysis::{
    DominatorNode, GrowingOwner, HeldBy, HeldSite, LeakRank, OwnerSite, Retained, SiteOwner,
};
use heapfleet_catalog::ProcessSummary;
use heapfleet_proto::query::v1 as pb;
use heapfleet_service::convert::{dump_from_proto, dump_to_proto};

use crate::QueryError;
use crate::model::{
    BadLineSample, DumpDiff, DumpDominators, DumpGenerationDetail, DumpQuery, DumpRetained,
    DumpRetainerPaths, DumpRollup, DumpSummary, GroupComparison, ParseSummary, ProcessTimeline,
    RetainedBy, RetainedRow, SiteTimeline, TimelinePoint,
};

pub(crate) fn totals_to(totals: &Totals) -> pb::Totals {
    pb::Totals {
        count: totals.count,
        memsize: totals.memsize,
        bytesize: totals.bytesize,
        references: totals.references,
    }
}

pub(crate) fn totals_from(totals: Option<pb::Totals>) -> Totals {
    let totals = totals.unwrap_or_default();
    Totals {
        count: totals.count,
        memsize: totals.memsize,
        bytesize: totals.bytesize,
        references: totals.references,
    }
}

pub(crate) fn site_to(site: &SiteKey) -> pb::Site {
    pb::Site {
        file: site.file.clone(),
        line: site.line,
        r#type: site.object_type.as_str().to_owned(),
        class_name: site.class_name.clone(),
    }
}

pub(crate) fn site_from(site: Option<pb::Site>) -> Result<SiteKey, QueryError> {
    let site = site.unwrap_or_default();
    Ok(SiteKey {
        file: site.file,
        line: site.line,
        object_type: site
            .r#type
            .parse()
            .map_err(|_| QueryError::Internal(format!("unknown object type {:?}", site.r#type)))?,
        class_name: site.class_name,
    })
}

fn rows_to(rows: &[RollupRow]) -> Vec<pb::RollupRow> {
    rows.iter()
        .map(|row| pb::RollupRow {
            key: row.key.clone(),
            totals: Some(totals_to(&row.totals)),
        })
        .collect()
}

fn rows_from(rows: Vec<pb::RollupRow>) -> Vec<RollupRow> {
    rows.into_iter()
        .map(|row| RollupRow {
            key: row.key,
            totals: totals_from(row.totals),
        })
        .collect()
}

fn dump_from(
    dump: Option<heapfleet_proto::ingest::v1::Dump>,
) -> Result<heapfleet_catalog::DumpRecord, QueryError> {
    let dump = dump.ok_or_else(|| QueryError::Internal("the answer holds no dump".to_owned()))?;
    dump_from_proto(dump).map_err(|error| QueryError::Internal(format!("{error:#}")))
}

pub(crate) fn process_to(process: &ProcessSummary) -> pb::Process {
    pb::Process {
        host: process.process.host.clone(),
        pid: process.process.pid,
        instance: process.process.instance.clone(),
        dump_count: process.dump_count,
        first_taken_at_unix: process.first_taken_at_unix,
        last_taken_at_unix: process.last_taken_at_unix,
    }
}

pub(crate) fn process_from(tenant: &str, process: pb::Process) -> ProcessSummary {
    ProcessSummary {
        process: heapfleet_catalog::ProcessKey {
            tenant: tenant.to_owned(),
            host: process.host,
            pid: process.pid,
            instance: process.instance,
        },
        dump_count: process.dump_count,
        first_taken_at_unix: process.first_taken_at_unix,
        last_taken_at_unix: process.last_taken_at_unix,
    }
}

pub(crate) fn summary_to(summary: &DumpSummary) -> pb::DumpSummaryResponse {
    let parse = &summary.parse;
    pb::DumpSummaryResponse {
        dump: Some(dump_to_proto(&summary.dump)),
        generations: summary
            .generations
            .iter()
            .map(|bucket| pb::GenerationTotals {
                generation: bucket.generation,
                totals: Some(totals_to(&bucket.totals)),
            })
            .collect(),
        total: Some(totals_to(&summary.total)),
        shapes: Some(totals_to(&summary.shapes)),
        roots: summary
            .roots
            .iter()
            .map(|(category, references)| pb::RootCount {
                category: category.clone(),
                references: *references,
            })
            .collect(),
        parse: Some(pb::ParseSummary {
            bytes: parse.bytes,
            lines: parse.lines,
            objects: parse.objects,
            roots: parse.roots,
            shapes: parse.shapes,
            bad_lines: parse.bad_lines,
            repaired_lines: parse.repaired_lines,
            skipped_lines: parse.skipped_lines,
            truncated: parse.truncated,
            bad_line_samples: parse
                .bad_line_samples
                .iter()
                .map(|bad| pb::BadLine {
                    line_number: bad.line_number,
                    reason: bad.reason.clone(),
                })
                .collect(),
        }),
    }
}

pub(crate) fn summary_from(response: pb::DumpSummaryResponse) -> Result<DumpSummary, QueryError> {
    let parse = response.parse.unwrap_or_default();
    Ok(DumpSummary {
        dump: dump_from(response.dump)?,
        generations: response
            .generations
            .into_iter()
            .map(|bucket| GenerationTotals {
                generation: bucket.generation,
                totals: totals_from(bucket.totals),
            })
            .collect(),
        total: totals_from(response.total),
        shapes: totals_from(response.shapes),
        roots: response
            .roots
            .into_iter()
            .map(|root| (root.category, root.references))
            .collect(),
        parse: ParseSummary {
            bytes: parse.bytes,
            lines: parse.lines,
            objects: parse.objects,
            roots: parse.roots,
            shapes: parse.shapes,
            bad_lines: parse.bad_lines,
            repaired_lines: parse.repaired_lines,
            skipped_lines: parse.skipped_lines,
            truncated: parse.truncated,
            bad_line_samples: parse
                .bad_line_samples
                .into_iter()
                .map(|bad| BadLineSample {
                    line_number: bad.line_number,
                    reason: bad.reason,
                })
                .collect(),
        },
    })
}

pub(crate) fn group_by_from(by: i32) -> Result<GroupBy, QueryError> {
    Ok(match pb::GroupBy::try_from(by) {
        Ok(pb::GroupBy::Unspecified | pb::GroupBy::Site) => GroupBy::Site,
        Ok(pb::GroupBy::TypeSite) => GroupBy::TypeSite,
        Ok(pb::GroupBy::File) => GroupBy::File,
        Ok(pb::GroupBy::Gem) => GroupBy::Gem,
        Ok(pb::GroupBy::Class) => GroupBy::Class,
        Ok(pb::GroupBy::Type) => GroupBy::Type,
        Ok(pb::GroupBy::Generation) => GroupBy::Generation,
        Err(_) => return Err(QueryError::Invalid(format!("unknown grouping {by}"))),
    })
}

pub(crate) fn group_by_to(by: GroupBy) -> pb::GroupBy {
    match by {
        GroupBy::Site => pb::GroupBy::Site,
        GroupBy::TypeSite => pb::GroupBy::TypeSite,
        GroupBy::File => pb::GroupBy::File,
        GroupBy::Gem => pb::GroupBy::Gem,
        GroupBy::Class => pb::GroupBy::Class,
        GroupBy::Type => pb::GroupBy::Type,
        GroupBy::Generation => pb::GroupBy::Generation,
    }
}

pub(crate) fn rank_from(rank: i32) -> Result<RankBy, QueryError> {
    Ok(match pb::RankBy::try_from(rank) {
        Ok(pb::RankBy::Unspecified | pb::RankBy::Memsize) => RankBy::Memsize,
        Ok(pb::RankBy::Count) => RankBy::Count,
        Ok(pb::RankBy::References) => RankBy::References,
        Err(_) => return Err(QueryError::Invalid(format!("unknown ranking {rank}"))),
    })
}

pub(crate) fn rank_to(rank: RankBy) -> pb::RankBy {
    match rank {
        RankBy::Memsize => pb::RankBy::Memsize,
        RankBy::Count => pb::RankBy::Count,
        RankBy::References => pb::RankBy::References,
    }
}

pub(crate) fn generations_from(selector: Option<pb::GenerationSelector>) -> GenerationFilter {
    match selector {
        Some(pb::GenerationSelector {
            generation: Some(generation),
            ..
        }) => GenerationFilter::Only(generation),
        Some(pb::GenerationSelector {
            untracked: true, ..
        }) => GenerationFilter::Untracked,
        _ => GenerationFilter::All,
    }
}

pub(crate) fn generations_to(filter: GenerationFilter) -> pb::GenerationSelector {
    match filter {
        GenerationFilter::All => pb::GenerationSelector::default(),
        GenerationFilter::Only(generation) => pb::GenerationSelector {
            generation: Some(generation),
            untracked: false,
        },
        GenerationFilter::Untracked => pb::GenerationSelector {
            generation: None,
            untracked: true,
        },
    }
}

pub(crate) fn rollup_to(rollup: &DumpRollup) -> pb::RollupResponse {
    pb::RollupResponse {
        dump: Some(dump_to_proto(&rollup.dump)),
        rows: rows_to(&rollup.rows),
    }
}

pub(crate) fn rollup_from(response: pb::RollupResponse) -> Result<DumpRollup, QueryError> {
    Ok(DumpRollup {
        dump: dump_from(response.dump)?,
        rows: rows_from(response.rows),
    })
}

pub(crate) fn detail_to(detail: &DumpGenerationDetail) -> pb::GenerationDetailResponse {
    let inner = &detail.detail;
    pb::GenerationDetailResponse {
        dump: Some(dump_to_proto(&detail.dump)),
        totals: Some(totals_to(&inner.totals)),
        by_memsize: rows_to(&inner.by_memsize),
        by_count: rows_to(&inner.by_count),
        by_type_site: rows_to(&inner.by_type_site),
        reference_heavy: rows_to(&inner.reference_heavy),
        duplicated_strings: inner
            .duplicated_strings
            .iter()
            .map(|duplicate| pb::DuplicatedString {
                value: duplicate.value.clone(),
                site: Some(site_to(&duplicate.site)),
                generation: duplicate.generation,
                count: duplicate.count,
                bytesize: duplicate.bytesize,
                memsize: duplicate.memsize,
            })
            .collect(),
    }
}

pub(crate) fn detail_from(
    response: pb::GenerationDetailResponse,
) -> Result<DumpGenerationDetail, QueryError> {
    let mut duplicated_strings = Vec::with_capacity(response.duplicated_strings.len());
    for duplicate in response.duplicated_strings {
        duplicated_strings.push(DuplicatedString {
            value: duplicate.value,
            site: site_from(duplicate.site)?,
            generation: duplicate.generation,
            count: duplicate.count,
            bytesize: duplicate.bytesize,
            memsize: duplicate.memsize,
        });
    }
    Ok(DumpGenerationDetail {
        dump: dump_from(response.dump)?,
        detail: GenerationDetail {
            totals: totals_from(response.totals),
            by_memsize: rows_from(response.by_memsize),
            by_count: rows_from(response.by_count),
            by_type_site: rows_from(response.by_type_site),
            reference_heavy: rows_from(response.reference_heavy),
            duplicated_strings,
        },
    })
}

pub(crate) fn diff_to(diff: &DumpDiff) -> pb::DiffDumpsResponse {
    pb::DiffDumpsResponse {
        dumps: diff.dumps.iter().map(dump_to_proto).collect(),
        rows: diff
            .rows
            .iter()
            .map(|row| pb::DiffRow {
                site: Some(site_to(&row.site)),
                totals: Some(totals_to(&row.totals)),
            })
            .collect(),
        total: Some(totals_to(&diff.total)),
        row_count: u32::try_from(diff.row_count).unwrap_or(u32::MAX),
    }
}

pub(crate) fn diff_from(response: pb::DiffDumpsResponse) -> Result<DumpDiff, QueryError> {
    let mut dumps = Vec::with_capacity(response.dumps.len());
    for dump in response.dumps {
        dumps.push(dump_from(Some(dump))?);
    }
    let mut rows = Vec::with_capacity(response.rows.len());
    for row in response.rows {
        rows.push(DiffRow {
            site: site_from(row.site)?,
            totals: totals_from(row.totals),
        });
    }
    Ok(DumpDiff {
        dumps,
        rows,
        total: totals_from(response.total),
        row_count: response.row_count as usize,
    })
}

pub(crate) fn selector_to(query: &DumpQuery) -> pb::Selector {
    pb::Selector {
        host: query.host.clone().unwrap_or_default(),
        pid: query.pid,
        role: query.role.clone().unwrap_or_default(),
        labels: query.labels.clone().into_iter().collect(),
        taken_after_unix: query.taken_after,
        taken_before_unix: query.taken_before,
    }
}

pub(crate) fn selector_from(selector: Option<pb::Selector>) -> DumpQuery {
    let selector = selector.unwrap_or_default();
    let non_empty = |text: String| (!text.is_empty()).then_some(text);
    DumpQuery {
        host: non_empty(selector.host),
        pid: selector.pid,
        role: non_empty(selector.role),
        labels: selector.labels.into_iter().collect(),
        taken_after: selector.taken_after_unix,
        taken_before: selector.taken_before_unix,
        status: None,
    }
}

fn evidence_point_to(point: &EvidencePoint) -> pb::EvidencePoint {
    pb::EvidencePoint {
        dump_id: point.dump_id.clone(),
        taken_at_unix: point.taken_at_unix,
        jobs: point.jobs,
        count: point.count,
        memsize: point.memsize,
        retained_floor: point.retained_floor,
    }
}

fn evidence_point_from(point: pb::EvidencePoint) -> EvidencePoint {
    EvidencePoint {
        dump_id: point.dump_id,
        taken_at_unix: point.taken_at_unix,
        jobs: point.jobs,
        count: point.count,
        memsize: point.memsize,
        retained_floor: point.retained_floor,
    }
}

fn count_to(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

pub(crate) fn leak_report_to(report: &LeakReport) -> pb::LeakReportResponse {
    pb::LeakReportResponse {
        suspects: report
            .suspects
            .iter()
            .map(|suspect| pb::LeakSuspect {
                site: Some(site_to(&suspect.site)),
                score: suspect.score,
                confidence: suspect.confidence,
                processes_growing: count_to(suspect.processes_growing),
                processes_total: count_to(suspect.processes_total),
                hosts_growing: suspect.hosts_growing.clone(),
                hosts_total: count_to(suspect.hosts_total),
                growth_per_dump: suspect.growth_per_dump,
                bytes_per_dump: suspect.bytes_per_dump,
                growth_per_hour: suspect.growth_per_hour,
                bytes_per_hour: suspect.bytes_per_hour,
                growth_per_1000_jobs: suspect.growth_per_1000_jobs,
                since: suspect.since.as_ref().map(|since| pb::SinceDump {
                    dump_id: since.dump_id.clone(),
                    taken_at_unix: since.taken_at_unix,
                    host: since.host.clone(),
                    pid: since.pid,
                }),
                evidence: suspect
                    .evidence
                    .iter()
                    .map(|evidence| pb::ProcessEvidence {
                        host: evidence.host.clone(),
                        pid: evidence.pid,
                        instance: evidence.instance.clone(),
                        growing: evidence.growing,
                        score: evidence.score,
                        growth_per_dump: evidence.growth_per_dump,
                        series: evidence.series.iter().map(evidence_point_to).collect(),
                    })
                    .collect(),
                retained_bytes: suspect.retained_bytes,
                retained_bytes_per_dump: suspect.retained_bytes_per_dump,
                held_by: suspect.held_by.iter().map(held_by_to).collect(),
                leak: count_to(suspect.leak),
                owner: suspect.owner.as_ref().map(|owner| pb::GrowingOwner {
                    root: owner.root.clone(),
                    path: owner.path.clone(),
                    holds: owner
                        .holds
                        .iter()
                        .map(|held| pb::HeldSite {
                            site: Some(site_to(&held.site)),
                            objects: held.objects,
                            objects_per_dump: held.objects_per_dump,
                        })
                        .collect(),
                }),
            })
            .collect(),
        processes_analysed: count_to(report.processes_analysed),
        dumps_analysed: count_to(report.dumps_analysed),
    }
}

pub(crate) fn leak_report_from(response: pb::LeakReportResponse) -> Result<LeakReport, QueryError> {
    let mut suspects = Vec::with_capacity(response.suspects.len());
    for suspect in response.suspects {
        suspects.push(LeakSuspect {
            site: site_from(suspect.site)?,
            score: suspect.score,
            confidence: suspect.confidence,
            processes_growing: suspect.processes_growing as usize,
            processes_total: suspect.processes_total as usize,
            hosts_growing: suspect.hosts_growing,
            hosts_total: suspect.hosts_total as usize,
            growth_per_dump: suspect.growth_per_dump,
            bytes_per_dump: suspect.bytes_per_dump,
            growth_per_hour: suspect.growth_per_hour,
            bytes_per_hour: suspect.bytes_per_hour,
            growth_per_1000_jobs: suspect.growth_per_1000_jobs,
            since: suspect.since.map(|since| SinceDump {
                dump_id: since.dump_id,
                taken_at_unix: since.taken_at_unix,
                host: since.host,
                pid: since.pid,
            }),
            evidence: suspect
                .evidence
                .into_iter()
                .map(|evidence| ProcessEvidence {
                    host: evidence.host,
                    pid: evidence.pid,
                    instance: evidence.instance,
                    growing: evidence.growing,
                    score: evidence.score,
                    growth_per_dump: evidence.growth_per_dump,
                    series: evidence
                        .series
                        .into_iter()
                        .map(evidence_point_from)
                        .collect(),
                })
                .collect(),
            retained_bytes: suspect.retained_bytes,
            retained_bytes_per_dump: suspect.retained_bytes_per_dump,
            held_by: suspect
                .held_by
                .into_iter()
                .map(held_by_from)
                .collect::<Result<_, _>>()?,
            leak: suspect.leak as usize,
            owner: suspect.owner.map(growing_owner_from).transpose()?,
        });
    }
    Ok(LeakReport {
        suspects,
        processes_analysed: response.processes_analysed as usize,
        dumps_analysed: response.dumps_analysed as usize,
    })
}

pub(crate) fn comparison_to(comparison: &GroupComparison) -> pb::CompareGroupsResponse {
    pb::CompareGroupsResponse {
        a_processes: count_to(comparison.a_processes),
        b_processes: count_to(comparison.b_processes),
        rows: comparison
            .rows
            .iter()
            .map(|row| pb::GroupDifference {
                site: Some(site_to(&row.site)),
                a_growth_per_dump: row.a_growth_per_dump,
                b_growth_per_dump: row.b_growth_per_dump,
                a_count: row.a_count,
                b_count: row.b_count,
                delta_growth_per_dump: row.delta_growth_per_dump,
                delta_count: row.delta_count,
            })
            .collect(),
    }
}

pub(crate) fn comparison_from(
    response: pb::CompareGroupsResponse,
) -> Result<GroupComparison, QueryError> {
    let mut rows = Vec::with_capacity(response.rows.len());
    for row in response.rows {
        rows.push(GroupDifference {
            site: site_from(row.site)?,
            a_growth_per_dump: row.a_growth_per_dump,
            b_growth_per_dump: row.b_growth_per_dump,
            a_count: row.a_count,
            b_count: row.b_count,
            delta_growth_per_dump: row.delta_growth_per_dump,
            delta_count: row.delta_count,
        });
    }
    Ok(GroupComparison {
        a_processes: response.a_processes as usize,
        b_processes: response.b_processes as usize,
        rows,
    })
}

pub(crate) fn timeline_to(timeline: &SiteTimeline) -> pb::SiteTimelineResponse {
    pb::SiteTimelineResponse {
        processes: timeline
            .processes
            .iter()
            .map(|process| pb::ProcessTimeline {
                host: process.host.clone(),
                pid: process.pid,
                instance: process.instance.clone(),
                points: process
                    .points
                    .iter()
                    .map(|point| pb::TimelinePoint {
                        dump_id: point.dump_id.clone(),
                        taken_at_unix: point.taken_at_unix,
                        jobs: point.jobs,
                        count: point.count,
                        memsize: point.memsize,
                    })
                    .collect(),
            })
            .collect(),
    }
}

pub(crate) fn timeline_from(
    file: &str,
    line: u32,
    response: pb::SiteTimelineResponse,
) -> SiteTimeline {
    SiteTimeline {
        file: file.to_owned(),
        line,
        processes: response
            .processes
            .into_iter()
            .map(|process| ProcessTimeline {
                host: process.host,
                pid: process.pid,
                instance: process.instance,
                points: process
                    .points
                    .into_iter()
                    .map(|point| TimelinePoint {
                        dump_id: point.dump_id,
                        taken_at_unix: point.taken_at_unix,
                        jobs: point.jobs,
                        count: point.count,
                        memsize: point.memsize,
                    })
                    .collect(),
            })
            .collect(),
    }
}

pub(crate) fn paths_to(answer: &DumpRetainerPaths) -> pb::RetainerPathsResponse {
    let clusters = &answer.paths.clusters;
    pb::RetainerPathsResponse {
        dump: Some(dump_to_proto(&answer.dump)),
        targets: answer.paths.targets,
        reachable: answer.paths.reachable,
        // For clients that predate clusters: the examples are shortest paths too.
        paths: clusters
            .iter()
            .map(|cluster| retainer_path_to(&cluster.example))
            .collect(),
        signatures: answer.paths.signatures,
        clusters: clusters
            .iter()
            .map(|cluster| pb::PathCluster {
                root: cluster.root.clone(),
                signature: cluster
                    .signature
                    .iter()
                    .map(|step| pb::SignatureStep {
                        label: step.label.clone(),
                        file: step.file.clone(),
                        line: step.line,
                    })
                    .collect(),
                count: cluster.count,
                example: Some(retainer_path_to(&cluster.example)),
            })
            .collect(),
    }
}

fn retainer_path_to(path: &RetainerPath) -> pb::RetainerPath {
    pb::RetainerPath {
        root: path.root.clone(),
        steps: path
            .steps
            .iter()
            .map(|step| pb::PathStep {
                address: step.address,
                r#type: step.object_type.as_str().to_owned(),
                class_name: step.class_name.clone(),
                file: step.file.clone(),
                line: step.line,
                name: step.name.clone(),
            })
            .collect(),
    }
}

pub(crate) fn paths_from(
    response: pb::RetainerPathsResponse,
) -> Result<DumpRetainerPaths, QueryError> {
    // `paths` repeats the clusters' examples for older clients; the clusters carry them.
    let mut clusters = Vec::with_capacity(response.clusters.len());
    for cluster in response.clusters {
        let example = cluster
            .example
            .ok_or_else(|| QueryError::Internal("a path cluster has no example".to_owned()))?;
        clusters.push(PathCluster {
            root: cluster.root,
            signature: cluster
                .signature
                .into_iter()
                .map(|step| SignatureStep {
                    label: step.label,
                    file: step.file,
                    line: step.line,
                })
                .collect(),
            count: cluster.count,
            example: retainer_path_from(example)?,
        });
    }
    Ok(DumpRetainerPaths {
        dump: dump_from(response.dump)?,
        paths: RetainerPaths {
            targets: response.targets,
            reachable: response.reachable,
            signatures: response.signatures,
            clusters,
        },
    })
}

fn retainer_path_from(path: pb::RetainerPath) -> Result<RetainerPath, QueryError> {
    let mut steps = Vec::with_capacity(path.steps.len());
    for step in path.steps {
        steps.push(PathStep {
            address: step.address,
            object_type: object_type_from(&step.r#type)?,
            class_name: step.class_name,
            name: step.name,
            file: step.file,
            line: step.line,
        });
    }
    Ok(RetainerPath {
        root: path.root,
        steps,
    })
}

fn object_type_from(name: &str) -> Result<heapfleet_dump::ObjectType, QueryError> {
    name.parse()
        .map_err(|_| QueryError::Internal(format!("unknown object type {name:?}")))
}

pub(crate) fn retained_by_from(by: i32) -> Result<RetainedBy, QueryError> {
    match pb::RetainedBy::try_from(by) {
        Ok(pb::RetainedBy::Unspecified | pb::RetainedBy::Site) => Ok(RetainedBy::Site),
        Ok(pb::RetainedBy::Class) => Ok(RetainedBy::Class),
        Ok(pb::RetainedBy::Type) => Ok(RetainedBy::Type),
        Err(_) => Err(QueryError::Invalid(format!("unknown grouping {by}"))),
    }
}

pub(crate) fn retained_by_to(by: RetainedBy) -> pb::RetainedBy {
    match by {
        RetainedBy::Site => pb::RetainedBy::Site,
        RetainedBy::Class => pb::RetainedBy::Class,
        RetainedBy::Type => pb::RetainedBy::Type,
    }
}

fn sizes_to(sizes: &Retained) -> pb::RetainedSizes {
    pb::RetainedSizes {
        objects: sizes.objects,
        shallow_bytes: sizes.shallow_bytes,
        retained_objects: sizes.retained_objects,
        retained_bytes: sizes.retained_bytes,
    }
}

fn sizes_from(sizes: Option<pb::RetainedSizes>) -> Retained {
    let sizes = sizes.unwrap_or_default();
    Retained {
        objects: sizes.objects,
        shallow_bytes: sizes.shallow_bytes,
        retained_objects: sizes.retained_objects,
        retained_bytes: sizes.retained_bytes,
    }
}

pub(crate) fn owner_to(owner: &SiteOwner) -> pb::SiteOwner {
    pb::SiteOwner {
        owner: owner.owner.as_ref().map(owner_site_to),
        address: owner.address,
        owner_objects: owner.owner_objects,
        root: owner.root.clone(),
        path: owner.path.clone(),
        objects: owner.objects,
        bytes: owner.bytes,
        owner_retained_objects: owner.owner_retained_objects,
        owner_retained_bytes: owner.owner_retained_bytes,
    }
}

pub(crate) fn owner_from(owner: pb::SiteOwner) -> Result<SiteOwner, QueryError> {
    Ok(SiteOwner {
        owner: owner.owner.map(owner_site_from).transpose()?,
        address: owner.address,
        owner_objects: owner.owner_objects,
        root: owner.root,
        path: owner.path,
        objects: owner.objects,
        bytes: owner.bytes,
        owner_retained_objects: owner.owner_retained_objects,
        owner_retained_bytes: owner.owner_retained_bytes,
    })
}

pub(crate) fn retained_to(answer: &DumpRetained) -> pb::RetainedResponse {
    pb::RetainedResponse {
        dump: Some(dump_to_proto(&answer.dump)),
        objects: answer.objects,
        reachable_objects: answer.reachable_objects,
        reachable_bytes: answer.reachable_bytes,
        rows: answer
            .rows
            .iter()
            .map(|row| pb::RetainedRow {
                key: row.key.clone(),
                site: row.site.as_ref().map(site_to),
                sizes: Some(sizes_to(&row.retained)),
                owners: row.owners.iter().map(owner_to).collect(),
            })
            .collect(),
    }
}

pub(crate) fn retained_from(
    by: RetainedBy,
    response: pb::RetainedResponse,
) -> Result<DumpRetained, QueryError> {
    let mut rows = Vec::with_capacity(response.rows.len());
    for row in response.rows {
        rows.push(RetainedRow {
            key: row.key,
            site: match row.site {
                None => None,
                Some(site) => Some(site_from(Some(site))?),
            },
            retained: sizes_from(row.sizes),
            owners: row
                .owners
                .into_iter()
                .map(owner_from)
                .collect::<Result<_, _>>()?,
        });
    }
    Ok(DumpRetained {
        dump: dump_from(response.dump)?,
        objects: response.objects,
        reachable_objects: response.reachable_objects,
        reachable_bytes: response.reachable_bytes,
        by,
        rows,
    })
}

pub(crate) fn dominators_to(answer: &DumpDominators) -> pb::DominatorsResponse {
    pb::DominatorsResponse {
        dump: Some(dump_to_proto(&answer.dump)),
        reachable_objects: answer.reachable_objects,
        reachable_bytes: answer.reachable_bytes,
        nodes: answer
            .nodes
            .iter()
            .map(|node| pb::DominatorNode {
                parent: node.parent,
                depth: node.depth,
                address: node.address,
                r#type: node.object_type.as_str().to_owned(),
                class_name: node.class_name.clone(),
                file: node.file.clone(),
                line: node.line,
                root: node.root.clone(),
                shallow_bytes: node.shallow_bytes,
                retained_objects: node.retained_objects,
                retained_bytes: node.retained_bytes,
            })
            .collect(),
    }
}

pub(crate) fn dominators_from(
    response: pb::DominatorsResponse,
) -> Result<DumpDominators, QueryError> {
    let mut nodes = Vec::with_capacity(response.nodes.len());
    for node in response.nodes {
        nodes.push(DominatorNode {
            parent: node.parent,
            depth: node.depth,
            address: node.address,
            object_type: object_type_from(&node.r#type)?,
            class_name: node.class_name,
            file: node.file,
            line: node.line,
            root: node.root,
            shallow_bytes: node.shallow_bytes,
            retained_objects: node.retained_objects,
            retained_bytes: node.retained_bytes,
        });
    }
    Ok(DumpDominators {
        dump: dump_from(response.dump)?,
        reachable_objects: response.reachable_objects,
        reachable_bytes: response.reachable_bytes,
        nodes,
    })
}

pub(crate) fn leak_rank_from(rank: i32) -> Result<LeakRank, QueryError> {
    match pb::LeakRank::try_from(rank) {
        Ok(pb::LeakRank::Unspecified | pb::LeakRank::Memory) => Ok(LeakRank::Memory),
        Ok(pb::LeakRank::Objects) => Ok(LeakRank::Objects),
        Err(_) => Err(QueryError::Invalid(format!("unknown leak ranking {rank}"))),
    }
}

pub(crate) fn leak_rank_to(rank: LeakRank) -> pb::LeakRank {
    match rank {
        LeakRank::Memory => pb::LeakRank::Memory,
        LeakRank::Objects => pb::LeakRank::Objects,
    }
}

fn owner_site_to(site: &OwnerSite) -> pb::Site {
    pb::Site {
        file: site.file.clone(),
        line: site.line,
        r#type: site.object_type.as_str().to_owned(),
        class_name: site.class_name.clone(),
    }
}

fn owner_site_from(site: pb::Site) -> Result<OwnerSite, QueryError> {
    Ok(OwnerSite {
        object_type: object_type_from(&site.r#type)?,
        file: site.file,
        line: site.line,
        class_name: site.class_name,
    })
}

fn growing_owner_from(owner: pb::GrowingOwner) -> Result<GrowingOwner, QueryError> {
    Ok(GrowingOwner {
        root: owner.root,
        path: owner.path,
        holds: owner
            .holds
            .into_iter()
            .map(|held| {
                Ok(HeldSite {
                    site: site_from(held.site)?,
                    objects: held.objects,
                    objects_per_dump: held.objects_per_dump,
                })
            })
            .collect::<Result<_, QueryError>>()?,
    })
}

fn held_by_to(held: &HeldBy) -> pb::HeldBy {
    pb::HeldBy {
        owner: held.owner.as_ref().map(owner_site_to),
        root: held.root.clone(),
        path: held.path.clone(),
        objects: held.objects,
        bytes: held.bytes,
        objects_per_dump: held.objects_per_dump,
        growing: held.growing,
        processes: count_to(held.processes),
        hosts: held.hosts.clone(),
    }
}

fn held_by_from(held: pb::HeldBy) -> Result<HeldBy, QueryError> {
    Ok(HeldBy {
        owner: held.owner.map(owner_site_from).transpose()?,
        root: held.root,
        path: held.path,
        objects: held.objects,
        bytes: held.bytes,
        objects_per_dump: held.objects_per_dump,
        growing: held.growing,
        processes: held.processes as usize,
        hosts: held.hosts,
    })
}
