use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

fn p(s: &str) -> Pattern {
    Pattern::parse(s).unwrap()
}

#[test]
fn exact_names_match_case_insensitively_and_ignore_trailing_dot() {
    let pat = p("App.Corp.Example");
    assert_eq!(pat.as_str(), "app.corp.example");
    assert!(pat.matches("app.corp.example"));
    assert!(pat.matches("APP.corp.EXAMPLE."));
    assert!(!pat.matches("app.corp.example.com"));
    assert!(!pat.matches("x.app.corp.example"));
    assert!(!pat.matches("corp.example"));
    assert!(pat.is_exact());
}

#[test]
fn only_plain_host_names_match() {
    let pat = p("*.corp.example");
    assert!(pat.matches("a-b_c9.corp.example"));
    assert!(!pat.matches("a b.corp.example"));
    assert!(!pat.matches("a/b.corp.example"));
    assert!(!pat.matches("ä.corp.example"));
    assert!(!pat.matches(".corp.example"));
    assert!(!pat.matches(""));
    assert!(!pat.matches(&format!("{}.corp.example", "a".repeat(64))));
    assert!(is_hostname("corp.example"));
    assert!(!is_hostname("corp..example"));
}

#[test]
fn question_mark_matches_one_character_in_one_label() {
    let pat = p("build-?.corp.example");
    assert!(pat.matches("build-1.corp.example"));
    assert!(pat.matches("BUILD-X.corp.example"));
    assert!(!pat.matches("build-.corp.example"));
    assert!(!pat.matches("build-12.corp.example"));
    assert!(!pat.matches("build-1.x.corp.example"));
    assert!(!pat.is_exact());
}

#[test]
fn star_matches_a_run_inside_one_label_and_leading_star_matches_the_parent() {
    let pat = p("*.corp.example");
    assert!(pat.matches("app.corp.example"));
    assert!(
        pat.matches("corp.example"),
        "leading `*.` matches the bare parent"
    );
    assert!(!pat.matches("a.b.corp.example"), "`*` never crosses a dot");
    assert!(!pat.matches("example"));

    let pat = p("web-*.corp.example");
    assert!(pat.matches("web-.corp.example"));
    assert!(pat.matches("web-prod.corp.example"));
    assert!(
        !pat.matches("corp.example"),
        "only a lone leading `*` matches the parent"
    );
    assert!(!pat.matches("api.corp.example"));

    let pat = p("a.*.corp.example");
    assert!(pat.matches("a.b.corp.example"));
    assert!(
        !pat.matches("a.corp.example"),
        "a non-leading `*` label needs a label"
    );
}

#[test]
fn double_star_matches_zero_or_more_labels_anywhere() {
    let pat = p("**.corp.example");
    assert!(pat.matches("corp.example"));
    assert!(pat.matches("a.corp.example"));
    assert!(pat.matches("a.b.c.corp.example"));
    assert!(!pat.matches("corp.example.com"));
    assert!(!pat.matches("xcorp.example"));

    let pat = p("app.**.web.**.example.com");
    assert!(pat.matches("app.web.example.com"));
    assert!(pat.matches("app.x.web.y.z.example.com"));
    assert!(!pat.matches("app.example.com"));
    assert!(!pat.matches("x.app.web.example.com"));
}

#[test]
fn invalid_patterns_are_rejected_with_a_reason() {
    assert_eq!(Pattern::parse(""), Err(PatternError::Empty));
    assert_eq!(Pattern::parse("."), Err(PatternError::Empty));
    assert_eq!(Pattern::parse("a..b"), Err(PatternError::EmptyLabel));
    assert_eq!(Pattern::parse(".a.b"), Err(PatternError::EmptyLabel));
    assert_eq!(Pattern::parse("*.corp.*"), Err(PatternError::WildcardInTld));
    assert_eq!(Pattern::parse("**"), Err(PatternError::WildcardInTld));
    assert_eq!(Pattern::parse("*"), Err(PatternError::WildcardInTld));
    assert_eq!(
        Pattern::parse("a**.corp"),
        Err(PatternError::DoubleStarInLabel("a**".into()))
    );
    assert_eq!(
        Pattern::parse("***.corp"),
        Err(PatternError::DoubleStarInLabel("***".into()))
    );
    assert_eq!(
        Pattern::parse("a b.corp"),
        Err(PatternError::InvalidChar(' '))
    );
    assert_eq!(
        Pattern::parse("ä.corp"),
        Err(PatternError::InvalidChar('ä'))
    );
    let long_label = "a".repeat(64);
    assert!(matches!(
        Pattern::parse(&format!("{long_label}.corp")),
        Err(PatternError::LabelTooLong(_))
    ));
    let long = "a.".repeat(127) + "bc";
    assert_eq!(Pattern::parse(&long), Err(PatternError::TooLong));
    // Single-label literal names are fine (e.g. an intranet host).
    assert!(Pattern::parse("intranet").is_ok());
    assert!(Pattern::parse("_ldap._tcp.corp.example").is_ok());
}

#[test]
fn specificity_order_exact_then_question_then_star_then_double_star() {
    let mut set = PatternSet::new();
    for pat in [
        "**.corp.example",
        "*.corp.example",
        "ap?.corp.example",
        "app.corp.example",
        "a*.corp.example",
        "**.example",
    ] {
        set.insert(p(pat), ());
    }
    let name: Vec<&[u8]> = vec![b"app", b"corp", b"example"];
    let order: Vec<&str> = set
        .matches(&name)
        .into_iter()
        .map(|i| set.entry(i).0.as_str())
        .collect();
    assert_eq!(
        order,
        [
            "app.corp.example",
            "ap?.corp.example",
            "a*.corp.example",
            "*.corp.example",
            "**.corp.example",
            "**.example",
        ]
    );
    assert_eq!(
        set.best_for_domain("APP.corp.example.").unwrap().0.as_str(),
        "app.corp.example"
    );
    assert_eq!(
        set.best_for_domain("other.corp.example")
            .unwrap()
            .0
            .as_str(),
        "*.corp.example"
    );
    assert_eq!(
        set.best_for_domain("a.b.corp.example").unwrap().0.as_str(),
        "**.corp.example"
    );
    assert_eq!(
        set.best_for_domain("x.example").unwrap().0.as_str(),
        "**.example"
    );
    assert!(set.best_for_domain("example.com").is_none());
}

#[test]
fn specificity_compares_from_the_tld() {
    // Both match a.b.corp.example; the literal closer to the TLD wins.
    let left = p("a.*.corp.example");
    let right = p("*.b.corp.example");
    assert_eq!(right.cmp_specificity(&left), Ordering::Less);
    // The bare parent: the exact name beats `*.` and `**.`.
    assert_eq!(
        p("corp.example").cmp_specificity(&p("*.corp.example")),
        Ordering::Less
    );
    assert_eq!(
        p("*.corp.example").cmp_specificity(&p("**.corp.example")),
        Ordering::Less
    );
}

#[test]
fn duplicate_patterns_all_match() {
    let mut set = PatternSet::new();
    let a = set.insert(p("*.corp.example"), "r1");
    let b = set.insert(p("*.CORP.example"), "r2");
    let name: Vec<&[u8]> = vec![b"x", b"corp", b"example"];
    assert_eq!(set.matches(&name), vec![a, b]);
    assert_eq!(set.best(&name), Some(a));
}

#[test]
fn ten_thousand_patterns_match_like_the_reference() {
    let mut set = PatternSet::new();
    let mut pats = Vec::new();
    for i in 0..10_000 {
        let text = match i % 4 {
            0 => format!("host{i}.zone{}.example", i % 50),
            1 => format!("*.svc{i}.zone{}.example", i % 50),
            2 => format!("build-{i}-?.zone{}.example", i % 50),
            _ => format!("**.team{i}.example"),
        };
        pats.push(p(&text));
        set.insert(p(&text), i);
    }
    for name in [
        "host8.zone8.example",
        "svc1.zone1.example",
        "x.svc1.zone1.example",
        "build-2-z.zone2.example",
        "a.b.c.team3.example",
        "team3.example",
        "nothing.example",
    ] {
        let from_set: BTreeSet<usize> = {
            let lower = name.to_ascii_lowercase();
            let labels: Vec<&[u8]> = lower.split('.').map(str::as_bytes).collect();
            set.matches(&labels).into_iter().collect()
        };
        let from_scan: BTreeSet<usize> = pats
            .iter()
            .enumerate()
            .filter(|(_, pat)| pat.matches(name))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(from_set, from_scan, "{name}");
    }
}

#[test]
fn ten_thousand_globs_in_one_zone_match_like_the_reference() {
    let mut set = PatternSet::new();
    let mut pats = Vec::new();
    for i in 0..10_000 {
        let text = match i % 3 {
            0 => format!("web-*-{i}.corp.example"),
            1 => format!("api{i}-?.corp.example"),
            _ => format!("*x{i}*.corp.example"),
        };
        pats.push(p(&text));
        set.insert(p(&text), i);
    }
    for name in [
        "web-blue-3.corp.example",
        "web--3.corp.example",
        "api4-z.corp.example",
        "api4-zz.corp.example",
        "ax5b.corp.example",
        "x5.corp.example",
        "corp.example",
        "web-a-b.corp.example",
    ] {
        let labels: Vec<&[u8]> = name.split('.').map(str::as_bytes).collect();
        let from_set: BTreeSet<usize> = set.matches(&labels).into_iter().collect();
        let from_scan: BTreeSet<usize> = pats
            .iter()
            .enumerate()
            .filter(|(_, pat)| pat.matches(name))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(from_set, from_scan, "{name}");
    }
}

// ---- property tests against a naive recursive matcher ----

fn ref_label(p: &[u8], l: &[u8]) -> bool {
    match p.split_first() {
        None => l.is_empty(),
        Some((b'*', rest)) => ref_label(rest, l) || (!l.is_empty() && ref_label(p, &l[1..])),
        Some((b'?', rest)) => !l.is_empty() && ref_label(rest, &l[1..]),
        Some((c, rest)) => l.first() == Some(c) && ref_label(rest, &l[1..]),
    }
}

fn ref_labels(p: &[&str], n: &[&str]) -> bool {
    match p.split_first() {
        None => n.is_empty(),
        Some((&"**", rest)) => ref_labels(rest, n) || (!n.is_empty() && ref_labels(p, &n[1..])),
        Some((first, rest)) => {
            !n.is_empty()
                && ref_label(first.as_bytes(), n[0].as_bytes())
                && ref_labels(rest, &n[1..])
        }
    }
}

/// The reference: plain recursion on the text, lower-cased.
fn reference(pattern: &str, name: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    let p: Vec<&str> = pattern.split('.').collect();
    let n: Vec<&str> = name.split('.').collect();
    ref_labels(&p, &n) || (p[0] == "*" && ref_labels(&p[1..], &n))
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    let label = prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("B".to_string()),
        Just("ab".to_string()),
        Just("?".to_string()),
        Just("*".to_string()),
        Just("a*".to_string()),
        Just("*b".to_string()),
        Just("?a".to_string()),
        Just("a?*".to_string()),
        Just("**".to_string()),
    ];
    let tld = prop_oneof![Just("a"), Just("b"), Just("ab")];
    (prop::collection::vec(label, 0..5), tld).prop_map(|(mut labels, tld)| {
        labels.push(tld.to_string());
        labels.join(".")
    })
}

fn name_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec("[abAB]{1,3}", 1..7).prop_map(|l| l.join("."))
}

proptest! {
    #[test]
    fn single_pattern_matches_like_the_reference(pat in pattern_strategy(), name in name_strategy()) {
        let parsed = Pattern::parse(&pat).unwrap();
        prop_assert_eq!(parsed.matches(&name), reference(&pat, &name), "{} vs {}", pat, name);
    }

    #[test]
    fn pattern_set_finds_exactly_the_reference_matches(
        pats in prop::collection::vec(pattern_strategy(), 1..40),
        names in prop::collection::vec(name_strategy(), 1..10),
    ) {
        let mut set = PatternSet::new();
        for (i, pat) in pats.iter().enumerate() {
            set.insert(Pattern::parse(pat).unwrap(), i);
        }
        for name in &names {
            let lower = name.to_ascii_lowercase();
            let labels: Vec<&[u8]> = lower.split('.').map(str::as_bytes).collect();
            let got: BTreeSet<usize> = set.matches(&labels).into_iter().collect();
            let want: BTreeSet<usize> = pats.iter().enumerate()
                .filter(|(_, p)| reference(p, name)).map(|(i, _)| i).collect();
            prop_assert_eq!(&got, &want, "name {}", name);
            // The best match is a minimum of the specificity order among the matches.
            if let Some(best) = set.best(&labels) {
                prop_assert!(want.contains(&best));
                for &other in &want {
                    prop_assert_ne!(
                        set.entry(other).0.cmp_specificity(set.entry(best).0),
                        Ordering::Less
                    );
                }
            } else {
                prop_assert!(want.is_empty());
            }
        }
    }
}
