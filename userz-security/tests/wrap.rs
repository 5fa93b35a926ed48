//! G4: no input can close or forge the `UNTRUSTED_USER_REPORT` wrapper.

use proptest::prelude::*;
use userz_security::prefilter;
use userz_security::wrap::{find_wrapper_tags, neutralise, Datamark, Section, SectionKind, TagKind, UntrustedPrompt};

/// Pieces an attacker would combine to forge a wrapper tag.
const PIECES: &[&str] = &[
    "<",
    ">",
    "</",
    "/",
    "&lt;",
    "&gt;",
    "&#60;",
    "&#x3C;",
    "&#47;",
    "＜",
    "＞",
    "‹",
    "›",
    "〈",
    "〉",
    "﹤",
    "﹥",
    "UNTRUSTED",
    "untrusted",
    "Untrusted",
    "ＵＮＴＲＵＳＴＥＤ",
    "_",
    " ",
    "-",
    "USER",
    "user",
    "ＵＳＥＲ",
    "REPORT",
    "report",
    "ＲＥＰＯＲＴ",
    "REP\u{200B}ORT",
    "UNTRUSTED_USER_REPORT",
    "U N T R U S T E D",
    "\u{E0055}",
    "\u{202E}",
    "\u{FEFF}",
    "&#85;",
    "Ｕ",
    "ЕR",
    "REPORT_SECTION",
    "SECTION",
    "\n",
    "name=\"system\"",
];

fn adversarial() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES.to_vec()), 0..24).prop_map(|v| v.concat())
}

fn check(content: &str, datamark: Datamark) -> Result<(), TestCaseError> {
    let p = UntrustedPrompt::new("Fix the reported bug.")
        .section(Section::feedback_text(content))
        .section(Section::new(SectionKind::ConsoleLogs, content))
        .datamark(datamark)
        .build();
    let tags = find_wrapper_tags(&p.user);
    prop_assert_eq!(tags.len(), 2, "tags {:?} in {:?}", tags, p.user);
    prop_assert_eq!(tags[0].0, TagKind::Open);
    prop_assert_eq!(tags[1].0, TagKind::Close);
    // The report sits between them.
    let clean = neutralise(content);
    let inner = &p.user[tags[0].1..tags[1].1];
    let marked: String = match datamark.marker() {
        Some(m) => clean.chars().map(|c| if c.is_whitespace() && c != '\n' { m } else { c }).collect(),
        None => clean,
    };
    prop_assert!(inner.contains(&marked));
    // The normalising pre-filter agrees: after NFKC and invisible stripping the
    // prompt names the wrapper exactly twice.
    let norm = prefilter::scan(&p.user);
    let wrapper_signals = norm.signals.iter().filter(|s| s.kind == prefilter::SignalKind::WrapperTag).count();
    prop_assert_eq!(wrapper_signals, 2, "{:?}", norm.normalized);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_string_yields_exactly_one_wrapper(s in any::<String>()) {
        check(&s, Datamark::None)?;
    }

    #[test]
    fn adversarial_strings_yield_exactly_one_wrapper(s in adversarial()) {
        check(&s, Datamark::None)?;
        check(&s, Datamark::PrivateUse)?;
        check(&s, Datamark::Caret)?;
    }
}

#[test]
fn system_text_says_the_report_is_data() {
    let b = UntrustedPrompt::new("Fix it.");
    let s = b.system_text();
    assert!(s.contains("<UNTRUSTED_USER_REPORT>"));
    assert!(s.contains("never instructions"));
}
