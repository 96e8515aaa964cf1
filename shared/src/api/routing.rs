//! Matching request paths against the HTTP API's route templates, so a handler works the same
//! behind API Gateway (which passes path parameters), a function URL or the local gateway
//! (which pass only the path).

use std::collections::HashMap;

/// Matches `path` against a template such as `/v1/webhooks/razorpay/{tenant_id}/{environment_id}`
/// and returns the captured parameters. Segments are compared exactly; a parameter matches one
/// non-empty segment.
pub fn match_route(template: &str, path: &str) -> Option<HashMap<String, String>> {
    let mut params = HashMap::new();
    let mut given = path.trim_end_matches('/').split('/');
    for expected in template.split('/') {
        let segment = given.next()?;
        match expected.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !segment.is_empty() => {
                params.insert(name.to_owned(), segment.to_owned());
            }
            Some(_) => return None,
            None if expected == segment => {}
            None => return None,
        }
    }
    given.next().is_none().then_some(params)
}

/// One route of the HTTP API: a method, a path template and the name the handler dispatches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub template: &'static str,
}

impl Route {
    pub const fn new(method: &'static str, template: &'static str) -> Route {
        Route { method, template }
    }

    /// `"POST /api/v1/payments"`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.method, self.template)
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Matched {
        route: Route,
        params: HashMap<String, String>,
    },
    /// The path exists, with other methods.
    MethodNotAllowed,
    NotFound,
}

/// Finds the route for a method and path among `routes`.
pub fn resolve(routes: &[Route], method: &str, path: &str) -> Resolution {
    let mut path_exists = false;
    for route in routes {
        if let Some(params) = match_route(route.template, path) {
            if route.method.eq_ignore_ascii_case(method) {
                return Resolution::Matched {
                    route: *route,
                    params,
                };
            }
            path_exists = true;
        }
    }
    if path_exists {
        Resolution::MethodNotAllowed
    } else {
        Resolution::NotFound
    }
}

/// A request's route and path parameters, or the 404/405 problem to answer.
pub fn route(
    routes: &[Route],
    method: &str,
    path: &str,
) -> Result<(Route, HashMap<String, String>), crate::api::problem::Problem> {
    match resolve(routes, method, path) {
        Resolution::Matched { route, params } => Ok((route, params)),
        Resolution::MethodNotAllowed => {
            Err(crate::api::problem::Problem::method_not_allowed(method))
        }
        Resolution::NotFound => Err(crate::api::problem::Problem::not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_method_and_path() {
        let routes = [
            Route::new("POST", "/api/v1/payments"),
            Route::new("GET", "/api/v1/payments/{payment_id}"),
        ];
        let Resolution::Matched { route, params } = resolve(&routes, "get", "/api/v1/payments/p1")
        else {
            panic!("expected a match");
        };
        assert_eq!(route.describe(), "GET /api/v1/payments/{payment_id}");
        assert_eq!(params["payment_id"], "p1");
        assert_eq!(
            resolve(&routes, "DELETE", "/api/v1/payments"),
            Resolution::MethodNotAllowed
        );
        assert_eq!(
            resolve(&routes, "POST", "/api/v2/payments"),
            Resolution::NotFound
        );
    }

    const WEBHOOK: &str = "/v1/webhooks/razorpay/{tenant_id}/{environment_id}";

    #[test]
    fn captures_parameters() {
        let params = match_route(WEBHOOK, "/v1/webhooks/razorpay/t1/live").unwrap();
        assert_eq!(params["tenant_id"], "t1");
        assert_eq!(params["environment_id"], "live");
        assert!(match_route(WEBHOOK, "/v1/webhooks/razorpay/t1/live/").is_some());
        assert!(
            match_route("/api/v1/payments", "/api/v1/payments")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn refuses_other_shapes() {
        assert!(match_route(WEBHOOK, "/v1/webhooks/razorpay/t1").is_none());
        assert!(match_route(WEBHOOK, "/v1/webhooks/razorpay/t1/live/extra").is_none());
        assert!(match_route(WEBHOOK, "/v1/webhooks/razorpay//live").is_none());
        assert!(match_route(WEBHOOK, "/v1/webhooks/stripe/t1/live").is_none());
        assert!(match_route("/api/v1/payments", "/api/v1/payments/x").is_none());
        assert!(match_route("/api/v1/payments", "").is_none());
    }
}
