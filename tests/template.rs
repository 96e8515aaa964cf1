//! `template.yaml` is checked against the code it deploys, so the two cannot drift apart:
//! routes, binaries, and the table and queue settings the adapters and local stack mirror.

use std::collections::BTreeSet;

use serde_norway::Value;
use shared::adapters::aws::provision::QueueSettings;
use shared::adapters::aws::store::{EXPIRES_AT, LOG_INDEX, LOG_PK, LOG_SK, PK, SK};
use shared::api::routing::Route;

fn template() -> Value {
    let text = include_str!("../template.yaml");
    serde_norway::from_str(text).expect("template.yaml parses as YAML")
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    let resource = &template["Resources"][name];
    assert!(!resource.is_null(), "template has no resource {name}");
    resource
}

fn u64_of(value: &Value) -> u64 {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("{value:?} is not a number"))
}

/// The (method, path) pairs of a function's HttpApi events.
fn http_routes(template: &Value, function: &str) -> BTreeSet<(String, String)> {
    let events = resource(template, function)["Properties"]["Events"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{function} has no Events"));
    events
        .values()
        .filter(|event| event["Type"].as_str() == Some("HttpApi"))
        .map(|event| {
            let properties = &event["Properties"];
            (
                properties["Method"].as_str().unwrap().to_owned(),
                properties["Path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn code_routes(routes: &[Route]) -> BTreeSet<(String, String)> {
    routes
        .iter()
        .map(|r| (r.method.to_owned(), r.template.to_owned()))
        .collect()
}

#[test]
fn http_routes_are_exactly_the_handlers_routes() {
    let template = template();
    assert_eq!(
        http_routes(&template, "WebhookReceiverFunction"),
        code_routes(&webhook_receiver::ROUTES)
    );
    assert_eq!(
        http_routes(&template, "PaymentLinkApiFunction"),
        code_routes(&payment_link_api::ROUTES)
    );
    assert!(http_routes(&template, "InvoiceSyncFunction").is_empty());
}

#[test]
fn webhook_routes_carry_tenant_and_environment() {
    for route in webhook_receiver::ROUTES {
        assert!(
            route.template.ends_with("/{tenant_id}/{environment_id}"),
            "{}",
            route.describe()
        );
    }
}

#[test]
fn each_function_builds_its_own_binary_with_cargo_lambda() {
    let template = template();
    let expected = [
        ("WebhookReceiverFunction", "webhook-receiver"),
        ("PaymentLinkApiFunction", "payment-link-api"),
        ("InvoiceSyncFunction", "invoice-sync"),
    ];
    for (function, binary) in expected {
        let metadata = &resource(&template, function)["Metadata"];
        assert_eq!(metadata["BuildMethod"].as_str(), Some("rust-cargolambda"));
        assert_eq!(metadata["BuildProperties"]["Binary"].as_str(), Some(binary));
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../functions")
            .join(binary)
            .join("src/main.rs");
        assert!(manifest.is_file(), "{} is missing", manifest.display());
    }
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(
        template["Parameters"]["Architecture"]["Default"].as_str(),
        Some("x86_64")
    );
}

#[test]
fn a_schedule_queues_the_sweep_and_an_alarm_watches_what_it_finds() {
    let template = template();
    let schedule = &resource(&template, "SweepSchedule")["Properties"];
    assert_eq!(
        schedule["ScheduleExpression"].as_str(),
        Some("rate(15 minutes)")
    );
    let input = schedule["Target"]["Input"].as_str().unwrap();
    assert_eq!(
        shared::domain::jobs::Work::parse(input),
        Ok(shared::domain::jobs::Work::SweepAll),
        "the worker reads the schedule's message"
    );
    let alarm = &resource(&template, "WebhookDegradedAlarm")["Properties"];
    assert_eq!(
        alarm["Namespace"].as_str(),
        Some(shared::adapters::telemetry::NAMESPACE)
    );
    let line = shared::adapters::telemetry::emf_line("WebhookMissed", 1, &[("tenant", "t")], 0);
    let emitted: serde_json::Value = serde_json::from_str(&line).unwrap();
    let metric = &emitted["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(
        metric["Metrics"][0]["Name"].as_str(),
        alarm["MetricName"].as_str()
    );
    assert_eq!(
        metric["Dimensions"][1],
        serde_json::json!([]),
        "an all-tenants series"
    );
}

#[test]
fn the_gateway_throttles_bursts_before_they_reach_the_functions() {
    let template = template();
    let settings = &resource(&template, "HttpApi")["Properties"]["DefaultRouteSettings"];
    let burst = u64_of(&settings["ThrottlingBurstLimit"]);
    let rate = u64_of(&settings["ThrottlingRateLimit"]);
    assert!(burst > 0 && rate > 0 && burst >= rate, "{burst} / {rate}");
}

#[test]
fn the_job_queue_redrives_to_a_longer_lived_dlq_and_outlasts_the_worker() {
    let template = template();
    let queue = &resource(&template, "JobQueue")["Properties"];
    let dlq = &resource(&template, "DeadLetterQueue")["Properties"];
    let worker = &resource(&template, "InvoiceSyncFunction")["Properties"];
    let settings = QueueSettings::default();

    let worker_timeout = u64_of(&worker["Timeout"]);
    assert_eq!(
        worker_timeout,
        invoice_sync::TIMEOUT.as_secs(),
        "the local stack gives a batch the worker's timeout"
    );
    let visibility = u64_of(&queue["VisibilityTimeout"]);
    assert!(
        visibility >= 6 * worker_timeout,
        "visibility {visibility} < 6 x {worker_timeout}"
    );
    assert_eq!(
        u64_of(&queue["RedrivePolicy"]["maxReceiveCount"]),
        u64::from(settings.max_receive_count)
    );
    let schedule = shared::domain::jobs::RetrySchedule::PRODUCTION;
    assert_eq!(settings.max_receive_count, schedule.max_receives);
    assert!(
        schedule.budget_secs() >= 24 * 3600,
        "a day of retries at least"
    );
    assert!(
        u64::from(settings.retention_secs) > schedule.budget_secs(),
        "the queue keeps a job longer than it is retried"
    );
    assert_eq!(visibility, u64::from(settings.visibility_timeout_secs));
    let retention = u64_of(&queue["MessageRetentionPeriod"]);
    let dlq_retention = u64_of(&dlq["MessageRetentionPeriod"]);
    assert_eq!(retention, u64::from(settings.retention_secs));
    assert_eq!(dlq_retention, u64::from(settings.dlq_retention_secs));
    assert!(dlq_retention > retention);

    let jobs = &worker["Events"]["Jobs"];
    assert_eq!(jobs["Type"].as_str(), Some("SQS"));
    let types = jobs["Properties"]["FunctionResponseTypes"]
        .as_sequence()
        .unwrap();
    assert!(
        types
            .iter()
            .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
    );
}

#[test]
fn the_table_matches_the_store() {
    let template = template();
    let table = &resource(&template, "Table")["Properties"];
    assert_eq!(table["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    let keys: Vec<(&str, &str)> = table["KeySchema"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap(),
                k["KeyType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(keys, [(PK, "HASH"), (SK, "RANGE")]);
    let index = &table["GlobalSecondaryIndexes"][0];
    assert_eq!(index["IndexName"].as_str(), Some(LOG_INDEX));
    let index_keys: Vec<_> = index["KeySchema"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| k["AttributeName"].as_str().unwrap())
        .collect();
    assert_eq!(index_keys, [LOG_PK, LOG_SK]);
    assert_eq!(index["Projection"]["ProjectionType"].as_str(), Some("ALL"));
    let ttl = &table["TimeToLiveSpecification"];
    assert_eq!(ttl["AttributeName"].as_str(), Some(EXPIRES_AT));
    assert_eq!(ttl["Enabled"].as_bool(), Some(true));
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
}

/// Each function's policy grants only what it uses: no wildcards in actions, the table and
/// queue named by reference, secrets limited to the prefix.
#[test]
fn policies_are_least_privilege() {
    let template = template();
    let functions = [
        "WebhookReceiverFunction",
        "PaymentLinkApiFunction",
        "InvoiceSyncFunction",
    ];
    for function in functions {
        let policies = resource(&template, function)["Properties"]["Policies"]
            .as_sequence()
            .unwrap();
        for policy in policies {
            for statement in policy["Statement"].as_sequence().unwrap() {
                let actions: Vec<&str> = match &statement["Action"] {
                    Value::String(a) => vec![a.as_str()],
                    Value::Sequence(list) => list.iter().filter_map(Value::as_str).collect(),
                    other => panic!("{function}: unexpected Action {other:?}"),
                };
                for action in &actions {
                    assert!(
                        !action.contains('*'),
                        "{function}: wildcard action {action}"
                    );
                }
                let resource = format!("{:?}", statement["Resource"]);
                assert!(!resource.contains("\"*\""), "{function}: wildcard resource");
                if actions.iter().any(|a| a.starts_with("secretsmanager:")) {
                    assert!(
                        resource.contains("secret:${SecretPrefix}/${Stage}/*"),
                        "{function}: secrets not limited to the prefix: {resource}"
                    );
                }
                if actions.iter().any(|a| a.starts_with("dynamodb:")) {
                    let leading = format!("{:?}", statement["Condition"]);
                    assert!(
                        leading.contains("dynamodb:LeadingKeys"),
                        "{function}: table access not limited by leading keys"
                    );
                }
            }
        }
    }
    // Only the API function can touch API keys and write secrets.
    let text = include_str!("../template.yaml");
    assert_eq!(text.matches("\"APIKEY#*\"").count(), 1);
    assert_eq!(text.matches("secretsmanager:PutSecretValue").count(), 1);
}

/// The `flexrzp` metric names of the alarms (plain and metric-math ones).
fn alarm_metrics(template: &Value) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let resources = template["Resources"].as_mapping().unwrap();
    let alarms = resources
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"));
    for alarm in alarms {
        let properties = &alarm["Properties"];
        let stats = properties["Metrics"].as_sequence().into_iter().flatten();
        let metrics = stats.map(|m| &m["MetricStat"]["Metric"]);
        for metric in std::iter::once(properties).chain(metrics) {
            if metric["Namespace"].as_str() == Some(shared::adapters::telemetry::NAMESPACE) {
                named.insert(metric["MetricName"].as_str().unwrap().to_owned());
            }
        }
    }
    named
}

/// The `flexrzp` metric names of the dashboard's widgets (`"..."` repeats the row above).
fn dashboard_metrics(template: &Value) -> BTreeSet<String> {
    let body = match &resource(template, "Dashboard")["Properties"]["DashboardBody"] {
        Value::Tagged(tagged) => tagged.value.as_str().unwrap().to_owned(),
        other => other.as_str().unwrap().to_owned(),
    };
    let body = body
        .replace("${AWS::Region}", "eu-west-1")
        .replace("${JobQueue.QueueName}", "jobs")
        .replace("${DeadLetterQueue.QueueName}", "dlq");
    let body: serde_json::Value = serde_json::from_str(&body).expect("the dashboard is JSON");
    let mut named = BTreeSet::new();
    for widget in body["widgets"].as_array().unwrap() {
        let mut namespace = String::new();
        for row in widget["properties"]["metrics"].as_array().unwrap() {
            if row[0] != "..." {
                namespace = row[0].as_str().unwrap().to_owned();
                if namespace == shared::adapters::telemetry::NAMESPACE {
                    named.insert(row[1].as_str().unwrap().to_owned());
                }
            }
        }
        assert!(!namespace.is_empty(), "a widget with no metric: {widget}");
    }
    named
}

#[test]
fn the_dashboard_and_the_alarms_name_only_metrics_the_code_emits() {
    let template = template();
    let emitted: BTreeSet<String> = shared::adapters::telemetry::metrics::ALL
        .iter()
        .map(|m| (*m).to_owned())
        .collect();
    let on_dashboard = dashboard_metrics(&template);
    assert_eq!(
        on_dashboard, emitted,
        "the dashboard shows every metric, no other"
    );
    let alarmed = alarm_metrics(&template);
    assert!(
        alarmed.is_subset(&emitted),
        "{alarmed:?} not all in {emitted:?}"
    );
    for name in [
        "Jobs",
        "WebhooksReceived",
        "WebhookMissed",
        "DisputeResponseDue",
    ] {
        assert!(alarmed.contains(name), "no alarm watches {name}");
    }
    for alarm in [
        "JobAgeAlarm",
        "WorkerErrorRateAlarm",
        "IntakeErrorRateAlarm",
        "WebhookDegradedAlarm",
        "DeadLetterQueueAlarm",
    ] {
        resource(&template, alarm);
    }
    // The outcomes the rate alarms divide by are the ones the code names.
    let line =
        shared::adapters::telemetry::emf_line("Jobs", 1, &[("Kind", "k"), ("Outcome", "done")], 0);
    let emitted: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        emitted["_aws"]["CloudWatchMetrics"][0]["Dimensions"][2],
        serde_json::json!(["Outcome"]),
        "a by-outcome series for the rate alarms"
    );
}
