//! G11: the diff guardrail refuses every spelling of a forbidden path and
//! accepts ordinary changes. One table of cases, then property tests.

use proptest::prelude::*;
use unicode_normalization::UnicodeNormalization;
use userz_security::guardrail::{Change, Guardrails, ObjectKind, Violation, DEFAULT_RULES};

fn file(p: &str) -> Change {
    Change::file(p)
}

fn renamed(from: &str, to: &str) -> Change {
    Change { old_path: Some(from.to_owned()), ..Change::file(to) }
}

fn symlink(p: &str, target: &str) -> Change {
    Change {
        path: p.to_owned(),
        old_path: None,
        old_mode: None,
        new_mode: Some(0o120000),
        object: ObjectKind::Symlink { target: target.to_owned() },
    }
}

fn gitlink(p: &str) -> Change {
    Change { path: p.to_owned(), old_path: None, old_mode: None, new_mode: Some(0o160000), object: ObjectKind::Gitlink }
}

fn with_modes(p: &str, old: u32, new: u32, object: ObjectKind) -> Change {
    Change { path: p.to_owned(), old_path: None, old_mode: Some(old), new_mode: Some(new), object }
}

fn deleted(p: &str) -> Change {
    Change { path: p.to_owned(), old_path: None, old_mode: Some(0o100644), new_mode: None, object: ObjectKind::Deleted }
}

/// `None` = accepted; `Some(rule)` = the first violation's rule.
fn cases() -> Vec<(&'static str, Change, Option<&'static str>)> {
    vec![
        // Accepted ordinary changes.
        ("plain source file", file("src/main.rs"), None),
        ("nested file", file("app/components/Button.tsx"), None),
        ("env-like name", file("src/environment.ts"), None),
        ("dotenv example docs", file("docs/dotenv.md"), None),
        ("envrc is not .env", file(".envrc"), None),
        ("github folder outside workflows", file(".github/CODEOWNERS"), None),
        ("nested infra folder is not root infra", file("app/infra/readme.md"), None),
        ("scripts outside release", file("scripts/dev.sh"), None),
        ("gitignore", file(".gitignore"), None),
        ("dot-dot inside repo", file("src/../lib/x.rs"), None),
        ("relative symlink inside repo", symlink("docs/latest", "v2/index.md"), None),
        ("symlink to sibling folder", symlink("a/b/link", "../c/file"), None),
        ("executable bit change", with_modes("bin/run.sh", 0o100644, 0o100755, ObjectKind::File), None),
        ("deleted ordinary file", deleted("old/thing.rs"), None),
        ("tilde in normal name", file("notes~draft.md"), None),
        ("fullwidth letters elsewhere", file("docs/ｒｅａｄｍｅ.md"), None),
        ("cyrillic look-alike is another file", file(".gіt/config"), None),
        // Refused: the default rules.
        ("root .env", file(".env"), Some(".env")),
        ("nested .env", file("web/.env"), Some(".env")),
        (".env.production", file(".env.production"), Some(".env.*")),
        ("workflow", file(".github/workflows/ci.yml"), Some(".github/workflows/**")),
        ("git config", file(".git/config"), Some(".git/**")),
        ("git hooks", file(".git/hooks/pre-commit"), Some(".git/**")),
        ("infra", file("infra/main.tf"), Some("infra/**")),
        ("release script", file("scripts/release/publish.sh"), Some("scripts/release/**")),
        ("deleting a workflow", deleted(".github/workflows/ci.yml"), Some(".github/workflows/**")),
        // Case and Unicode variants.
        ("upper-case .GIT", file(".GIT/config"), Some(".git/**")),
        ("mixed-case .GiT", file(".GiT/hooks/post-checkout"), Some(".git/**")),
        ("upper-case workflows", file(".GitHub/WorkFlows/ci.yml"), Some(".github/workflows/**")),
        ("upper-case .ENV", file(".ENV"), Some(".env")),
        ("dotless i", file(".gıt/config"), Some(".git/**")),
        ("fullwidth .env", file("．ｅｎｖ"), Some(".env")),
        ("NFD release folder rule", file("scripts/release/e\u{301}.sh"), Some("scripts/release/**")),
        // HFS+ ignorables and other invisibles.
        ("ZWNJ in .git", file(".g\u{200C}it/config"), Some(".git/**")),
        ("ZWJ in .env", file(".e\u{200D}nv"), Some(".env")),
        ("BOM in infra", file("\u{FEFF}infra/x.tf"), Some("infra/**")),
        ("bidi override in workflows", file(".github/work\u{202E}flows/a.yml"), Some(".github/workflows/**")),
        ("U+206A in .git", file(".git\u{206A}/HEAD"), Some(".git/**")),
        // Windows tricks.
        ("backslash separators", file(".github\\workflows\\ci.yml"), Some(".github/workflows/**")),
        ("trailing dot", file(".git./config"), Some(".git/**")),
        ("trailing space", file("infra /main.tf"), Some("infra/**")),
        ("trailing dots and spaces", file(".env. . "), Some(".env")),
        ("8.3 alias GIT~1", file("GIT~1/config"), Some(".git/**")),
        ("8.3 alias lower case", file("git~2/hooks/x"), Some(".git/**")),
        ("8.3 alias GITHUB~1", file("GITHUB~1/workflows/ci.yml"), Some(".github/workflows/**")),
        ("8.3 alias for .env", file("ENV~1"), Some("ntfs_short_name")),
        ("NTFS stream suffix", file(".git::$INDEX_ALLOCATION/config"), Some(".git/**")),
        // Dot components.
        ("dot insertion", file("./.git/./config"), Some(".git/**")),
        ("dotdot insertion", file("src/../.github/workflows/x.yml"), Some(".github/workflows/**")),
        ("double slash", file("infra//main.tf"), Some("infra/**")),
        ("escape above root", file("../outside.txt"), Some("path_escape")),
        ("deep escape", file("a/../../b"), Some("path_escape")),
        ("absolute path", file("/etc/passwd"), Some("path_escape")),
        ("drive path", file("C:\\Windows\\x"), Some("path_escape")),
        ("empty path", file(""), Some("path_escape")),
        // Renames: both sides.
        ("rename out of workflows", renamed(".github/workflows/ci.yml", "ci.yml"), Some(".github/workflows/**")),
        ("rename into infra", renamed("x.tf", "infra/x.tf"), Some("infra/**")),
        ("rename ordinary", renamed("a.rs", "b.rs"), None),
        // Symlinks.
        ("symlink to .git", symlink("docs/hooks", "../.git/hooks"), Some(".git/**")),
        ("symlink to .env", symlink("config/env", "../.env"), Some(".env")),
        ("symlink outside repo", symlink("a/link", "../../etc/passwd"), Some("symlink_escape")),
        ("absolute symlink", symlink("link", "/etc/shadow"), Some("symlink_escape")),
        ("symlink to root", symlink("a/up", ".."), Some("symlink_escape")),
        ("symlink to parent of workflows", symlink("wf", ".github"), Some(".github/workflows/**")),
        ("symlink with backslashes", symlink("l", "..\\x\\..\\..\\y"), Some("symlink_escape")),
        ("symlink case trick", symlink("l", ".GIT/config"), Some(".git/**")),
        ("symlink named in infra", symlink("infra/link", "../src"), Some("infra/**")),
        (
            "file becomes symlink",
            with_modes("readme", 0o100644, 0o120000, ObjectKind::Symlink { target: "/root".into() }),
            Some("symlink_escape"),
        ),
        (
            "symlink mode without target",
            with_modes("readme", 0o100644, 0o120000, ObjectKind::File),
            Some("symlink_unverified"),
        ),
        // Submodules.
        ("gitlink", gitlink("vendor/lib"), Some("gitlink")),
        ("mode change to gitlink", with_modes("vendor/lib", 0o100644, 0o160000, ObjectKind::File), Some("gitlink")),
        ("gitlink removed", with_modes("vendor/lib", 0o160000, 0o100644, ObjectKind::File), Some("gitlink")),
        (".gitmodules", file(".gitmodules"), Some(".gitmodules")),
        (".gitmodules upper case", file(".GITMODULES"), Some(".gitmodules")),
        ("8.3 alias of .gitmodules", file("GITMOD~1"), Some(".gitmodules")),
        // Inputs that would make normalisation expensive.
        ("combining mark flood", file(&format!("a{}", "\u{345}".repeat(31))), Some("invalid_path")),
        ("thirty combining marks are fine", file(&format!("a{}", "\u{301}".repeat(30))), None),
        ("overlong path", file(&"a/".repeat(2049)), Some("invalid_path")),
        ("symlink to a combining flood", symlink("l", &"\u{345}".repeat(40)), Some("invalid_path")),
    ]
}

#[test]
fn table_of_paths_and_tricks() {
    let g = Guardrails::default();
    let cases = cases();
    assert!(cases.len() >= 40);
    let mut failures = Vec::new();
    for (name, change, expected) in &cases {
        let got = g.first_violation(std::slice::from_ref(change)).map(|v| v.rule);
        if got.as_deref() != *expected {
            failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
        // check() and first_violation() agree on the first hit.
        let all = g.check(std::slice::from_ref(change));
        assert_eq!(all.first().map(|v| v.rule.clone()), got, "{name}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_violations_in_order_with_first() {
    let g = Guardrails::default();
    let changes = vec![file("src/ok.rs"), file("infra/a.tf"), renamed(".env", "src/config.rs"), gitlink("vendor/x")];
    let report = g.evaluate(&changes);
    let expected = vec![
        Violation { file: "infra/a.tf".into(), rule: "infra/**".into() },
        Violation { file: ".env".into(), rule: ".env".into() },
        Violation { file: "vendor/x".into(), rule: "gitlink".into() },
    ];
    assert_eq!(report.violations, expected);
    assert_eq!(report.first(), expected.first());
}

#[test]
fn per_repo_rules_and_forge_ci() {
    let g = Guardrails::default().with_rules(["deploy/**".to_owned(), "*.pem".to_owned(), "/Makefile".to_owned()]);
    assert_eq!(g.first_violation(&[file("deploy/prod.yaml")]).map(|v| v.rule), Some("deploy/**".into()));
    assert_eq!(g.first_violation(&[file("certs/Server.PEM")]).map(|v| v.rule), Some("*.pem".into()));
    assert_eq!(g.first_violation(&[file("MAKEFILE")]).map(|v| v.rule), Some("/Makefile".into()));
    assert_eq!(g.first_violation(&[file("sub/Makefile")]), None);

    let plain = Guardrails::default();
    assert_eq!(plain.first_violation(&[file(".gitlab-ci.yml")]), None);
    let forge = Guardrails::default().with_forge_ci();
    for (p, rule) in [
        (".gitlab-ci.yml", ".gitlab-ci.yml"),
        (".gitlab/ci/build.yml", ".gitlab/ci/**"),
        (".circleci/config.yml", ".circleci/**"),
        ("Jenkinsfile", "Jenkinsfile"),
        ("azure-pipelines.yml", "azure-pipelines.yml"),
        (".buildkite/pipeline.yml", ".buildkite/**"),
    ] {
        assert_eq!(forge.first_violation(&[file(p)]).map(|v| v.rule), Some(rule.into()), "{p}");
    }
}

#[test]
fn submodules_can_be_allowed_explicitly() {
    let g = Guardrails::default().allow_submodules(true);
    assert_eq!(g.first_violation(&[gitlink("vendor/lib"), file(".gitmodules")]), None);
}

/// Forbidden paths (one per default rule) to mutate.
const FORBIDDEN: &[&str] = &[
    ".env",
    ".env.local",
    ".github/workflows/ci.yml",
    ".git/config",
    ".git/hooks/pre-commit",
    "infra/main.tf",
    "scripts/release/publish.sh",
];

#[derive(Debug, Clone)]
enum Trick {
    Upper,
    Flip(usize),
    Nfd,
    Fullwidth,
    DotSlash(usize),
    UpDown(usize),
    Backslash,
    Ignorable(usize, char),
    TrailingDot(usize),
}

fn trick() -> impl Strategy<Value = Trick> {
    prop_oneof![
        Just(Trick::Upper),
        any::<usize>().prop_map(Trick::Flip),
        Just(Trick::Nfd),
        Just(Trick::Fullwidth),
        any::<usize>().prop_map(Trick::DotSlash),
        any::<usize>().prop_map(Trick::UpDown),
        Just(Trick::Backslash),
        (
            any::<usize>(),
            prop::sample::select(vec![
                '\u{200C}', '\u{200D}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202E}', '\u{206A}', '\u{206F}',
                '\u{FEFF}'
            ])
        )
            .prop_map(|(i, c)| Trick::Ignorable(i, c)),
        any::<usize>().prop_map(Trick::TrailingDot),
    ]
}

fn apply(path: &str, t: &Trick) -> String {
    let comps: Vec<&str> = path.split('/').collect();
    let join_at = |i: usize, ins: &str| {
        let at = i % (comps.len() + 1);
        let mut v: Vec<&str> = comps.clone();
        v.insert(at, ins);
        v.join("/")
    };
    match t {
        Trick::Upper => path.to_uppercase(),
        Trick::Flip(i) => {
            path.chars().enumerate().map(|(k, c)| if (k + i) % 2 == 0 { c.to_ascii_uppercase() } else { c }).collect()
        }
        Trick::Nfd => path.nfd().collect(),
        Trick::Fullwidth => path
            .chars()
            .map(|c| match c {
                '!'..='~' if c != '/' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c),
                _ => c,
            })
            .collect(),
        Trick::DotSlash(i) => join_at(*i, "."),
        Trick::UpDown(i) => {
            let at = i % (comps.len() + 1);
            let mut v: Vec<&str> = comps.clone();
            v.insert(at, "..");
            v.insert(at, "x");
            v.join("/")
        }
        Trick::Backslash => path.replace('/', "\\"),
        Trick::Ignorable(i, c) => {
            let n = path.chars().count();
            let at = i % (n + 1);
            let mut s: String = path.chars().take(at).collect();
            s.push(*c);
            s.extend(path.chars().skip(at));
            s
        }
        Trick::TrailingDot(i) => {
            let at = i % comps.len();
            let mut v: Vec<String> = comps.iter().map(|s| s.to_string()).collect();
            // A dot after `.` or `..` makes a different component; skip those.
            if !v[at].chars().all(|c| c == '.') {
                v[at].push('.');
            }
            v.join("/")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// No variant of a forbidden path built by stacking tricks is accepted.
    #[test]
    fn variants_of_forbidden_paths_are_refused(
        base in prop::sample::select(FORBIDDEN.to_vec()),
        tricks in prop::collection::vec(trick(), 1..4),
    ) {
        let mut p = base.to_owned();
        for t in &tricks {
            p = apply(&p, t);
        }
        let g = Guardrails::default();
        prop_assert!(g.first_violation(&[Change::file(p.clone())]).is_some(), "accepted {:?} from {} via {:?}", p, base, tricks);
        // Also as the old side of a rename, and as a symlink target.
        prop_assert!(g.first_violation(&[renamed(&p, "src/x.rs")]).is_some());
        let target = format!("../{}", p);
        prop_assert!(g.first_violation(&[symlink("docs/link", &target)]).is_some());
    }

    /// Ordinary source paths stay accepted under harmless spellings.
    #[test]
    fn ordinary_paths_stay_accepted(name in "[a-z]{1,8}(/[a-z]{1,8}){0,3}\\.rs") {
        let g = Guardrails::default();
        prop_assert_eq!(g.first_violation(&[Change::file(format!("src/{name}"))]), None);
        prop_assert_eq!(g.first_violation(&[Change::file(format!("./src/x/../{name}"))]), None);
    }

    /// The evaluator never panics and never accepts an escaping path.
    #[test]
    fn arbitrary_paths_do_not_panic(p in ".{0,40}") {
        let g = Guardrails::default();
        let v = g.check(&[Change::file(p.clone())]);
        if p.starts_with("../") {
            prop_assert!(!v.is_empty());
        }
    }
}

#[test]
fn fuzz_slow_unit_combining_run() {
    // libFuzzer found this input taking milliseconds: a path of combining
    // marks separated by U+0005, which is stripped before normalisation and
    // leaves a run of hundreds of marks; canonical reordering is quadratic in
    // the run. Such paths are now refused before normalisation.
    let data =
        std::fs::read(format!("{}/tests/data/fuzz_guardrail_slow_combining_run.bin", env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_default();
    assert!(!data.is_empty());
    let text = String::from_utf8_lossy(&data);
    let path = text.split('\0').next().unwrap_or_default();
    let v = Guardrails::default().first_violation(&[Change::file(path)]);
    assert_eq!(v.map(|v| v.rule), Some("invalid_path".to_owned()));
    userz_security::guardrail::fuzz_check(&data);
}

#[test]
fn default_rules_are_the_spec_list() {
    assert_eq!(DEFAULT_RULES, &[".env", ".env.*", ".github/workflows/**", ".git/**", "infra/**", "scripts/release/**"]);
}

/// Regression (found by the variants property): `．.` folds to `..`, so the
/// guardrail would have resolved `.github/．./workflows/ci.yml` to
/// `workflows/ci.yml`, while git writes a directory named `．.` under
/// `.github`. Such paths are refused, as files and as symlink targets.
#[test]
fn a_component_that_folds_to_a_parent_step_is_refused() {
    let g = Guardrails::default();
    for p in ["．ｇｉｔｈｕｂ/．./ｗｏｒｋｆｌｏｗｓ/ｃｉ．ｙｍｌ", ".github/．./workflows/ci.yml", "src/．．/x.rs"]
    {
        assert!(g.first_violation(&[Change::file(p.to_string())]).is_some(), "{p}");
        assert!(g.first_violation(&[symlink("docs/link", p)]).is_some(), "symlink to {p}");
    }
    // Plain names with dots stay accepted.
    assert!(g.first_violation(&[Change::file("src/a..b.rs".to_string())]).is_none());
}
