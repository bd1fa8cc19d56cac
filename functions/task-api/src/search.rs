//! What the `q` of `GET /v1/tasks` matches: Unicode compatibility caseless matching.
//!
//! A task matches when [`key`] of its title or description contains [`key`] of the query. The
//! key is the string's *compatibility caseless* form of the Unicode Standard §3.13 (D146):
//! `NFKD(toCasefold(NFKD(toCasefold(NFD(X)))))`, recomposed to NFKC at the end (and with the
//! first NFD done as NFKD, which gives the same keys: see [`key`]).
//!
//! - **Full case folding**, not lower-casing: `ß` and `ẞ` fold to `ss` (so `STRASSE` finds
//!   `Straße` and the other way round), final `ς` and `Σ` to `σ`, the ligature `ﬁ` to `fi`.
//!   `str::to_lowercase` maps none of these onto the other spelling, and applies the final-sigma
//!   rule by position, so a query typed in capitals (`ΜΟΥΣ`) did not find the word it starts
//!   (`Μουσακάς`). The folding is Unicode's default, locale-independent one (no Turkish dotless
//!   i rules): a search has no locale to go by.
//! - **Compatibility (K) normalisation**, not only canonical: what people see as the same text
//!   matches whichever way a keyboard, an input method or a copy from a PDF encoded it. Beyond
//!   NFC's combining sequences (`Cafe` + U+0301 against precomposed `Café`) that covers
//!   full-width forms from CJK input methods (`ＴＡＸ` finds `tax`), ligatures, and
//!   super- and subscripts. The price is the occasional wider match (`2` finds `x²`), which a
//!   search box can afford; keys are never stored or shown, only compared, so nothing a user
//!   wrote is changed.
//! - **Composed at the end** (NFKC, not the NFKD of D146: equal keys either way, so the match
//!   is the same relation): a substring of a decomposed key can stop inside a character, so
//!   `cafe` would find `Café` (key `cafe` + U+0301) while `café` does not find `Cafe`, an
//!   accent ignored one way only. Composed, accents count both ways wherever Unicode has a
//!   precomposed character.
//!
//! The tables are ICU4X's (`icu_normalizer`, `icu_casemap`): url's IDNA links the normaliser
//! already, and both are kept by the Unicode Consortium in step with each Unicode release.

use icu_casemap::CaseMapper;
use icu_normalizer::{ComposingNormalizerBorrowed, DecomposingNormalizerBorrowed};

/// The compatibility caseless form of `text`, for substring comparison with another key.
///
/// Pure and total: any string has a key, and `key(key(x)) == key(x)`. ASCII, which most titles
/// are, takes a fast path with the same result (ASCII is its own NFKC, and its full case
/// folding is lower-casing).
pub fn key(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let fold = CaseMapper::new();
    let nfkd = DecomposingNormalizerBorrowed::new_nfkd();
    let nfkc = ComposingNormalizerBorrowed::new_nfkc();
    // D146 with its first NFD done as NFKD: the decomposition before the first fold is there
    // for canonical order (U+0345 COMBINING GREEK YPOGEGRAMMENI folds to ι, which must not move
    // past the marks it was ordered after), and NFKD orders the same way; decomposing the
    // compatibility characters one step early changes no key (a test checks every code point)
    // and saves the NFD table, 35 kB of a binary held to 8 MB. The second fold catches what
    // compatibility decomposition produces in upper case (`㎒` → `MHz`).
    let folded = fold.fold_string(&nfkd.normalize(text)).into_owned();
    let folded = fold.fold_string(&nfkd.normalize(&folded)).into_owned();
    nfkc.normalize(&folded).into_owned()
}

/// Whether `haystack` contains the query whose key is `needle` (see [`key`]).
pub fn contains(haystack: &str, needle: &str) -> bool {
    key(haystack).contains(needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every case below fails with the former `to_lowercase` on both sides.
    fn old(haystack: &str, query: &str) -> bool {
        haystack.to_lowercase().contains(&query.to_lowercase())
    }

    fn finds(haystack: &str, query: &str) -> bool {
        let found = contains(haystack, &key(query));
        assert!(!old(haystack, query), "{query:?} in {haystack:?} already matched before");
        found
    }

    #[test]
    fn sharp_s_folds_to_ss_both_ways() {
        assert!(finds("Hauptstraße 5", "STRASSE"));
        assert!(finds("HAUPTSTRASSE 5", "straße"));
        assert!(finds("Hauptstrasse 5", "Straße"));
        // Capital sharp s (U+1E9E) lower-cases to ß, which then folds like it.
        assert!(finds("GROẞE Pause", "grosse"));
    }

    #[test]
    fn decomposed_and_precomposed_accents_match_both_ways() {
        // A query in NFD (e + COMBINING ACUTE ACCENT), as macOS file names and some keyboards
        // produce, against NFC text; and the other way round.
        assert!(finds("Café au lait", "Cafe\u{301}"));
        assert!(finds("Cafe\u{301} au lait", "Café"));
        assert!(finds("CAFE\u{301}", "café"));
    }

    #[test]
    fn greek_sigma_in_every_form_matches() {
        // Capitals typed as the start of a word: to_lowercase made the last Σ a final ς.
        assert!(finds("Μουσακάς για 4", "ΜΟΥΣ"));
        // The final ς of the text against the σ a query has mid-word.
        assert!(finds("ΟΔΟΣ", "οδοσ"));
        assert_eq!(key("ΣΊΣΥΦΟΣ"), key("σίσυφος"));
    }

    #[test]
    fn compatibility_forms_match_what_they_look_like() {
        // Full-width Latin from a CJK input method, and a ligature from a PDF copy.
        assert!(finds("Pay the tax", "ＴＡＸ"));
        assert!(finds("ﬁle the report", "FILE"));
        assert!(finds("Print the file", "ﬁle"));
    }

    #[test]
    fn no_false_friends() {
        assert!(!contains("Strasse", &key("straßen")));
        assert!(!contains("Cafe au lait", &key("café")), "an accent is not ignored");
        assert!(!contains("Café", &key("Cafe")), "a composed key matches whole characters");
        assert!(!contains("", &key("x")));
        assert!(contains("anything", &key("")));
    }

    #[test]
    fn ascii_fast_path_agrees_with_the_full_path() {
        // The slow path, forced by a non-ASCII character that folds to nothing but itself.
        for text in ["Buy OAT milk!", "MiXeD 123 _-~", "", "KELVIN"] {
            let slow = key(&format!("{text}\u{e9}"));
            assert_eq!(format!("{}\u{e9}", key(text)), slow, "{text:?}");
        }
    }

    /// D146 exactly as the standard writes it (NFD first), recomposed like [`key`].
    fn d146(text: &str) -> String {
        let fold = CaseMapper::new();
        let nfd = DecomposingNormalizerBorrowed::new_nfd();
        let nfkd = DecomposingNormalizerBorrowed::new_nfkd();
        let folded = fold.fold_string(&nfd.normalize(text)).into_owned();
        let folded = fold.fold_string(&nfkd.normalize(&folded)).into_owned();
        ComposingNormalizerBorrowed::new_nfkc().normalize(&folded).into_owned()
    }

    #[test]
    fn key_is_d146_for_every_code_point_and_ypogegrammeni_sequences() {
        // The two differ in their first step only, so only where NFD and NFKD differ: the
        // characters with a compatibility decomposition.
        let nfd = DecomposingNormalizerBorrowed::new_nfd();
        let nfkd = DecomposingNormalizerBorrowed::new_nfkd();
        let (mut checked, mut differ) = (0, Vec::new());
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let text = c.to_string();
            if nfd.normalize(&text) == nfkd.normalize(&text) {
                continue;
            }
            checked += 1;
            if key(&text) != d146(&text) {
                differ.push(c);
            }
        }
        assert_eq!(differ, Vec::<char>::new());
        assert!(checked > 3_000, "only {checked} compatibility characters");
        // The case the NFD step exists for: U+0345 among other combining marks, in both orders,
        // after base letters and after compatibility characters that decompose to letters.
        for base in ["α", "Α", "ᾳ", "ᾼ", "ω", "ﬁ", "Ⅸ", "ǅ", "e"] {
            for marks in ["\u{345}\u{301}", "\u{301}\u{345}", "\u{345}\u{313}\u{342}", "\u{342}\u{345}", "\u{345}"] {
                let text = format!("{base}{marks}");
                assert_eq!(key(&text), d146(&text), "{text:?}");
            }
        }
    }

    #[test]
    fn key_is_idempotent() {
        for text in ["Hauptstraße", "Cafe\u{301}", "ΣΊΣΥΦΟΣ", "ＴＡＸ ﬁ ㎒ ǅ İ \u{345}", "ᾼ"] {
            let once = key(text);
            assert_eq!(key(&once), once, "{text:?}");
        }
    }
}
