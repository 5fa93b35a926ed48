//! The normalising diff-guardrail evaluator (guarantee G11).
//!
//! [`Guardrails::check`] takes the change list the host computed from git
//! objects and returns every [`Violation`], in change-list order. A path is
//! first brought to one canonical form ([`normalize_path`]) so that no spelling
//! of a forbidden path slips past, then matched against the rules.
//!
//! # Path normalisation
//! Applied to change paths, old paths (renames), symlink targets and rules alike:
//! - `\` is a separator like `/`; empty and `.` components are dropped, `..`
//!   pops a component. A path that climbs above the repository root, is
//!   absolute (`/x`, `\x`, `C:x`) or is empty violates [`RULE_PATH_ESCAPE`].
//! - Invisible characters are removed, among them every code point HFS+ ignores
//!   (U+200C–U+200F, U+202A–U+202E, U+206A–U+206F, U+FEFF) and the other
//!   format/control characters of [`crate::unicode::is_invisible`].
//! - Unicode NFKC, then case folding (upper-case then lower-case, so that
//!   `ı`, `ſ` and the Kelvin sign fold the way NTFS's upcase table does).
//!   NFKC is deliberately broader than any file system: fullwidth
//!   `．ｇｉｔ` is folded to `.git` too. Over-matching a path nobody uses is the
//!   safe direction. Cyrillic/Greek look-alikes are **not** folded: `.gіt` with
//!   a Cyrillic `і` is a different file on every file system.
//! - Windows: trailing dots and spaces of a component are dropped (`.git.`,
//!   `infra `); a component made only of dots and spaces counts as `.` (one
//!   dot) or `..` (two or more); an NTFS stream suffix is dropped
//!   (`.git::$INDEX_ALLOCATION` → `.git`).
//! - NTFS 8.3 short names: `GIT~<n>` is read as `.git`, `GITHUB~<n>` as
//!   `.github`, `GITMOD~<n>` as `.gitmodules`. Any other component shaped like a
//!   short name (`ENV~1`, `INFRA~1.TXT`: 1–6 characters, `~`, digits, optional
//!   extension of up to three characters) cannot be resolved without the
//!   file system and violates [`RULE_NTFS_SHORT_NAME`].
//!
//! - A path (or symlink target) longer than [`MAX_PATH_BYTES`] or holding a
//!   run of more than [`MAX_COMBINING_RUN`] combining characters violates
//!   [`RULE_INVALID_PATH`] and is not normalised at all.
//!
//! # Rule syntax
//! Rules are globs over normalised, `/`-separated paths, matched
//! case-insensitively (rules are normalised like paths):
//! - `*` matches any run of characters inside one component, `?` one character;
//!   everything else is literal (there are no character classes or negations).
//! - `**` as a whole component matches zero or more components, so `dir/**`
//!   matches `dir` itself and everything below it.
//! - A rule containing `/` (other than a trailing one) is anchored at the
//!   repository root: `infra/**` forbids `infra/a.tf` but not `app/infra/a.tf`.
//!   A leading `/` anchors explicitly.
//! - A rule without `/` matches a component at any depth, like `.gitignore`:
//!   `.env` forbids `.env`, `web/.env` and anything inside a `.env/` folder.
//! - A trailing `/` means "this folder and below" (`build/` = `build/**`).
//!
//! # Structural rules
//! - [`RULE_SYMLINK_ESCAPE`]: a symlink whose target is absolute, or which
//!   (resolved from the link's folder) leaves the repository or points at the
//!   root. A target that lands on a forbidden path, or on a folder that holds
//!   an anchored forbidden path (`../.github`), violates that path's rule.
//!   A change whose new mode is a symlink (`0o120000`) but whose object carries
//!   no target violates [`RULE_SYMLINK_UNVERIFIED`].
//! - [`RULE_GITLINK`]: any change whose old or new mode is `0o160000` or whose
//!   object is a [`ObjectKind::Gitlink`]; [`RULE_GITMODULES`]: any path whose
//!   last component is `.gitmodules`. Both on by default
//!   ([`Guardrails::allow_submodules`] turns them off).
//! - Renames are checked on both sides (`path` and `old_path`).
//!
//! The optional [`FORGE_CI_RULES`] ([`Guardrails::with_forge_ci`]) forbid
//! the CI definitions of other forges.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

use super::{Change, ObjectKind, Violation};
use crate::unicode::is_invisible;

/// The spec's default forbidden paths.
pub const DEFAULT_RULES: &[&str] =
    &[".env", ".env.*", ".github/workflows/**", ".git/**", "infra/**", "scripts/release/**"];

/// CI definitions of other forges, opt-in through [`Guardrails::with_forge_ci`]:
/// GitLab (`.gitlab-ci.yml`, `.gitlab/ci/**`), CircleCI, Jenkins, Azure
/// Pipelines and Buildkite. The unanchored names match at any depth.
pub const FORGE_CI_RULES: &[&str] =
    &[".gitlab-ci.yml", ".gitlab/ci/**", ".circleci/**", "Jenkinsfile", "azure-pipelines.yml", ".buildkite/**"];

/// A path that is absolute, empty, or climbs above the repository root.
pub const RULE_PATH_ESCAPE: &str = "path_escape";
/// An NTFS 8.3 short-name component that cannot be resolved.
pub const RULE_NTFS_SHORT_NAME: &str = "ntfs_short_name";
/// A symlink leaving the repository (or pointing at its root).
pub const RULE_SYMLINK_ESCAPE: &str = "symlink_escape";
/// A symlink mode without a known target.
pub const RULE_SYMLINK_UNVERIFIED: &str = "symlink_unverified";
/// A submodule commit.
pub const RULE_GITLINK: &str = "gitlink";
/// The submodule configuration file.
pub const RULE_GITMODULES: &str = ".gitmodules";

/// A path that is too long or holds an absurd run of combining characters.
pub const RULE_INVALID_PATH: &str = "invalid_path";

/// Longest path (or symlink target) examined, in bytes. Longer ones violate
/// [`RULE_INVALID_PATH`] without being normalised.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest run of combining characters (non-starters) accepted in a path: the
/// Unicode stream-safe limit (UAX #15). Canonical reordering is quadratic in
/// the run length, so a path of thousands of combining marks would make
/// normalisation a denial of service; no real file name needs more than 30.
pub const MAX_COMBINING_RUN: usize = 30;

const MODE_SYMLINK: u32 = 0o120000;
const MODE_GITLINK: u32 = 0o160000;

/// Why a path could not be normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// Absolute, empty, or above the root.
    Escape,
    /// Longer than [`MAX_PATH_BYTES`] or with a run of more than
    /// [`MAX_COMBINING_RUN`] combining characters.
    Invalid,
}

/// A normalised repository path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NormalizedPath {
    components: Vec<String>,
    /// Whether an unresolvable 8.3 short-name component was seen.
    pub short_name: bool,
}

impl NormalizedPath {
    /// The components, folded.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// The components joined by `/`.
    pub fn as_string(&self) -> String {
        self.components.join("/")
    }
}

/// Folds case and Unicode forms and drops invisible characters.
fn fold(s: &str) -> Cow<'_, str> {
    let plain_ascii = s.bytes().all(|b| (0x20..0x7f).contains(&b));
    if plain_ascii {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Cow::Owned(s.to_ascii_lowercase());
        }
        return Cow::Borrowed(s);
    }
    let stripped: String = s.chars().filter(|c| !is_invisible(*c)).collect();
    // `stream_safe` bounds canonical reordering even for unchecked input
    // (rules); it inserts U+034F, which the final filter drops.
    let folded: String =
        stripped.chars().stream_safe().nfkc().flat_map(char::to_uppercase).flat_map(char::to_lowercase).collect();
    // Lower-casing can produce combining sequences (`İ` → `i̇`); recompose.
    Cow::Owned(folded.chars().stream_safe().nfc().filter(|c| !is_invisible(*c)).collect())
}

/// Whether `s` is short enough and free of absurd combining runs.
fn is_sane(s: &str) -> bool {
    if s.len() > MAX_PATH_BYTES {
        return false;
    }
    if s.is_ascii() {
        return true;
    }
    let mut run = 0;
    for c in s.chars() {
        // Invisible characters are stripped before normalisation, so they do
        // not break a run.
        if is_invisible(c) {
            continue;
        }
        if unicode_normalization::char::canonical_combining_class(c) != 0 {
            run += 1;
            if run > MAX_COMBINING_RUN {
                return false;
            }
        } else {
            run = 0;
        }
    }
    true
}

fn is_absolute(p: &str) -> bool {
    let b = p.as_bytes();
    matches!(b.first(), Some(b'/' | b'\\')) || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
}

/// An 8.3 short name: 1–6 characters, `~`, digits, optional `.ext` (≤ 3).
fn short_name_base(c: &str) -> Option<&str> {
    let stem = match c.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() && e.chars().count() <= 3 => s,
        _ => c,
    };
    let (base, digits) = stem.rsplit_once('~')?;
    let base_len = base.chars().count();
    if (1..=6).contains(&base_len) && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        Some(base)
    } else {
        None
    }
}

/// Canonical form of one component, or `None` to drop it. `..` is returned
/// as is for the caller to resolve.
fn canonical_component<'a>(raw: &'a str, short_name: &mut bool) -> Option<Cow<'a, str>> {
    // NTFS alternate data stream suffix.
    let c = raw.split(':').next().unwrap_or(raw);
    let trimmed = c.trim_end_matches([' ', '.']);
    if trimmed.is_empty() {
        let dots = c.bytes().filter(|&b| b == b'.').count();
        return (dots >= 2).then_some(Cow::Borrowed(".."));
    }
    if let Some(base) = short_name_base(trimmed) {
        return Some(match base {
            "git" => Cow::Borrowed(".git"),
            "github" => Cow::Borrowed(".github"),
            "gitmod" => Cow::Borrowed(".gitmodules"),
            _ => {
                *short_name = true;
                Cow::Borrowed(trimmed)
            }
        });
    }
    Some(Cow::Borrowed(trimmed))
}

/// Whether a component of `path` becomes `..` only through folding
/// (fullwidth or other compatibility dots, e.g. `．.`): a plain name where
/// git writes the file, a parent step for the guardrail, so such paths are
/// refused rather than resolved.
fn folds_to_parent(path: &str) -> bool {
    path.split(['/', '\\']).any(|c| {
        let f = fold(c);
        f != c && canonical_component(&f, &mut false).as_deref() == Some("..")
    })
}

/// Normalises a repository-relative path (see the module docs).
pub fn normalize_path(path: &str) -> Result<NormalizedPath, PathError> {
    if !is_sane(path) {
        return Err(PathError::Invalid);
    }
    let folded = fold(path);
    let mut short_name = false;
    let comps = resolve(Vec::new(), &folded, &mut short_name)?;
    Ok(NormalizedPath { components: comps.into_iter().map(Cow::into_owned).collect(), short_name })
}

/// Resolves the already folded `path` on top of the components `base`.
fn resolve<'a>(
    mut components: Vec<Cow<'a, str>>,
    folded: &'a str,
    short_name: &mut bool,
) -> Result<Vec<Cow<'a, str>>, PathError> {
    if is_absolute(folded) {
        return Err(PathError::Escape);
    }
    for raw in folded.split(['/', '\\']) {
        match canonical_component(raw, short_name) {
            None => {}
            Some(c) if c == ".." && components.pop().is_none() => return Err(PathError::Escape),
            Some(c) if c == ".." => {}
            Some(c) => components.push(c),
        }
    }
    Ok(components)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pat {
    Char(char),
    One,
    Star,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    AnyDepth,
    Lit(String),
    Glob(Vec<Pat>),
}

/// One compiled forbidden-path rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    source: String,
    anchored: bool,
    segs: Vec<Seg>,
}

impl Rule {
    /// Compiles a rule (see the module docs for the syntax). Returns `None`
    /// for a rule that is empty after normalisation.
    pub fn new(source: &str) -> Option<Rule> {
        let folded = fold(source).replace('\\', "/");
        let mut body = folded.trim();
        let mut anchored = false;
        if let Some(rest) = body.strip_prefix('/') {
            anchored = true;
            body = rest;
        }
        let mut dir = false;
        if let Some(rest) = body.strip_suffix('/') {
            dir = true;
            body = rest;
        }
        if body.contains('/') {
            anchored = true;
        }
        let mut segs = Vec::new();
        let mut ignored = false;
        for raw in body.split('/') {
            if raw == "**" {
                if segs.last() != Some(&Seg::AnyDepth) {
                    segs.push(Seg::AnyDepth);
                }
                continue;
            }
            let Some(c) = canonical_component(raw, &mut ignored) else {
                continue;
            };
            if c.contains(['*', '?']) {
                segs.push(Seg::Glob(
                    c.chars()
                        .map(|ch| match ch {
                            '*' => Pat::Star,
                            '?' => Pat::One,
                            other => Pat::Char(other),
                        })
                        .collect(),
                ));
            } else {
                segs.push(Seg::Lit(c.into_owned()));
            }
        }
        if segs.is_empty() {
            return None;
        }
        if dir && segs.last() != Some(&Seg::AnyDepth) {
            segs.push(Seg::AnyDepth);
        }
        if !anchored {
            segs.insert(0, Seg::AnyDepth);
            if segs.last() != Some(&Seg::AnyDepth) {
                segs.push(Seg::AnyDepth);
            }
        }
        Some(Rule { source: source.to_owned(), anchored, segs })
    }

    /// The rule as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the rule matches the normalised components.
    pub fn matches<C: AsRef<str>>(&self, comps: &[C]) -> bool {
        match_segs(&self.segs, comps)
    }

    /// Whether `comps` names a folder that holds something this (anchored)
    /// rule forbids.
    fn holds_match<C: AsRef<str>>(&self, comps: &[C]) -> bool {
        self.anchored && prefix_match(&self.segs, comps)
    }
}

fn seg_matches(seg: &Seg, c: &str) -> bool {
    match seg {
        Seg::AnyDepth => true,
        Seg::Lit(l) => l == c,
        Seg::Glob(p) => glob(p, c),
    }
}

fn match_segs<C: AsRef<str>>(segs: &[Seg], comps: &[C]) -> bool {
    match segs.split_first() {
        None => comps.is_empty(),
        Some((Seg::AnyDepth, rest)) => {
            if rest.is_empty() {
                return true;
            }
            (0..=comps.len()).any(|k| match_segs(rest, &comps[k..]))
        }
        Some((seg, rest)) => match comps.split_first() {
            Some((c, more)) => seg_matches(seg, c.as_ref()) && match_segs(rest, more),
            None => false,
        },
    }
}

fn prefix_match<C: AsRef<str>>(segs: &[Seg], comps: &[C]) -> bool {
    match (segs.split_first(), comps.split_first()) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some((Seg::AnyDepth, _)), Some(_)) => true,
        (Some((seg, rest)), Some((c, more))) => seg_matches(seg, c.as_ref()) && prefix_match(rest, more),
    }
}

/// Wildcard match of one component (`*`, `?`), linear with one backtrack point.
fn glob(pat: &[Pat], s: &str) -> bool {
    if s.is_ascii() {
        glob_units(pat, s.as_bytes(), |b| u32::from(*b))
    } else {
        let chars: Vec<char> = s.chars().collect();
        glob_units(pat, &chars, |c| u32::from(*c))
    }
}

fn glob_units<T>(pat: &[Pat], text: &[T], unit: impl Fn(&T) -> u32) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(Pat::Char(c)) if u32::from(*c) == unit(&text[t]) => {
                p += 1;
                t += 1;
            }
            Some(Pat::One) => {
                p += 1;
                t += 1;
            }
            Some(Pat::Star) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat[p.min(pat.len())..].iter().all(|x| *x == Pat::Star)
}

/// All violations of one evaluation, in change-list order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuardrailReport {
    /// Every violation.
    pub violations: Vec<Violation>,
}

impl GuardrailReport {
    /// The first violation: the file and rule a refusal reports.
    pub fn first(&self) -> Option<&Violation> {
        self.violations.first()
    }

    /// Whether nothing tripped.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

/// A set of forbidden-path rules plus the structural rules.
#[derive(Debug, Clone)]
pub struct Guardrails {
    rules: Vec<Rule>,
    submodules_allowed: bool,
}

impl Default for Guardrails {
    fn default() -> Self {
        Self { rules: DEFAULT_RULES.iter().filter_map(|r| Rule::new(r)).collect(), submodules_allowed: false }
    }
}

impl Guardrails {
    /// No path rules at all (structural rules still apply).
    pub fn empty() -> Self {
        Self { rules: Vec::new(), submodules_allowed: false }
    }

    /// Adds per-repo rules (glob syntax in the module docs). Empty rules are
    /// ignored.
    pub fn with_rules(mut self, extra: impl IntoIterator<Item = String>) -> Self {
        self.rules.extend(extra.into_iter().filter_map(|r| Rule::new(&r)));
        self
    }

    /// Adds [`FORGE_CI_RULES`].
    pub fn with_forge_ci(self) -> Self {
        self.with_rules(FORGE_CI_RULES.iter().map(|s| (*s).to_owned()))
    }

    /// Turns the [`RULE_GITLINK`] and [`RULE_GITMODULES`] rules on or off.
    pub fn allow_submodules(mut self, allowed: bool) -> Self {
        self.submodules_allowed = allowed;
        self
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Every violation, in change-list order.
    pub fn check(&self, changes: &[Change]) -> Vec<Violation> {
        let mut out = Vec::new();
        for c in changes {
            self.check_change(c, &mut |v| {
                out.push(v);
                true
            });
        }
        out
    }

    /// The full report.
    pub fn evaluate(&self, changes: &[Change]) -> GuardrailReport {
        GuardrailReport { violations: self.check(changes) }
    }

    /// The first violation only; stops at the first hit.
    pub fn first_violation(&self, changes: &[Change]) -> Option<Violation> {
        let mut found = None;
        for c in changes {
            self.check_change(c, &mut |v| {
                found = Some(v);
                false
            });
            if found.is_some() {
                break;
            }
        }
        found
    }

    /// Checks one path against the path rules. `emit` returns whether to go on.
    fn check_path(&self, raw: &str, emit: &mut dyn FnMut(Violation) -> bool) -> bool {
        let v = |rule: &str| Violation { file: raw.to_owned(), rule: rule.to_owned() };
        if !is_sane(raw) {
            return emit(v(RULE_INVALID_PATH));
        }
        // A component that only becomes `..` through folding (fullwidth or
        // other compatibility dots, e.g. `．.`) is a plain name where git
        // writes the file but a parent step here: the two readings differ,
        // so the path is refused rather than resolved.
        if folds_to_parent(raw) {
            return emit(v(RULE_PATH_ESCAPE));
        }
        let folded = fold(raw);
        let mut short_name = false;
        let comps = match resolve(Vec::new(), &folded, &mut short_name) {
            Ok(c) if !c.is_empty() => c,
            _ => return emit(v(RULE_PATH_ESCAPE)),
        };
        if short_name && !emit(v(RULE_NTFS_SHORT_NAME)) {
            return false;
        }
        for r in &self.rules {
            if r.matches(&comps) && !emit(v(&r.source)) {
                return false;
            }
        }
        if !self.submodules_allowed && comps.last().is_some_and(|c| c == ".gitmodules") && !emit(v(RULE_GITMODULES)) {
            return false;
        }
        true
    }

    fn check_change(&self, c: &Change, emit: &mut dyn FnMut(Violation) -> bool) {
        if !self.check_path(&c.path, emit) {
            return;
        }
        if let Some(old) = &c.old_path {
            if !self.check_path(old, emit) {
                return;
            }
        }
        let v = |rule: &str| Violation { file: c.path.clone(), rule: rule.to_owned() };
        let gitlink = matches!(c.object, ObjectKind::Gitlink)
            || c.new_mode == Some(MODE_GITLINK)
            || c.old_mode == Some(MODE_GITLINK);
        if gitlink && !self.submodules_allowed && !emit(v(RULE_GITLINK)) {
            return;
        }
        match &c.object {
            ObjectKind::Symlink { target } => {
                if let Some(rule) = self.symlink_violation(&c.path, target) {
                    emit(v(&rule));
                }
            }
            _ if c.new_mode == Some(MODE_SYMLINK) => {
                emit(v(RULE_SYMLINK_UNVERIFIED));
            }
            _ => {}
        }
    }

    fn symlink_violation(&self, link: &str, target: &str) -> Option<String> {
        if !is_sane(link) {
            return None; // already reported by `check_path`
        }
        if !is_sane(target) {
            return Some(RULE_INVALID_PATH.to_owned());
        }
        if folds_to_parent(target) {
            return Some(RULE_SYMLINK_ESCAPE.to_owned());
        }
        let folded_link = fold(link);
        let folded_target = fold(target);
        let mut short_name = false;
        // An unnormalisable link path was already reported by `check_path`.
        let mut dir = resolve(Vec::new(), &folded_link, &mut short_name).ok()?;
        dir.pop();
        short_name = false;
        let resolved = match resolve(dir, &folded_target, &mut short_name) {
            Ok(r) if !r.is_empty() => r,
            _ => return Some(RULE_SYMLINK_ESCAPE.to_owned()),
        };
        if short_name {
            return Some(RULE_NTFS_SHORT_NAME.to_owned());
        }
        for r in &self.rules {
            if r.matches(&resolved) || r.holds_match(&resolved) {
                return Some(r.source.clone());
            }
        }
        if !self.submodules_allowed && resolved.last().is_some_and(|c| c == ".gitmodules") {
            return Some(RULE_GITMODULES.to_owned());
        }
        None
    }
}

/// Fuzzing entry point (used by `fuzz/fuzz_targets/guardrail_path.rs`).
/// `data` is read as up to three NUL-separated strings: a path, an old path
/// (rename) and a symlink target. Panics if an invariant breaks: normalisation
/// is idempotent, and [`Guardrails::check`] and
/// [`Guardrails::first_violation`] agree on the first violation.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let mut parts = s.splitn(3, '\0');
    let path = parts.next().unwrap_or_default();
    if let Ok(n) = normalize_path(path) {
        let again = normalize_path(&n.as_string());
        assert_eq!(
            again.as_ref().map(NormalizedPath::components),
            Ok(n.components()),
            "normalisation is not idempotent"
        );
    }
    let mut changes = vec![Change::file(path)];
    if let Some(old) = parts.next() {
        changes.push(Change { old_path: Some(old.to_owned()), ..Change::file(path) });
    }
    if let Some(target) = parts.next() {
        changes.push(Change {
            new_mode: Some(MODE_SYMLINK),
            object: ObjectKind::Symlink { target: target.to_owned() },
            ..Change::file(path)
        });
    }
    static RULES: std::sync::OnceLock<Guardrails> = std::sync::OnceLock::new();
    let g = RULES.get_or_init(|| Guardrails::default().with_forge_ci());
    let all = g.check(&changes);
    assert_eq!(all.first().cloned(), g.first_violation(&changes), "check and first_violation disagree");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_basics() {
        let p = |s: &str| -> Vec<Pat> {
            s.chars()
                .map(|c| match c {
                    '*' => Pat::Star,
                    '?' => Pat::One,
                    o => Pat::Char(o),
                })
                .collect()
        };
        assert!(glob(&p(".env.*"), ".env.local"));
        assert!(glob(&p(".env.*"), ".env."));
        assert!(!glob(&p(".env.*"), ".env"));
        assert!(glob(&p("a?c*"), "abcdef"));
        assert!(!glob(&p("a?c"), "ac"));
    }

    #[test]
    fn normalisation_folds_tricks() {
        let n = |s: &str| normalize_path(s).map(|p| p.as_string());
        assert_eq!(n(".GIT/config"), Ok(".git/config".into()));
        assert_eq!(n("GIT~1\\config"), Ok(".git/config".into()));
        assert_eq!(n("a/../.git. /x"), Ok(".git/x".into()));
        assert_eq!(n("../x"), Err(PathError::Escape));
        assert_eq!(n("/etc/passwd"), Err(PathError::Escape));
        assert_eq!(n(".g\u{200C}it/x"), Ok(".git/x".into()));
    }
}
