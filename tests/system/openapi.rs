//! `functions/openapi.yaml` is held to the routes the functions serve (which `template.rs`
//! holds to `template.yaml`), so the contract, the code and the deployment cannot drift.

use std::collections::BTreeSet;

use serde_norway::Value;

fn document() -> Value {
    serde_norway::from_str(include_str!("../../functions/openapi.yaml"))
        .expect("functions/openapi.yaml parses as YAML")
}

fn served() -> BTreeSet<(String, String)> {
    webhook_receiver::ROUTES
        .iter()
        .chain(payment_link_api::ROUTES.iter())
        .map(|route| (route.method.to_owned(), route.template.to_owned()))
        .collect()
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

#[test]
fn the_document_describes_exactly_the_routes_the_functions_serve() {
    let document = document();
    assert_eq!(document["openapi"].as_str(), Some("3.1.0"));
    let paths = document["paths"].as_mapping().expect("paths");
    let described: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            let path = path.as_str().unwrap().to_owned();
            METHODS
                .iter()
                .filter(|m| !item[**m].is_null())
                .map(move |m| (m.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(described, served());
}

#[test]
fn every_operation_documents_its_errors_as_problems_and_webhooks_need_no_api_key() {
    let document = document();
    let responses = &document["components"]["responses"];
    for (path, item) in document["paths"].as_mapping().unwrap() {
        let path = path.as_str().unwrap();
        for method in METHODS.iter().filter(|m| !item[**m].is_null()) {
            let operation = &item[*method];
            let codes: Vec<&str> = operation["responses"]
                .as_mapping()
                .unwrap()
                .keys()
                .map(|k| k.as_str().unwrap())
                .collect();
            assert!(codes.contains(&"500"), "{method} {path} documents 500");
            for code in codes
                .iter()
                .filter(|c| c.starts_with('4') || c.starts_with('5'))
            {
                let reference = operation["responses"][*code]["$ref"].as_str().unwrap();
                let name = reference.rsplit('/').next().unwrap();
                assert!(
                    !responses[name]["content"]["application/problem+json"].is_null(),
                    "{method} {path} {code} is a problem+json"
                );
            }
            let webhook = path.starts_with("/v1/webhooks/");
            let unauthenticated = operation["security"]
                .as_sequence()
                .is_some_and(|s| s.is_empty());
            assert_eq!(webhook, unauthenticated, "{method} {path}: security");
            if !webhook {
                assert!(codes.contains(&"401"), "{method} {path} documents 401");
            }
        }
    }
}
