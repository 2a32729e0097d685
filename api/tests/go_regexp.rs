//! The filters' regular expressions against Go's `regexp` package, which
//! Telepresence compiles them with. `go-regexp/cases.json` holds what Go
//! says of about 4 700 patterns (written out where the two syntaxes differ,
//! and drawn at random from pieces of both; `go-regexp/main.go` writes it):
//! each must compile here exactly when it compiles in Go, with Go's reason
//! when it does not, and find a match in exactly the values Go finds one in.

use http::HeaderMap;
use serde::Deserialize;
use telepresence_api::{CompiledIntercept, Intercept, InterceptError, Rules, TelepresenceVersion};

#[derive(Deserialize)]
struct Cases {
    values: Vec<String>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    pattern: String,
    /// Go's reason, without its "error parsing regexp: ".
    error: Option<String>,
    /// A `1` for each value Go finds a match in.
    #[serde(default)]
    matches: String,
}

fn cases() -> Cases {
    serde_json::from_str(include_str!("go-regexp/cases.json")).expect("go-regexp/cases.json")
}

/// Releases before 2.25 refuse an invalid regular expression, so the
/// answer is Go's `regexp.Compile`.
fn compile(pattern: &str) -> Result<CompiledIntercept, InterceptError> {
    let legacy: TelepresenceVersion = "2.24".parse().expect("a release");
    Intercept::new("i")
        .path_regex(pattern)
        .compile(&legacy.rules())
}

#[test]
fn a_pattern_compiles_exactly_when_it_compiles_in_go() {
    let cases = cases();
    let disagreements: Vec<String> = cases
        .cases
        .iter()
        .filter_map(|case| match (compile(&case.pattern), &case.error) {
            (Ok(_), Some(go)) => Some(format!(
                "{:?}: Go refuses it ({go}), this accepts it",
                case.pattern
            )),
            (Err(ours), None) => Some(format!(
                "{:?}: Go accepts it, this refuses it ({ours})",
                case.pattern
            )),
            _ => None,
        })
        .collect();
    let of = format!("of {} patterns", cases.cases.len());
    assert_go_agrees(&disagreements, &of);
}

#[test]
fn a_refused_pattern_gets_gos_reason() {
    let cases = cases();
    let disagreements: Vec<String> = cases
        .cases
        .iter()
        .filter_map(|case| {
            let go = case.error.as_ref()?;
            // Go also estimates the compiled size as it parses; this does
            // not, and refuses such a pattern for a repeat count or the
            // regex crate's own size limit.
            if go.starts_with("expression too large") {
                return None;
            }
            let ours = compile(&case.pattern).err()?.to_string();
            (!ours.ends_with(&format!(": {go}")))
                .then(|| format!("{:?}: Go says {go:?}, this says {ours:?}", case.pattern))
        })
        .collect();
    assert_go_agrees(&disagreements, "");
}

#[test]
fn a_pattern_matches_exactly_the_values_go_matches() {
    let cases = cases();
    let mut disagreements = Vec::new();
    for case in cases.cases.iter().filter(|case| case.error.is_none()) {
        // Not the current rules, which would take a refused pattern as a
        // literal value: the test above reports it.
        let Ok(intercept) = compile(&case.pattern) else {
            continue;
        };
        for (value, go) in cases.values.iter().zip(case.matches.chars()) {
            let ours = intercept.matches(&HeaderMap::new(), value.as_bytes());
            if ours != (go == '1') {
                disagreements.push(format!(
                    "{:?} in {value:?}: Go {}, this {ours}",
                    case.pattern,
                    go == '1'
                ));
            }
        }
    }
    assert_go_agrees(&disagreements, "");
}

fn assert_go_agrees(disagreements: &[String], of: &str) {
    assert!(
        disagreements.is_empty(),
        "{} {of} disagree with Go:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

/// Header filters go through the same reading as path filters.
#[test]
fn a_header_filter_reads_its_regex_as_go_does() {
    let intercept = Intercept::new("i")
        .header("x-dev", r"^\w+$")
        .compile(&Rules::default())
        .expect("a valid filter");
    let decide = |value: &str| {
        let mut headers = HeaderMap::new();
        let value = http::HeaderValue::from_bytes(value.as_bytes()).expect("a header value");
        headers.insert("x-dev", value);
        intercept.matches(&headers, b"")
    };
    assert!(decide("alice_2"));
    assert!(!decide("café"), "é is no word character in Go");
}
