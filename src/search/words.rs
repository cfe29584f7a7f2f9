//! What a word is and how text is folded: the part of the rules (see the
//! parent module) that both matching and the embedded store's index use,
//! so the words indexed are exactly the words matched.

use icu_properties::{
    CodePointMapData,
    props::{GeneralCategory, GeneralCategoryGroup, Script},
};

/// Unicode simple case folding of one character (`CaseFolding.txt`, status
/// C and S): one character to one character, so positions in folded text
/// are positions in the original.
pub fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    // The characters whose simple folding is not their lowercase: other
    // forms of lowercase letters.
    let special = match c {
        '\u{00B5}' => '\u{03BC}',
        '\u{017F}' => 's',
        '\u{0345}' | '\u{1FBE}' => '\u{03B9}',
        '\u{03C2}' => '\u{03C3}',
        '\u{03D0}' => '\u{03B2}',
        '\u{03D1}' => '\u{03B8}',
        '\u{03D5}' => '\u{03C6}',
        '\u{03D6}' => '\u{03C0}',
        '\u{03F0}' => '\u{03BA}',
        '\u{03F1}' => '\u{03C1}',
        '\u{03F5}' => '\u{03B5}',
        '\u{1C80}' => '\u{0432}',
        '\u{1C81}' => '\u{0434}',
        '\u{1C82}' => '\u{043E}',
        '\u{1C83}' => '\u{0441}',
        '\u{1C84}' | '\u{1C85}' => '\u{0442}',
        '\u{1C86}' => '\u{044A}',
        '\u{1C87}' => '\u{0463}',
        '\u{1C88}' => '\u{A64B}',
        '\u{1E9B}' => '\u{1E61}',
        _ => c,
    };
    if special != c {
        return special;
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        // Only U+0130 (İ) lowercases to two characters; simple folding
        // leaves it as it is.
        _ => c,
    }
}

/// Whether `c` belongs to a word: a letter, a mark or a number.
pub fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    let category = CodePointMapData::<GeneralCategory>::new().get(c);
    GeneralCategoryGroup::Letter.contains(category)
        || GeneralCategoryGroup::Mark.contains(category)
        || GeneralCategoryGroup::Number.contains(category)
}

/// Whether `c` is a word by itself: scripts written without spaces between
/// words.
fn stands_alone(c: char) -> bool {
    if c.is_ascii() {
        return false;
    }
    matches!(
        CodePointMapData::<Script>::new().get(c),
        Script::Han | Script::Hiragana | Script::Katakana
    )
}

/// Whether a word begins at `i` of the folded characters `chars`.
pub(super) fn word_starts_at(chars: &[char], i: usize) -> bool {
    let c = chars[i];
    if !is_word_char(c) {
        return false;
    }
    if i == 0 || stands_alone(c) {
        return true;
    }
    let before = chars[i - 1];
    !is_word_char(before) || stands_alone(before)
}

/// Calls `each` with every word of the folded characters `chars`.
pub(super) fn for_each_word(chars: &[char], mut each: impl FnMut(&[char])) {
    let mut start = None;
    for i in 0..=chars.len() {
        let starts = i < chars.len() && word_starts_at(chars, i);
        let inside = i < chars.len() && is_word_char(chars[i]);
        if let Some(s) = start
            && (starts || !inside)
        {
            each(&chars[s..i]);
            start = None;
        }
        if starts {
            start = Some(i);
        }
    }
}

pub(super) fn folded(text: &str) -> Vec<char> {
    text.chars().map(fold_char).collect()
}

/// The words of `text`, folded, separated by single spaces: what an index
/// of words stores, so that its words are exactly the words these rules see.
pub fn index_text(text: &str) -> String {
    if text.is_ascii() {
        index_ascii(text)
    } else {
        index_any(text)
    }
}

/// [`index_text`] by the rules as written, for any text.
fn index_any(text: &str) -> String {
    let chars = folded(text);
    let mut out = String::with_capacity(text.len());
    for_each_word(&chars, |word| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word);
    });
    out
}

/// [`index_text`] of ASCII text, without decoding it into characters: the
/// rules above reduce to runs of letters and digits, lowercased. Most
/// messages are ASCII, and every append indexes one on the embedded
/// store's single writer thread, where the general path cost a tenth of
/// an append.
fn index_ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().map(|c| c.to_ascii_lowercase()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ASCII shortcut of `index_text` says what the general rules say,
    /// for every ASCII character in every position of a word and between
    /// words, and for a few thousand generated texts.
    #[test]
    fn ascii_texts_are_indexed_as_the_general_rules_index_them() {
        let mut texts: Vec<String> = (0u8..128)
            .map(|b| {
                let c = b as char;
                format!("{c}Ab{c}9z{c} {c}{c}x_Y-{c}")
            })
            .collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..4000 {
            let len = (state % 40) as usize;
            let text: String = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    char::from((state % 128) as u8)
                })
                .collect();
            texts.push(text);
        }
        texts.extend(["", " ", "Hello, World! 42x"].map(String::from));
        for text in &texts {
            assert_eq!(index_ascii(text), index_any(text), "{text:?}");
        }
        assert_eq!(index_text("Hello, World! 42x"), "hello world 42x");
    }

    #[test]
    fn index_text_is_the_folded_words() {
        assert_eq!(
            index_text("Hello, WORLD! C++ ÜBER-alles"),
            "hello world c über alles"
        );
        assert_eq!(index_text("§ ~ -- "), "");
        assert_eq!(index_text("naïve café"), "naïve café");
    }
}
