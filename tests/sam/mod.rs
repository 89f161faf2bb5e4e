//! template.yaml as data, read the way the services it configures read it: the HTTP API's
//! routes as API Gateway matches them, and the stream mapping's filter as Lambda applies
//! it to the records moto's stream gives.

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

pub fn template_text() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    std::fs::read_to_string(path).unwrap()
}

/// The template; CloudFormation's tags (`!Ref X`) read as their plain values (`X`).
pub fn parse(text: &str) -> Yaml {
    YamlLoader::load_from_str(text).unwrap().remove(0)
}

/// Every event of `kind` in the template: (function, event name, its properties).
pub fn events<'a>(template: &'a Yaml, kind: &str) -> Vec<(String, String, &'a Yaml)> {
    let mut found = Vec::new();
    for (name, resource) in template["Resources"].as_hash().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(events) = resource["Properties"]["Events"].as_hash() else {
            continue;
        };
        for (event, body) in events {
            if body["Type"].as_str() == Some(kind) {
                found.push((
                    name.as_str().unwrap().to_owned(),
                    event.as_str().unwrap().to_owned(),
                    &body["Properties"],
                ));
            }
        }
    }
    found
}

/// An HTTP API route: `$default`, or a method (or `ANY`) and a path with `{variables}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub key: String,
    pub function: String,
}

impl Route {
    fn method_and_path(&self) -> Option<(&str, &str)> {
        self.key.split_once(' ')
    }

    /// How specific the route is, as an HTTP API ranks the routes that match a request:
    /// a path without a greedy variable before one with it, more literal segments before
    /// fewer, then a method before `ANY`.
    fn specificity(&self) -> (bool, usize, usize, bool) {
        let Some((method, path)) = self.method_and_path() else {
            return (false, 0, 0, false);
        };
        let segments: Vec<&str> = path.split('/').collect();
        let greedy = segments.iter().any(|s| s.ends_with("+}"));
        let literal = segments.iter().filter(|s| !s.starts_with('{')).count();
        (!greedy, literal, segments.len(), method != "ANY")
    }

    /// Whether API Gateway would match `method path` to this route (not `$default`, which
    /// takes what no other route matches).
    fn matches(&self, method: &str, path: &str) -> bool {
        let Some((route_method, route_path)) = self.method_and_path() else {
            return false;
        };
        if route_method != "ANY" && route_method != method {
            return false;
        }
        let mut want = route_path.split('/');
        let mut have = path.split('/');
        loop {
            match (want.next(), have.next()) {
                (None, None) => return true,
                (Some(w), Some(_)) if w.starts_with('{') && w.ends_with("+}") => return true,
                (Some(w), Some(h)) if w.starts_with('{') && w.ends_with('}') && !h.is_empty() => {}
                (Some(w), Some(h)) if w == h => {}
                _ => return false,
            }
        }
    }
}

/// The routes SAM makes of the HttpApi events (without Path and Method: `$default`).
pub fn routes(template: &Yaml) -> Vec<Route> {
    events(template, "HttpApi")
        .into_iter()
        .map(|(function, _, properties)| {
            let key = match (properties["Method"].as_str(), properties["Path"].as_str()) {
                (None, None) => "$default".to_owned(),
                (method, path) => format!(
                    "{} {}",
                    method.unwrap_or("ANY").to_ascii_uppercase(),
                    path.unwrap_or("/")
                ),
            };
            Route { key, function }
        })
        .collect()
}

/// What API Gateway would refuse, or route to the wrong function, of `routes`: variables
/// of different names at one level of the same path ("has a conflicting variable on the
/// same hierarchical level"), and every request in `served` (method, path, the function
/// that must serve it) that does not reach its function.
pub fn route_problems(routes: &[Route], served: &[(&str, &str, &str)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, a) in routes.iter().enumerate() {
        for b in &routes[i + 1..] {
            let (Some((_, pa)), Some((_, pb))) = (a.method_and_path(), b.method_and_path()) else {
                continue;
            };
            for (sa, sb) in pa.split('/').zip(pb.split('/')) {
                let variable = |s: &str| s.starts_with('{') && s.ends_with('}');
                if variable(sa) && variable(sb) && sa != sb {
                    problems.push(format!(
                        "{} and {} have conflicting variables {sa} and {sb} at one level",
                        a.key, b.key
                    ));
                    break;
                }
                if sa != sb {
                    break;
                }
            }
        }
    }
    for (method, path, function) in served {
        let route = routes
            .iter()
            .filter(|r| r.matches(method, path))
            .max_by_key(|r| r.specificity())
            .or_else(|| routes.iter().find(|r| r.key == "$default"));
        match route {
            Some(route) if route.function == *function => {}
            Some(route) => problems.push(format!(
                "{method} {path} goes to {} ({}), not {function}",
                route.function, route.key
            )),
            None => problems.push(format!("{method} {path} reaches no function (404)")),
        }
    }
    problems
}

/// The DynamoDB stream mapping's filter patterns, as JSON.
pub fn stream_filters(template: &Yaml) -> Vec<Value> {
    events(template, "DynamoDB")
        .into_iter()
        .flat_map(|(_, _, properties)| {
            properties["FilterCriteria"]["Filters"]
                .as_vec()
                .cloned()
                .unwrap_or_default()
        })
        .map(|filter| serde_json::from_str(filter["Pattern"].as_str().unwrap()).unwrap())
        .collect()
}

/// Whether a record passes any of the filters, by Lambda's filter rules (the subset the
/// template uses; anything else fails the test rather than being guessed).
pub fn passes(filters: &[Value], record: &Value) -> bool {
    filters
        .iter()
        .any(|filter| matches_pattern(filter, Some(record)))
}

/// Whether `event` (absent: `None`) matches `pattern`. Lambda flattens a pattern into the
/// paths of its leaves, so a leaf's rule under a field the event lacks sees no value
/// (`exists: false` matches it).
fn matches_pattern(pattern: &Value, event: Option<&Value>) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(key, inner)| {
            let value = event.and_then(|event| event.get(key));
            match inner {
                Value::Object(_) => matches_pattern(inner, value),
                Value::Array(rules) => rules.iter().any(|rule| matches_rule(rule, value)),
                other => panic!("a filter value must be an object or a list: {other}"),
            }
        }),
        other => panic!("a filter pattern must be an object: {other}"),
    }
}

fn matches_rule(rule: &Value, value: Option<&Value>) -> bool {
    match rule {
        Value::Object(operator) => match operator.iter().next() {
            Some((name, Value::Array(excluded))) if name == "anything-but" => {
                value.is_some_and(|v| !excluded.contains(v))
            }
            Some((name, Value::Bool(wanted))) if name == "exists" => value.is_some() == *wanted,
            Some((name, Value::String(prefix))) if name == "prefix" => value
                .and_then(Value::as_str)
                .is_some_and(|v| v.starts_with(prefix.as_str())),
            _ => panic!("a filter rule these tests do not know: {rule}"),
        },
        literal => value == Some(literal),
    }
}
