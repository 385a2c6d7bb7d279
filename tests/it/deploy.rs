//! The deployment files, checked without Docker or kubectl (neither runs on these machines):
//! docker-compose.yml, deploy/Dockerfile, deploy/k8s/*.yaml, the example configs in
//! deploy/config, and the schema copies in deploy/cql and deploy/sql, which must stay
//! byte-identical to their sources in crates/.
//!
//! Most checks here only need the example configs to be TOML with known keys; one also parses
//! and resolves them with the services' own config types.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use heapfleet_tests::workspace_root;
use serde_norway::{Mapping, Value};

/// The heapfleet servers, by the binary a container runs.
const SERVER_BINARIES: [&str; 3] = ["heapfleet-gateway", "heapfleet-ingester", "heapfleet-query"];

/// The keys each example config may hold, dotted for tables (`s3.endpoint`).
fn allowed_config_keys(binary: &str) -> &'static [&'static str] {
    match binary {
        "heapfleet-gateway" => &[
            "listen",
            "tenant",
            "catalog",
            "objects",
            "store",
            "s3.endpoint",
            "s3.region",
            "s3.allow_http",
            "limits.max_dump_bytes",
            "limits.max_message_bytes",
            "limits.max_labels",
            "limits.max_label_bytes",
            "calls.max_concurrent",
            "calls.timeout_seconds",
            "auth.tokens",
        ],
        "heapfleet-ingester" => &[
            "listen",
            "catalog",
            "store",
            "objects",
            "s3.endpoint",
            "s3.region",
            "s3.allow_http",
            "tenant",
            "concurrency",
            "lease_seconds",
            "max_attempts",
            "poll_interval_ms",
            "max_retention_objects",
            "retention.max_age",
            "retention.interval",
        ],
        "heapfleet-query" => &[
            "listen",
            "tenant",
            "catalog",
            "store",
            "objects",
            "s3.endpoint",
            "s3.region",
            "s3.allow_http",
            "calls.max_concurrent",
            "calls.timeout_seconds",
            "auth.tokens",
        ],
        other => panic!("no config keys known for {other}"),
    }
}

/// The `HEAPFLEET_*` variables each server reads.
fn allowed_env(binary: &str) -> &'static [&'static str] {
    match binary {
        "heapfleet-gateway" => &[
            "HEAPFLEET_CONFIG",
            "HEAPFLEET_LISTEN",
            "HEAPFLEET_TENANT",
            "HEAPFLEET_CATALOG",
            "HEAPFLEET_OBJECTS",
            "HEAPFLEET_STORE",
            "HEAPFLEET_S3_ENDPOINT",
            "HEAPFLEET_S3_REGION",
            "HEAPFLEET_S3_ALLOW_HTTP",
            "HEAPFLEET_MAX_DUMP_BYTES",
            "HEAPFLEET_MAX_CONCURRENT_CALLS",
            "HEAPFLEET_CALL_TIMEOUT_SECONDS",
            "HEAPFLEET_TLS_CERT",
            "HEAPFLEET_TLS_KEY",
        ],
        "heapfleet-ingester" => &[
            "HEAPFLEET_CONFIG",
            "HEAPFLEET_LISTEN",
            "HEAPFLEET_CATALOG",
            "HEAPFLEET_STORE",
            "HEAPFLEET_OBJECTS",
            "HEAPFLEET_S3_ENDPOINT",
            "HEAPFLEET_S3_REGION",
            "HEAPFLEET_S3_ALLOW_HTTP",
            "HEAPFLEET_TENANT",
            "HEAPFLEET_CONCURRENCY",
            "HEAPFLEET_LEASE_SECONDS",
            "HEAPFLEET_MAX_ATTEMPTS",
            "HEAPFLEET_POLL_INTERVAL_MS",
            "HEAPFLEET_MAX_RETENTION_OBJECTS",
            "HEAPFLEET_RETENTION_MAX_AGE",
            "HEAPFLEET_RETENTION_INTERVAL",
        ],
        "heapfleet-query" => &[
            "HEAPFLEET_CONFIG",
            "HEAPFLEET_LISTEN",
            "HEAPFLEET_TENANT",
            "HEAPFLEET_CATALOG",
            "HEAPFLEET_STORE",
            "HEAPFLEET_OBJECTS",
            "HEAPFLEET_S3_ENDPOINT",
            "HEAPFLEET_S3_REGION",
            "HEAPFLEET_S3_ALLOW_HTTP",
            "HEAPFLEET_MAX_CONCURRENT_CALLS",
            "HEAPFLEET_CALL_TIMEOUT_SECONDS",
            "HEAPFLEET_TLS_CERT",
            "HEAPFLEET_TLS_KEY",
        ],
        other => panic!("no environment known for {other}"),
    }
}

/// The variables a server cannot work without in the compose stack, where no file sets them.
fn required_env(binary: &str) -> &'static [&'static str] {
    match binary {
        "heapfleet-gateway" => &[
            "HEAPFLEET_CATALOG",
            "HEAPFLEET_OBJECTS",
            "HEAPFLEET_S3_ENDPOINT",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_SERVICE_NAME",
        ],
        "heapfleet-ingester" => &[
            "HEAPFLEET_CATALOG",
            "HEAPFLEET_STORE",
            "HEAPFLEET_OBJECTS",
            "HEAPFLEET_S3_ENDPOINT",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_SERVICE_NAME",
        ],
        "heapfleet-query" => &[
            "HEAPFLEET_CATALOG",
            "HEAPFLEET_STORE",
            "HEAPFLEET_OBJECTS",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_SERVICE_NAME",
        ],
        other => panic!("no environment known for {other}"),
    }
}

/// The port a server listens on when `HEAPFLEET_LISTEN` is unset.
fn default_port(binary: &str) -> u16 {
    match binary {
        "heapfleet-gateway" => 7400,
        "heapfleet-ingester" => 7401,
        "heapfleet-query" => 7402,
        other => panic!("no default port known for {other}"),
    }
}

fn read(relative: &str) -> String {
    let path = workspace_root().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// Parses one YAML document and resolves its `<<` merge keys, as Compose does.
fn yaml(relative: &str) -> Value {
    let mut value: Value = serde_norway::from_str(&read(relative))
        .unwrap_or_else(|error| panic!("{relative} is not valid YAML: {error}"));
    value
        .apply_merge()
        .unwrap_or_else(|error| panic!("{relative} has a bad merge key: {error}"));
    value
}

fn compose() -> Value {
    yaml("docker-compose.yml")
}

fn compose_services(compose: &Value) -> &Mapping {
    compose["services"]
        .as_mapping()
        .expect("docker-compose.yml has a `services` mapping")
}

fn key_str(key: &Value) -> &str {
    key.as_str().expect("mapping keys are strings")
}

/// Returns a `command`/`entrypoint`/`test` as words, whether written as a list or a string.
fn words(value: &Value) -> Vec<String> {
    match value {
        Value::Sequence(items) => items.iter().map(scalar).collect(),
        Value::String(text) => text.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// Returns a scalar as text (Compose and Kubernetes accept numbers and booleans where they
/// mean strings).
fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Null => String::new(),
        other => panic!("expected a scalar, found {other:?}"),
    }
}

/// Returns the heapfleet server binary a compose service runs, if it runs one.
fn server_binary(service: &Value) -> Option<String> {
    let command = words(&service["command"]);
    let first = command.first()?;
    SERVER_BINARIES
        .contains(&first.as_str())
        .then(|| first.clone())
}

/// Returns a compose service's environment, written as a mapping or as `KEY=VALUE` items.
fn compose_env(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Mapping(mapping) => mapping
            .iter()
            .map(|(key, value)| (key_str(key).to_owned(), scalar(value)))
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|item| {
                let text = scalar(item);
                match text.split_once('=') {
                    Some((key, value)) => (key.to_owned(), value.to_owned()),
                    None => (text, String::new()),
                }
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn has_healthcheck(service: &Value) -> bool {
    let healthcheck = &service["healthcheck"];
    healthcheck.is_mapping()
        && healthcheck["disable"].as_bool() != Some(true)
        && words(&healthcheck["test"])
            .first()
            .is_some_and(|first| first != "NONE")
}

/// A one-shot service is one that says it is not restarted and has no health check.
fn is_one_shot(service: &Value) -> bool {
    let restart = scalar(&service["restart"]);
    (restart == "no" || restart.starts_with("on-failure")) && !has_healthcheck(service)
}

fn replicas(service: &Value) -> u64 {
    service["deploy"]["replicas"].as_u64().unwrap_or(1)
}

/// Returns a service's `depends_on` as (service, condition).
fn depends_on(service: &Value) -> Vec<(String, String)> {
    match &service["depends_on"] {
        Value::Sequence(names) => names
            .iter()
            .map(|name| (scalar(name), "service_started".to_owned()))
            .collect(),
        Value::Mapping(mapping) => mapping
            .iter()
            .map(|(name, options)| {
                let condition = options["condition"]
                    .as_str()
                    .unwrap_or("service_started")
                    .to_owned();
                (key_str(name).to_owned(), condition)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A compose volume: its source (a named volume, or a path for a bind mount) and target.
struct ComposeVolume {
    source: String,
    target: String,
    bind: bool,
}

fn compose_volumes(service: &Value) -> Vec<ComposeVolume> {
    let Some(items) = service["volumes"].as_sequence() else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(text) => {
                let mut parts = text.splitn(3, ':');
                let source = parts.next().unwrap_or_default().to_owned();
                let target = parts.next().unwrap_or_default().to_owned();
                let bind = source.starts_with('.') || source.starts_with('/');
                ComposeVolume {
                    source,
                    target,
                    bind,
                }
            }
            long => ComposeVolume {
                source: scalar(&long["source"]),
                target: scalar(&long["target"]),
                bind: long["type"].as_str() == Some("bind"),
            },
        })
        .collect()
}

/// Returns the repository file a container path is mounted from, if a bind mount covers it.
fn mounted_source(service: &Value, container_path: &str) -> Option<PathBuf> {
    compose_volumes(service)
        .into_iter()
        .filter(|volume| volume.bind)
        .find_map(|volume| {
            let rest = container_path.strip_prefix(volume.target.trim_end_matches('/'))?;
            if !rest.is_empty() && !rest.starts_with('/') {
                return None;
            }
            Some(
                workspace_root()
                    .join(&volume.source)
                    .join(rest.trim_start_matches('/')),
            )
        })
}

/// Returns the port in `HOST:PORT` or `URL` text: the digits after the last colon.
fn port_of(address: &str) -> Option<u16> {
    let after = address.rsplit_once(':')?.1;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[test]
fn test_compose_has_every_service_and_two_ingesters() {
    let compose = compose();
    let services = compose_services(&compose);
    for name in [
        "scylla",
        "postgres",
        "minio",
        "minio-setup",
        "otel-collector",
        "jaeger",
        "gateway",
        "query",
    ] {
        assert!(
            services.contains_key(name),
            "docker-compose.yml has no `{name}` service"
        );
    }
    let mut replicas_by_binary: BTreeMap<String, u64> = BTreeMap::new();
    for service in services.values() {
        if let Some(binary) = server_binary(service) {
            *replicas_by_binary.entry(binary).or_default() += replicas(service);
        }
    }
    assert_eq!(
        replicas_by_binary.get("heapfleet-ingester"),
        Some(&2),
        "expected two ingester replicas: {replicas_by_binary:?}"
    );
    assert_eq!(replicas_by_binary.get("heapfleet-gateway"), Some(&1));
    assert_eq!(replicas_by_binary.get("heapfleet-query"), Some(&1));
    assert_eq!(
        server_binary(&services["gateway"]).as_deref(),
        Some("heapfleet-gateway")
    );
    assert_eq!(
        server_binary(&services["query"]).as_deref(),
        Some("heapfleet-query")
    );
    assert!(
        is_one_shot(&services["minio-setup"]),
        "minio-setup should be a one-shot service"
    );
}

/// Docker Hub namespaces whose images are gone: MinIO deleted `minio/*` in September 2026,
/// Bitnami moved its free images to `bitnamilegacy/*` in 2025.
const GONE_FROM_DOCKER_HUB: [&str; 2] = ["minio/", "bitnami/"];

/// Why `image` would not pull the same thing tomorrow, if it would not.
fn image_problem(image: &str) -> Option<String> {
    let (name, tag) = match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (image, None),
    };
    match tag {
        None => return Some("has no tag".to_owned()),
        Some("latest") => return Some("uses the moving tag `latest`".to_owned()),
        Some(_) => {}
    }
    // No registry host (a first part with a dot or a port, or `localhost`): Docker Hub.
    let on_docker_hub = match name.split_once('/') {
        None => true,
        Some((first, _)) => !(first.contains('.') || first.contains(':') || first == "localhost"),
    };
    let hub_name = name.strip_prefix("docker.io/").unwrap_or(name);
    (on_docker_hub || name.starts_with("docker.io/"))
        .then(|| {
            GONE_FROM_DOCKER_HUB
                .iter()
                .find(|gone| hub_name.starts_with(*gone))
                .map(|gone| format!("comes from Docker Hub's {gone}, which is gone"))
        })
        .flatten()
}

#[test]
fn test_image_problems_are_recognised() {
    assert_eq!(image_problem("postgres:16"), None);
    assert_eq!(
        image_problem("quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"),
        None
    );
    assert_eq!(image_problem("localhost:5000/heapfleet:1"), None);
    assert!(image_problem("postgres").is_some());
    assert!(image_problem("localhost:5000/heapfleet").is_some());
    assert!(image_problem("scylladb/scylla:latest").is_some());
    assert!(image_problem("minio/minio:RELEASE.2025-09-07T16-13-09Z").is_some());
    assert!(image_problem("docker.io/bitnami/redis:7.2").is_some());
}

#[test]
fn test_compose_images_are_pinned_and_still_served() {
    let compose = compose();
    let mut problems = Vec::new();
    for (name, service) in compose_services(&compose) {
        let Some(image) = service["image"].as_str() else {
            continue;
        };
        // The stack's own image is built here (`build:`), not pulled.
        if !service["build"].is_null() {
            continue;
        }
        if let Some(problem) = image_problem(image) {
            problems.push(format!("{}: {image} {problem}", key_str(name)));
        }
    }
    assert!(
        problems.is_empty(),
        "images that will not pull: {problems:?}"
    );
}

#[test]
fn test_compose_long_running_services_have_health_checks() {
    let compose = compose();
    let missing: Vec<&str> = compose_services(&compose)
        .iter()
        .filter(|(_, service)| !is_one_shot(service) && !has_healthcheck(service))
        .map(|(name, _)| key_str(name))
        .collect();
    assert!(
        missing.is_empty(),
        "long-running services without a health check: {missing:?}"
    );
}

#[test]
fn test_compose_depends_on_names_existing_services_with_fitting_conditions() {
    let compose = compose();
    let services = compose_services(&compose);
    let mut problems = Vec::new();
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, service) in services {
        let name = key_str(name);
        for (dependency, condition) in depends_on(service) {
            edges
                .entry(name.to_owned())
                .or_default()
                .push(dependency.clone());
            let Some(target) = services.get(dependency.as_str()) else {
                problems.push(format!("{name} depends on unknown service {dependency}"));
                continue;
            };
            match condition.as_str() {
                "service_started" => {}
                "service_healthy" if !has_healthcheck(target) => problems.push(format!(
                    "{name} waits for {dependency} to be healthy, but it has no health check"
                )),
                "service_completed_successfully" if !is_one_shot(target) => {
                    problems.push(format!(
                        "{name} waits for {dependency} to complete, but it is not one-shot"
                    ));
                }
                "service_healthy" | "service_completed_successfully" => {}
                other => problems.push(format!("{name}: unknown condition {other}")),
            }
        }
    }
    // `docker compose up` refuses a cycle; find one here first.
    fn visit(
        name: &str,
        edges: &BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == name) {
            return Some(path[start..].to_vec());
        }
        if done.contains(name) {
            return None;
        }
        path.push(name.to_owned());
        for next in edges.get(name).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(name.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for name in edges.keys() {
        if let Some(cycle) = visit(name, &edges, &mut Vec::new(), &mut done) {
            problems.push(format!("depends_on cycle: {cycle:?}"));
            break;
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn test_compose_heapfleet_services_build_from_the_dockerfile_with_their_env() {
    let compose = compose();
    let services = compose_services(&compose);
    let mut problems = Vec::new();
    let mut servers = 0;
    for (name, service) in services {
        let name = key_str(name);
        let Some(binary) = server_binary(service) else {
            continue;
        };
        servers += 1;
        let build = &service["build"];
        if build["dockerfile"].as_str() != Some("deploy/Dockerfile")
            || !matches!(build["context"].as_str(), Some("." | "./"))
        {
            problems.push(format!(
                "{name} is not built from deploy/Dockerfile with context `.`"
            ));
        }
        let env = compose_env(service);
        for required in required_env(&binary) {
            if env.get(*required).is_none_or(|value| value.is_empty()) {
                problems.push(format!("{name} ({binary}) does not set {required}"));
            }
        }
        for variable in env.keys().filter(|key| key.starts_with("HEAPFLEET_")) {
            if !allowed_env(&binary).contains(&variable.as_str()) {
                problems.push(format!(
                    "{name} ({binary}) sets {variable}, which it does not read"
                ));
            }
        }
        // The S3 keys belong only to the servers that read or write dump files.
        if !env.contains_key("HEAPFLEET_OBJECTS") && env.contains_key("AWS_SECRET_ACCESS_KEY") {
            problems.push(format!("{name} gets S3 credentials it has no use for"));
        }
        for (variable, value) in &env {
            if variable == "OTEL_EXPORTER_OTLP_ENDPOINT" || variable.starts_with("HEAPFLEET_") {
                // Any host a URL names must be a service of the stack.
                if let Some((_, rest)) = value.split_once("://") {
                    let authority = rest.split(['/', '?']).next().unwrap_or_default();
                    let host_port = authority.rsplit('@').next().unwrap_or_default();
                    let host = host_port.split(':').next().unwrap_or_default();
                    let is_bucket = value.starts_with("s3://");
                    if !is_bucket && !host.is_empty() && !services.contains_key(host) {
                        problems.push(format!("{name}: {variable} names unknown host {host}"));
                    }
                }
            }
        }
        if env.get("OTEL_SERVICE_NAME") != Some(&binary) {
            problems.push(format!("{name}: OTEL_SERVICE_NAME should be {binary}"));
        }
        // The health check must ask the port the server listens on.
        let port = env
            .get("HEAPFLEET_LISTEN")
            .and_then(|listen| port_of(listen))
            .unwrap_or_else(|| default_port(&binary));
        let health = words(&service["healthcheck"]["test"]).join(" ");
        if !health.contains(&format!(":{port}")) {
            problems.push(format!(
                "{name}: health check `{health}` does not ask port {port}"
            ));
        }
        // A `--config FILE` must be mounted from a file of the repository.
        let command = words(&service["command"]);
        if let Some(position) = command.iter().position(|word| word == "--config") {
            let config = command.get(position + 1).cloned().unwrap_or_default();
            match mounted_source(service, &config) {
                Some(source) if source.is_file() => {}
                Some(source) => problems.push(format!(
                    "{name}: --config {config} is mounted from missing {}",
                    source.display()
                )),
                None => problems.push(format!("{name}: --config {config} is not mounted")),
            }
        }
    }
    assert_eq!(servers, 3, "expected three heapfleet services");
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn test_compose_interpolations_have_defaults() {
    let text = read("docker-compose.yml");
    let mut problems = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let bytes = line.as_bytes();
        let mut index = 0;
        while index < bytes.len() {
            if bytes[index] != b'$' {
                index += 1;
                continue;
            }
            match bytes.get(index + 1) {
                // `$$` is a literal dollar, passed on to the container.
                Some(b'$') => index += 2,
                Some(b'{') => {
                    let rest = &line[index + 2..];
                    let end = rest.find('}').unwrap_or(rest.len());
                    let expression = &rest[..end];
                    let name_end = expression
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(expression.len());
                    let operator = &expression[name_end..];
                    if !(operator.starts_with(":-") || operator.starts_with('-')) {
                        problems.push(format!(
                            "line {}: ${{{expression}}} has no default",
                            number + 1
                        ));
                    }
                    index += 2 + end;
                }
                Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                    problems.push(format!(
                        "line {}: bare ${} cannot have a default; write ${{VAR:-default}}",
                        number + 1,
                        &line[index + 1..]
                    ));
                    index += 1;
                }
                _ => index += 1,
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn test_compose_published_ports_do_not_collide() {
    let compose = compose();
    let mut published: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (name, service) in compose_services(&compose) {
        let name = key_str(name);
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let (host, protocol) = match port {
                Value::Mapping(_) => (
                    scalar(&port["published"]),
                    port["protocol"].as_str().unwrap_or("tcp").to_owned(),
                ),
                short => {
                    let text = scalar(short);
                    let (ports, protocol) = text.split_once('/').unwrap_or((&text, "tcp"));
                    let parts: Vec<&str> = ports.split(':').collect();
                    // `CONTAINER` alone publishes on an ephemeral host port: no collision.
                    let host = if parts.len() >= 2 {
                        parts[parts.len() - 2].to_owned()
                    } else {
                        String::new()
                    };
                    (host, protocol.to_owned())
                }
            };
            if host.is_empty() {
                continue;
            }
            // Each replica of a service would bind the same host port.
            for _ in 0..replicas(service) {
                published
                    .entry((host.clone(), protocol.clone()))
                    .or_default()
                    .push(name.to_owned());
            }
        }
    }
    let collisions: Vec<_> = published
        .iter()
        .filter(|(_, users)| users.len() > 1)
        .collect();
    assert!(
        collisions.is_empty(),
        "host ports published twice: {collisions:?}"
    );
    for port in ["7400", "7402", "16686"] {
        assert!(
            published.contains_key(&(port.to_owned(), "tcp".to_owned())),
            "port {port} is not published"
        );
    }
}

#[test]
fn test_compose_mounts_exist_and_named_volumes_are_declared() {
    let compose = compose();
    let declared: BTreeSet<&str> = compose["volumes"]
        .as_mapping()
        .map(|volumes| volumes.keys().map(key_str).collect())
        .unwrap_or_default();
    let mut problems = Vec::new();
    for (name, service) in compose_services(&compose) {
        let name = key_str(name);
        for volume in compose_volumes(service) {
            if volume.bind {
                let path = workspace_root().join(&volume.source);
                if !path.exists() {
                    problems.push(format!("{name} mounts missing {}", volume.source));
                }
            } else if !declared.contains(volume.source.as_str()) {
                problems.push(format!("{name} uses undeclared volume {}", volume.source));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// One Kubernetes document, with the file it came from.
struct Manifest {
    file: String,
    value: Value,
}

impl Manifest {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    fn namespace(&self) -> &str {
        self.value["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
    }
}

/// What `kubectl apply -k deploy/k8s/` applies; not a manifest itself.
const KUSTOMIZATION: &str = "kustomization.yaml";

#[test]
fn test_k8s_kustomization_applies_the_namespace_first_and_never_the_example_secret() {
    let directory = workspace_root().join("deploy/k8s");
    let kustomization: Value =
        serde_norway::from_str(&std::fs::read_to_string(directory.join(KUSTOMIZATION)).unwrap())
            .unwrap();
    assert_eq!(kustomization["kind"], "Kustomization");
    assert_eq!(kustomization["namespace"], "heapfleet");
    let resources: Vec<&str> = kustomization["resources"]
        .as_sequence()
        .expect("kustomization.yaml lists its resources")
        .iter()
        .map(|resource| resource.as_str().unwrap())
        .collect();
    assert_eq!(resources.first(), Some(&"namespace.yaml"), "{resources:?}");
    let mut files: Vec<String> = std::fs::read_dir(&directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") && name != KUSTOMIZATION)
        .collect();
    files.sort();
    let mut listed: Vec<String> = resources.iter().map(|name| (*name).to_owned()).collect();
    listed.sort();
    let expected: Vec<String> = files
        .into_iter()
        .filter(|name| name != "secret.example.yaml")
        .collect();
    assert_eq!(
        listed, expected,
        "kustomization.yaml must list every manifest but the example Secret"
    );
}

fn k8s_manifests() -> Vec<Manifest> {
    let directory = workspace_root().join("deploy/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", directory.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
                && !path.ends_with(KUSTOMIZATION)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "deploy/k8s holds no .yaml file");
    let mut manifests = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        for document in serde_norway::Deserializer::from_str(&text) {
            let mut value: Value = serde::Deserialize::deserialize(document)
                .unwrap_or_else(|error| panic!("deploy/k8s/{file} is not valid YAML: {error}"));
            if value.is_null() {
                continue;
            }
            value.apply_merge().unwrap();
            manifests.push(Manifest {
                file: file.clone(),
                value,
            });
        }
    }
    manifests
}

fn pod_spec(deployment: &Manifest) -> &Value {
    &deployment.value["spec"]["template"]["spec"]
}

fn containers(deployment: &Manifest) -> &[Value] {
    pod_spec(deployment)["containers"]
        .as_sequence()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Returns whether `port` (a number, or a port name) is one a container declares.
fn declares_port(container: &Value, port: &Value) -> bool {
    container["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .any(|declared| match port {
            Value::String(name) => declared["name"].as_str() == Some(name.as_str()),
            number => {
                number.as_u64().is_some() && declared["containerPort"].as_u64() == number.as_u64()
            }
        })
}

#[test]
fn test_k8s_documents_parse_and_name_themselves() {
    let manifests = k8s_manifests();
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for manifest in &manifests {
        if manifest.value["apiVersion"]
            .as_str()
            .is_none_or(str::is_empty)
            || manifest.kind().is_empty()
            || manifest.name().is_empty()
        {
            problems.push(format!(
                "{}: a document lacks apiVersion, kind or metadata.name",
                manifest.file
            ));
        }
        let identity = (
            manifest.kind().to_owned(),
            manifest.namespace().to_owned(),
            manifest.name().to_owned(),
        );
        if !seen.insert(identity.clone()) {
            problems.push(format!("{}: {identity:?} is defined twice", manifest.file));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    let kinds: BTreeSet<&str> = manifests.iter().map(Manifest::kind).collect();
    for kind in ["Deployment", "Service", "ConfigMap", "Secret"] {
        assert!(kinds.contains(kind), "deploy/k8s has no {kind}");
    }
}

#[test]
fn test_k8s_deployments_probe_grpc_on_declared_ports_and_request_resources() {
    let manifests = k8s_manifests();
    let mut problems = Vec::new();
    let mut binaries = BTreeMap::new();
    for deployment in manifests
        .iter()
        .filter(|manifest| manifest.kind() == "Deployment")
    {
        let name = deployment.name();
        let selector = &deployment.value["spec"]["selector"]["matchLabels"];
        let labels = &deployment.value["spec"]["template"]["metadata"]["labels"];
        if !selector_matches(selector, labels) {
            problems.push(format!(
                "{name}: selector does not match the pod template's labels"
            ));
        }
        if containers(deployment).is_empty() {
            problems.push(format!("{name}: no containers"));
        }
        for container in containers(deployment) {
            let container_name = scalar(&container["name"]);
            for probe_name in ["readinessProbe", "livenessProbe"] {
                let port = &container[probe_name]["grpc"]["port"];
                if port.is_null() {
                    problems.push(format!("{name}/{container_name}: {probe_name} is not gRPC"));
                } else if !declares_port(container, port) {
                    problems.push(format!(
                        "{name}/{container_name}: {probe_name} asks undeclared port {port:?}"
                    ));
                }
            }
            let resources = &container["resources"];
            for resource in ["cpu", "memory"] {
                if resources["requests"][resource].is_null() {
                    problems.push(format!(
                        "{name}/{container_name}: no resources.requests.{resource}"
                    ));
                }
            }
            if resources["limits"]["memory"].is_null() {
                problems.push(format!(
                    "{name}/{container_name}: no resources.limits.memory"
                ));
            }
            if let Some(binary) = words(&container["command"]).first() {
                *binaries.entry(binary.clone()).or_insert(0) += 1;
            }
        }
        // An ingester needs time to finish its dump or give its lease back.
        let grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30);
        if grace < 60 {
            problems.push(format!(
                "{name}: terminationGracePeriodSeconds {grace} < 60"
            ));
        }
    }
    for binary in SERVER_BINARIES {
        if !binaries.contains_key(binary) {
            problems.push(format!("no Deployment runs {binary}"));
        }
    }
    let ingester = manifests
        .iter()
        .find(|manifest| {
            manifest.kind() == "Deployment"
                && containers(manifest).iter().any(|container| {
                    words(&container["command"]).first().map(String::as_str)
                        == Some("heapfleet-ingester")
                })
        })
        .map(|manifest| manifest.value["spec"]["replicas"].as_u64());
    if let Some(replicas) = ingester
        && replicas != Some(2)
    {
        problems.push(format!(
            "the ingester Deployment has {replicas:?} replicas, not 2"
        ));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Returns whether every `selector` label is among `labels`, and the selector is not empty.
fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let (Some(selector), Some(labels)) = (selector.as_mapping(), labels.as_mapping()) else {
        return false;
    };
    !selector.is_empty()
        && selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
}

#[test]
fn test_k8s_services_select_exactly_one_deployment_and_target_declared_ports() {
    let manifests = k8s_manifests();
    let deployments: Vec<&Manifest> = manifests
        .iter()
        .filter(|manifest| manifest.kind() == "Deployment")
        .collect();
    let mut problems = Vec::new();
    let mut selected = BTreeSet::new();
    for service in manifests
        .iter()
        .filter(|manifest| manifest.kind() == "Service")
    {
        let name = service.name();
        let selector = &service.value["spec"]["selector"];
        let matching: Vec<&&Manifest> = deployments
            .iter()
            .filter(|deployment| {
                deployment.namespace() == service.namespace()
                    && selector_matches(
                        selector,
                        &deployment.value["spec"]["template"]["metadata"]["labels"],
                    )
            })
            .collect();
        let [deployment] = matching.as_slice() else {
            problems.push(format!(
                "Service {name} selects {} Deployments, not one",
                matching.len()
            ));
            continue;
        };
        selected.insert(deployment.name().to_owned());
        let ports = service.value["spec"]["ports"].as_sequence();
        if ports.is_none_or(Vec::is_empty) {
            problems.push(format!("Service {name} has no ports"));
        }
        for port in ports.into_iter().flatten() {
            // Without targetPort, the Service targets the same number as `port`.
            let target = match &port["targetPort"] {
                Value::Null => port["port"].clone(),
                target => target.clone(),
            };
            if !containers(deployment)
                .iter()
                .any(|container| declares_port(container, &target))
            {
                problems.push(format!(
                    "Service {name} targets port {target:?}, which {} does not declare",
                    deployment.name()
                ));
            }
        }
    }
    for deployment in &deployments {
        if !selected.contains(deployment.name()) {
            problems.push(format!("Deployment {} has no Service", deployment.name()));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn test_k8s_referenced_config_maps_and_secrets_exist() {
    let manifests = k8s_manifests();
    // (kind, namespace, name) -> the keys it holds.
    let mut defined: BTreeMap<(&str, &str, &str), BTreeSet<String>> = BTreeMap::new();
    for manifest in &manifests {
        if matches!(manifest.kind(), "ConfigMap" | "Secret") {
            let keys = ["data", "stringData", "binaryData"]
                .iter()
                .filter_map(|field| manifest.value[*field].as_mapping())
                .flat_map(|data| data.keys().map(|key| key_str(key).to_owned()))
                .collect();
            defined.insert(
                (manifest.kind(), manifest.namespace(), manifest.name()),
                keys,
            );
        }
    }
    let mut problems = Vec::new();
    for deployment in manifests
        .iter()
        .filter(|manifest| manifest.kind() == "Deployment")
    {
        let namespace = deployment.namespace();
        let mut references: Vec<(&str, String, Option<String>)> = Vec::new();
        for volume in pod_spec(deployment)["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            if let Some(name) = volume["configMap"]["name"].as_str() {
                references.push(("ConfigMap", name.to_owned(), None));
            }
            if let Some(name) = volume["secret"]["secretName"].as_str() {
                references.push(("Secret", name.to_owned(), None));
            }
        }
        for container in containers(deployment) {
            for source in container["envFrom"].as_sequence().into_iter().flatten() {
                if let Some(name) = source["configMapRef"]["name"].as_str() {
                    references.push(("ConfigMap", name.to_owned(), None));
                }
                if let Some(name) = source["secretRef"]["name"].as_str() {
                    references.push(("Secret", name.to_owned(), None));
                }
            }
            for variable in container["env"].as_sequence().into_iter().flatten() {
                let from = &variable["valueFrom"];
                for (field, kind) in [("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")]
                {
                    if let Some(name) = from[field]["name"].as_str() {
                        references.push((kind, name.to_owned(), Some(scalar(&from[field]["key"]))));
                    }
                }
            }
        }
        if references.is_empty() {
            problems.push(format!(
                "{} references no ConfigMap or Secret",
                deployment.name()
            ));
        }
        for (kind, name, key) in references {
            match defined.get(&(kind, namespace, name.as_str())) {
                None => problems.push(format!(
                    "{} references {kind} {namespace}/{name}, which deploy/k8s does not define",
                    deployment.name()
                )),
                Some(keys) => {
                    if let Some(key) = key.filter(|key| !keys.contains(key)) {
                        problems.push(format!(
                            "{} references key {key} of {kind} {name}, which it lacks",
                            deployment.name()
                        ));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Returns the dotted keys of a TOML table (`s3.endpoint`), tables themselves left out.
fn toml_keys(table: &toml::Table, prefix: &str, keys: &mut Vec<String>) {
    for (key, value) in table {
        let dotted = format!("{prefix}{key}");
        match value {
            toml::Value::Table(inner) => toml_keys(inner, &format!("{dotted}."), keys),
            _ => keys.push(dotted),
        }
    }
}

/// Returns the keys of `text` that `binary`'s config does not know, or the parse error.
fn unknown_config_keys(binary: &str, text: &str) -> Result<Vec<String>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|error| error.to_string())?;
    let mut keys = Vec::new();
    toml_keys(&table, "", &mut keys);
    Ok(keys
        .into_iter()
        .filter(|key| !allowed_config_keys(binary).contains(&key.as_str()))
        .collect())
}

#[test]
fn test_example_configs_hold_only_known_keys() {
    for binary in SERVER_BINARIES {
        let file = format!(
            "deploy/config/{}.toml",
            binary.trim_start_matches("heapfleet-")
        );
        let text = read(&file);
        let unknown = unknown_config_keys(binary, &text)
            .unwrap_or_else(|error| panic!("{file} is not valid TOML: {error}"));
        assert!(unknown.is_empty(), "{file} holds unknown keys {unknown:?}");
        // An example documents every key: all of them are set.
        let table: toml::Table = toml::from_str(&text).unwrap();
        let mut keys = Vec::new();
        toml_keys(&table, "", &mut keys);
        let unset: Vec<&&str> = allowed_config_keys(binary)
            .iter()
            .filter(|key| !keys.iter().any(|set| set == *key))
            .collect();
        assert!(unset.is_empty(), "{file} does not show {unset:?}");
    }
}

#[test]
fn test_k8s_config_map_toml_files_hold_only_known_keys() {
    let mut checked = 0;
    for manifest in k8s_manifests()
        .iter()
        .filter(|manifest| manifest.kind() == "ConfigMap")
    {
        for (key, value) in manifest.value["data"].as_mapping().into_iter().flatten() {
            let Some(file) = key_str(key).strip_suffix(".toml") else {
                continue;
            };
            let binary = format!("heapfleet-{file}");
            assert!(
                SERVER_BINARIES.contains(&binary.as_str()),
                "ConfigMap {} holds {file}.toml, for no known server",
                manifest.name()
            );
            let unknown = unknown_config_keys(&binary, &scalar(value)).unwrap_or_else(|error| {
                panic!(
                    "{file}.toml in ConfigMap {} is not TOML: {error}",
                    manifest.name()
                )
            });
            assert!(
                unknown.is_empty(),
                "{file}.toml in ConfigMap {} holds unknown keys {unknown:?}",
                manifest.name()
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked, 3,
        "expected the three server configs in a ConfigMap"
    );
}

/// Returns the packages the Dockerfile's `cargo build` lines name with `-p`/`--package`.
fn dockerfile_packages(dockerfile: &str) -> BTreeSet<String> {
    // Join continuation lines, so one RUN instruction is one line.
    let joined = dockerfile.replace("\\\n", " ");
    let mut packages = BTreeSet::new();
    // Only the `cargo build` command itself, not what a shell line chains after it.
    let commands = joined
        .lines()
        .flat_map(|line| line.split(['&', ';', '|']))
        .filter_map(|command| command.split_once("cargo build").map(|(_, args)| args));
    for args in commands {
        let words: Vec<&str> = args.split_whitespace().collect();
        for pair in words.windows(2) {
            if matches!(pair[0], "-p" | "--package") {
                packages.insert(pair[1].to_owned());
            }
        }
        for word in &words {
            if let Some(package) = word.strip_prefix("--package=") {
                packages.insert(package.to_owned());
            }
        }
    }
    packages
}

/// Returns every binary docker-compose.yml and deploy/k8s run from the heapfleet image.
fn binaries_run() -> BTreeSet<String> {
    let mut binaries = BTreeSet::new();
    let compose = compose();
    for service in compose_services(&compose).values() {
        if service["build"]["dockerfile"].as_str() == Some("deploy/Dockerfile") {
            binaries.extend(words(&service["command"]).into_iter().take(1));
        }
    }
    for manifest in k8s_manifests() {
        if manifest.kind() != "Deployment" && manifest.kind() != "Job" {
            continue;
        }
        for container in containers(&manifest) {
            binaries.extend(words(&container["command"]).into_iter().take(1));
        }
    }
    binaries
}

#[test]
fn test_dockerfile_builds_every_binary_the_deployments_run() {
    let dockerfile = read("deploy/Dockerfile");
    let packages = dockerfile_packages(&dockerfile);
    assert!(
        dockerfile.contains("--locked") && dockerfile.contains("--release"),
        "the Dockerfile should build with --release --locked"
    );
    let binaries = binaries_run();
    assert!(binaries.len() >= 3, "found only {binaries:?}");
    for binary in &binaries {
        // Each heapfleet binary is its package's binary of the same name.
        assert!(
            packages.contains(binary),
            "{binary} runs in a container, but the Dockerfile builds only {packages:?}"
        );
        assert!(
            dockerfile.contains(&format!("target/release/{binary}")),
            "the Dockerfile does not copy target/release/{binary} into the image"
        );
    }
    assert!(
        packages.contains("heapfleet"),
        "the image should hold the CLI"
    );
    // The compose health checks call grpc_health_probe, which the image must hold.
    let compose_text = read("docker-compose.yml");
    if compose_text.contains("grpc_health_probe") {
        assert!(
            dockerfile.contains("/usr/local/bin/grpc_health_probe"),
            "docker-compose.yml calls grpc_health_probe, which the image does not install"
        );
    }
    // The builder's Rust is at least the workspace's rust-version.
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    let rust_version = manifest["workspace"]["package"]["rust-version"]
        .as_str()
        .expect("the workspace sets rust-version");
    let builder = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix("FROM rust:"))
        .expect("the Dockerfile builds on a rust: image");
    let version_of = |text: &str| -> Vec<u32> {
        text.split(['-', ' '])
            .next()
            .unwrap_or_default()
            .split('.')
            .map(|part| part.parse().unwrap_or(0))
            .collect()
    };
    assert!(
        version_of(builder) >= version_of(rust_version),
        "the builder image rust:{builder} is older than rust-version {rust_version}"
    );
}

/// Returns the names of the workspace's member packages, read from the manifests now on disk.
fn workspace_packages() -> BTreeMap<String, PathBuf> {
    let root = workspace_root();
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    let members = manifest["workspace"]["members"]
        .as_array()
        .expect("the workspace lists its members");
    let mut directories = Vec::new();
    for member in members {
        let member = member.as_str().unwrap();
        match member.strip_suffix("/*") {
            Some(parent) => {
                let mut children: Vec<PathBuf> = std::fs::read_dir(root.join(parent))
                    .unwrap()
                    .map(|entry| entry.unwrap().path())
                    .filter(|path| path.is_dir())
                    .collect();
                children.sort();
                directories.extend(children);
            }
            None => directories.push(root.join(member)),
        }
    }
    let mut packages = BTreeMap::new();
    for directory in directories {
        let Ok(text) = std::fs::read_to_string(directory.join("Cargo.toml")) else {
            continue;
        };
        let package: toml::Table = toml::from_str(&text)
            .unwrap_or_else(|error| panic!("{}/Cargo.toml: {error}", directory.display()));
        if let Some(name) = package
            .get("package")
            .and_then(|package| package.get("name"))
            .and_then(toml::Value::as_str)
        {
            packages.insert(name.to_owned(), directory);
        }
    }
    packages
}

#[test]
fn test_dockerfile_packages_are_workspace_members() {
    let packages = dockerfile_packages(&read("deploy/Dockerfile"));
    assert_eq!(
        packages,
        [
            "heapfleet",
            "heapfleet-gateway",
            "heapfleet-ingester",
            "heapfleet-query"
        ]
        .map(str::to_owned)
        .into(),
        "the Dockerfile should build the CLI and the three servers"
    );
    let members = workspace_packages();
    let missing: Vec<&String> = packages
        .iter()
        .filter(|package| !members.contains_key(*package))
        .collect();
    assert!(
        missing.is_empty(),
        "the Dockerfile builds {missing:?}, which no workspace member is (members: {:?})",
        members.keys().collect::<Vec<_>>()
    );
}

fn assert_same_bytes(copy: &Path, source: &Path) {
    let copy_bytes = std::fs::read(copy)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", copy.display()));
    let source_bytes = std::fs::read(source)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", source.display()));
    assert!(
        copy_bytes == source_bytes,
        "{} differs from its source {}: copy it again",
        copy.display(),
        source.display()
    );
}

fn file_names(directory: &Path, extension: &str) -> BTreeSet<String> {
    std::fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", directory.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(extension))
        .collect()
}

#[test]
fn test_deploy_schema_copies_match_their_sources() {
    let root = workspace_root();
    assert_same_bytes(
        &root.join("deploy/cql/schema.cql"),
        &root.join("crates/storage/src/scylla/schema.cql"),
    );
    let sources = root.join("crates/catalog/migrations/postgres");
    let copies = root.join("deploy/sql/postgres");
    let source_names = file_names(&sources, ".sql");
    let copy_names = file_names(&copies, ".sql");
    assert!(
        !source_names.is_empty(),
        "no migrations in {}",
        sources.display()
    );
    assert_eq!(
        copy_names, source_names,
        "deploy/sql/postgres should hold exactly the catalog's migrations"
    );
    for name in &source_names {
        assert_same_bytes(&copies.join(name), &sources.join(name));
    }
}

#[test]
fn test_deploy_readme_mentions_every_entry_of_deploy() {
    let root = workspace_root();
    let readme = read("deploy/README.md");
    let missing: Vec<String> = file_names(&root.join("deploy"), "")
        .into_iter()
        .filter(|name| name != "README.md" && !readme.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "deploy/README.md does not mention {missing:?}"
    );
    assert!(
        readme.contains("docker-compose.yml"),
        "deploy/README.md does not mention docker-compose.yml"
    );
}

#[test]
fn test_deploy_example_configs_resolve_with_the_services_types() {
    let root = workspace_root();
    let config = |name: &str| root.join("deploy/config").join(name);

    let file: heapfleet_gateway::GatewayFile =
        heapfleet_service::config::read_file(&config("gateway.toml")).unwrap();
    let gateway = heapfleet_gateway::GatewayArgs::default()
        .resolve_with(file)
        .unwrap();
    assert_eq!(gateway.listen.port(), 7400);
    assert_eq!(gateway.tenant, "default");
    assert!(
        gateway.catalog.starts_with("postgres://"),
        "{}",
        gateway.catalog
    );
    assert_eq!(gateway.objects, "s3://heapfleet-dumps");
    assert_eq!(gateway.s3.endpoint.as_deref(), Some("http://minio:9000"));
    assert!(gateway.s3.allow_http);
    assert_eq!(gateway.limits.max_dump_bytes, 16 << 30);
    assert_eq!(gateway.limits.max_labels, 32);

    let file: heapfleet_ingester::IngesterFile =
        heapfleet_service::config::read_file(&config("ingester.toml")).unwrap();
    let ingester = heapfleet_ingester::IngesterArgs::default()
        .resolve_with(file)
        .unwrap();
    assert_eq!(ingester.listen.port(), 7401);
    assert!(
        ingester.store.starts_with("scylla://"),
        "{}",
        ingester.store
    );
    assert_eq!(ingester.catalog, gateway.catalog);
    assert_eq!(ingester.objects, gateway.objects);
    assert_eq!(ingester.s3.endpoint, gateway.s3.endpoint);
    assert_eq!(ingester.worker.concurrency, 1);
    assert_eq!(ingester.worker.lease, std::time::Duration::from_secs(30));
    assert_eq!(ingester.worker.max_attempts, 3);
    assert_eq!(
        ingester.worker.poll_interval,
        std::time::Duration::from_millis(1000)
    );
    assert_eq!(
        ingester.retention.max_age,
        Some(std::time::Duration::from_secs(30 * 24 * 60 * 60))
    );
    assert_eq!(
        ingester.retention.interval,
        std::time::Duration::from_secs(60 * 60)
    );
    // The gateway deletes aggregates from the store the ingesters write.
    assert_eq!(gateway.store.as_deref(), Some(ingester.store.as_str()));

    let file: heapfleet_query::QueryFile =
        heapfleet_service::config::read_file(&config("query.toml")).unwrap();
    let query = heapfleet_query::QueryArgs::default()
        .resolve_with(file)
        .unwrap();
    assert_eq!(query.listen.port(), 7402);
    assert_eq!(query.tenant, gateway.tenant);
    assert_eq!(query.catalog, gateway.catalog);
    assert_eq!(query.store, ingester.store);
}
