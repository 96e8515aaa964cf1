//! RFC 9457 problem details, the one shape of every 4xx/5xx this service answers.

use serde::Serialize;

use crate::domain::error::{FieldRule, FieldsKind, Refusal};
use crate::domain::money::MoneyError;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// One field that broke one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    pub field: String,
    pub rule: String,
    pub detail: String,
}

/// An RFC 9457 problem document, extended with `errors` (one entry per field and rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// `true` when the same request may succeed later (a dependency was unavailable).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retryable: bool,
}

impl Problem {
    /// A problem whose `type` is `https://flexrzp.dev/problems/{slug}`.
    pub fn new(status: u16, slug: &str, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            type_uri: format!("https://flexrzp.dev/problems/{slug}"),
            title: title.to_owned(),
            status,
            detail: detail.into(),
            errors: Vec::new(),
            retryable: false,
        }
    }

    /// 400 or 422 for one field: names the field and the rule in `detail` and `errors`.
    pub fn invalid_field(
        status: u16,
        field: &str,
        rule: &str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem::fields(
            status,
            vec![FieldProblem {
                field: field.to_owned(),
                rule: rule.to_owned(),
                detail: detail.into(),
            }],
        )
    }

    /// A 4xx naming every field at fault and its rule, in `detail` and `errors`.
    pub fn fields(status: u16, problems: Vec<FieldProblem>) -> Problem {
        let detail = problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.detail))
            .collect::<Vec<_>>()
            .join("; ");
        Problem {
            errors: problems,
            ..Problem::new(
                status,
                "invalid-request",
                "The request is not valid",
                detail,
            )
        }
    }

    /// 503 with `retryable: true`: a dependency is unavailable; `detail` says what, and how to
    /// retry.
    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem {
            retryable: true,
            ..Problem::new(503, "unavailable", "Temporarily unavailable", detail)
        }
    }

    /// A money error found in `field`, as a 422.
    pub fn from_money(field: &str, err: &MoneyError) -> Problem {
        Problem::invalid_field(422, field, err.rule(), err.to_string())
    }

    pub fn not_found() -> Problem {
        Problem::new(
            404,
            "not-found",
            "Not found",
            "There is nothing at this address.",
        )
    }

    pub fn method_not_allowed(method: &str) -> Problem {
        Problem::new(
            405,
            "method-not-allowed",
            "Method not allowed",
            format!("{method} is not allowed on this route."),
        )
    }

    /// A route that exists in the API but whose flow has not been built yet.
    pub fn not_implemented(route: &str) -> Problem {
        Problem::new(
            501,
            "not-implemented",
            "Not implemented",
            format!("{route} is part of the API but is not implemented yet."),
        )
    }

    pub fn internal() -> Problem {
        Problem::new(
            500,
            "internal",
            "Internal error",
            "The request could not be completed; it is safe to retry.",
        )
    }

    pub fn to_json(&self) -> String {
        // A Problem is strings and numbers only; serializing it cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// The problem as an HTTP response with `Content-Type: application/problem+json`.
    pub fn to_response(&self) -> http::Response<String> {
        let mut response = http::Response::new(self.to_json());
        *response.status_mut() = http::StatusCode::from_u16(self.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        response
    }
}

/// The one place a service's refusal becomes an answer: its status, type, title and fields.
impl From<Refusal> for Problem {
    fn from(refusal: Refusal) -> Problem {
        let detail = refusal.to_string();
        match refusal {
            Refusal::Fields { kind, fields } => Problem::fields(
                match kind {
                    FieldsKind::Malformed => 400,
                    FieldsKind::Unprocessable => 422,
                    FieldsKind::Conflict => 409,
                },
                fields.into_iter().map(FieldProblem::from).collect(),
            ),
            Refusal::Unauthorized(_) => Problem::new(401, "unauthorized", "Unauthorized", detail),
            Refusal::BadSignature(_) => Problem::new(401, "bad-signature", "Unauthorized", detail),
            Refusal::WrongAccount(_) => Problem::new(403, "wrong-account", "Forbidden", detail),
            Refusal::NotFound(_) => Problem::new(404, "not-found", "Not found", detail),
            Refusal::NotConnected => Problem::new(
                404,
                "not-connected",
                "Not connected",
                "This tenant and environment have no Razorpay connection.",
            ),
            Refusal::EventConflict(_) => Problem::new(409, "event-conflict", "Conflict", detail),
            Refusal::InProgress(_) => Problem {
                retryable: true,
                ..Problem::new(409, "in-progress", "In progress", detail)
            },
            Refusal::TooLarge(_) => Problem::new(413, "too-large", "Payload too large", detail),
            Refusal::Upstream(_) => Problem::new(502, "upstream", "Bad gateway", detail),
            Refusal::Unavailable(_) => Problem::unavailable(detail),
            Refusal::Internal => Problem::internal(),
        }
    }
}

impl From<FieldRule> for FieldProblem {
    fn from(rule: FieldRule) -> FieldProblem {
        FieldProblem {
            field: rule.field,
            rule: rule.rule,
            detail: rule.detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::{Currency, Money};

    #[test]
    fn field_problem_names_field_and_rule() {
        let err = Money::parse("0.50", Currency::INR)
            .unwrap()
            .check_collectable()
            .unwrap_err();
        let problem = Problem::from_money("amount", &err);
        let json: serde_json::Value = serde_json::from_str(&problem.to_json()).unwrap();
        assert_eq!(json["status"], 422);
        assert_eq!(json["type"], "https://flexrzp.dev/problems/invalid-request");
        assert_eq!(json["errors"][0]["field"], "amount");
        assert_eq!(json["errors"][0]["rule"], "currency_minimum");
        assert_eq!(
            json["detail"],
            "amount: amount 0.50 INR is below the minimum 1.00 INR"
        );
    }

    #[test]
    fn each_refusal_has_one_status_and_type() {
        let cases = [
            (
                Refusal::malformed("body", "json", "not JSON"),
                400,
                "invalid-request",
            ),
            (
                Refusal::unprocessable("amount", "positive", "> 0"),
                422,
                "invalid-request",
            ),
            (
                Refusal::conflict("idempotency_key", "same_body", "x"),
                409,
                "invalid-request",
            ),
            (Refusal::Unauthorized("key".into()), 401, "unauthorized"),
            (Refusal::BadSignature("sig".into()), 401, "bad-signature"),
            (Refusal::WrongAccount("acc".into()), 403, "wrong-account"),
            (Refusal::NotFound("none".into()), 404, "not-found"),
            (Refusal::NotConnected, 404, "not-connected"),
            (Refusal::EventConflict("body".into()), 409, "event-conflict"),
            (Refusal::InProgress("busy".into()), 409, "in-progress"),
            (Refusal::TooLarge("big".into()), 413, "too-large"),
            (Refusal::Upstream("no".into()), 502, "upstream"),
            (Refusal::Unavailable("later".into()), 503, "unavailable"),
            (Refusal::Internal, 500, "internal"),
        ];
        for (refusal, status, slug) in cases {
            let retryable = refusal.is_retryable();
            let problem = Problem::from(refusal);
            assert_eq!(problem.status, status, "{problem:?}");
            assert_eq!(
                problem.type_uri,
                format!("https://flexrzp.dev/problems/{slug}")
            );
            assert_eq!(problem.retryable, retryable, "{problem:?}");
        }
        let named = Problem::from(Refusal::unprocessable("amount", "positive", "must be > 0"));
        assert_eq!(named.errors[0].rule, "positive");
        assert_eq!(named.detail, "amount: must be > 0");
    }

    #[test]
    fn response_has_status_and_content_type() {
        let response = Problem::not_implemented("POST /api/v1/payments").to_response();
        assert_eq!(response.status(), 501);
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            PROBLEM_CONTENT_TYPE
        );
        let json: serde_json::Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(json["title"], "Not implemented");
        assert!(json.get("errors").is_none());
    }
}
