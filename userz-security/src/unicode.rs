//! Character classes shared by the pre-filter, the wrapper and the diff
//! guardrail: invisible/format characters, combining marks and Latin
//! look-alikes from Cyrillic and Greek.
//!
//! The tables are deliberately small and explicit: they cover the characters
//! that are used in practice to hide text from a human reviewer or to dodge a
//! keyword filter, not the whole Unicode database.

/// Whether `c` is invisible when rendered and can be used to split or hide a
/// keyword: format characters (general category `Cf`, including the bidi
/// controls and the U+E0000 tag block), variation selectors, Hangul fillers,
/// and the C0/C1 control characters other than `\t`, `\n` and `\r`.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{0000}'..='\u{0008}'
        | '\u{000B}'..='\u{000C}'
        | '\u{000E}'..='\u{001F}'
        | '\u{007F}'..='\u{009F}'
        | '\u{00AD}'
        | '\u{034F}'
        | '\u{0600}'..='\u{0605}'
        | '\u{061C}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08E2}'
        | '\u{115F}'..='\u{1160}'
        | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}'
        | '\u{FFA0}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{110BD}'
        | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E007F}'
        | '\u{E0100}'..='\u{E01EF}'
    )
}

/// Whether `c` is a combining mark commonly stacked on Latin letters
/// (combining diacritics, their supplement and the half marks).
pub fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}'
    )
}

/// Folds a Cyrillic or Greek letter that looks like a Latin letter to that
/// Latin letter; returns `None` for every other character.
pub fn fold_homoglyph(c: char) -> Option<char> {
    let folded = match c {
        // Cyrillic lower case
        'а' => 'a',
        'в' => 'b',
        'с' => 'c',
        'ԁ' => 'd',
        'е' | 'ё' => 'e',
        'һ' => 'h',
        'і' | 'ї' => 'i',
        'ј' => 'j',
        'к' => 'k',
        'ӏ' => 'l',
        'м' => 'm',
        'н' => 'h',
        'о' => 'o',
        'р' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'т' => 't',
        'у' => 'y',
        'ԝ' => 'w',
        'х' => 'x',
        'ѵ' => 'v',
        // Cyrillic upper case
        'А' => 'A',
        'В' => 'B',
        'С' => 'C',
        'Е' | 'Ё' => 'E',
        'Н' => 'H',
        'І' | 'Ї' => 'I',
        'Ј' => 'J',
        'К' => 'K',
        'М' => 'M',
        'О' => 'O',
        'Р' => 'P',
        'Ѕ' => 'S',
        'Т' => 'T',
        'Х' => 'X',
        'У' | 'Ү' => 'Y',
        'Ԝ' => 'W',
        'Ӏ' => 'I',
        // Greek lower case
        'α' => 'a',
        'β' => 'b',
        'ε' => 'e',
        'η' => 'n',
        'ι' => 'i',
        'κ' => 'k',
        'ν' => 'v',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        'ϲ' => 'c',
        // Greek upper case
        'Α' => 'A',
        'Β' => 'B',
        'Ε' => 'E',
        'Ζ' => 'Z',
        'Η' => 'H',
        'Ι' => 'I',
        'Κ' => 'K',
        'Μ' => 'M',
        'Ν' => 'N',
        'Ο' => 'O',
        'Ρ' => 'P',
        'Τ' => 'T',
        'Υ' => 'Y',
        'Χ' => 'X',
        'Ϲ' => 'C',
        _ => return None,
    };
    Some(folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_width_bidi_and_tag_chars_are_invisible() {
        for c in ['\u{200B}', '\u{202E}', '\u{2066}', '\u{E0041}', '\u{FE0F}', '\u{FEFF}'] {
            assert!(is_invisible(c), "{:?}", c);
        }
        for c in ['a', ' ', '\n', '\t', 'é', '\u{E000}'] {
            assert!(!is_invisible(c), "{:?}", c);
        }
    }

    #[test]
    fn cyrillic_and_greek_lookalikes_fold_to_latin() {
        let folded: String = "іgnоrе Ρrеvіοus".chars().map(|c| fold_homoglyph(c).unwrap_or(c)).collect();
        assert_eq!(folded, "ignore Previous");
    }
}
